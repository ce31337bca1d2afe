"""`leakwatch demo --dir` deletes only a folder it created itself (issue 13.1)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli_env

from leakwatch import demo_folder
from leakwatch.config import default_config_text
from leakwatch.demo_folder import DemoFolderError


def run_demo_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leakwatch", "demo", *args], capture_output=True, text=True,
                          env=cli_env(), timeout=120, cwd=cwd)


def test_demo_refuses_the_current_folder_and_keeps_its_files(tmp_path: Path):
    document = tmp_path / "thesis.txt"
    document.write_text("three years of work")
    result = run_demo_cli(tmp_path, "--dir", ".")
    assert result.returncode == 1
    assert result.stderr.startswith("leakwatch: error: demo: refusing to use") and "current folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert document.read_text() == "three years of work"
    forced = run_demo_cli(tmp_path, "--dir", ".", "--force")
    assert forced.returncode == 1 and document.exists()


def test_demo_refuses_a_folder_it_did_not_create_even_with_force(tmp_path: Path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "todo.md").write_text("buy milk")
    for extra in ((), ("--force",)):
        result = run_demo_cli(tmp_path, "--dir", str(folder), *extra)
        assert result.returncode == 1
        assert "was not created by leakwatch demo; nothing deleted" in result.stderr
    assert (folder / "todo.md").read_text() == "buy milk"


def test_demo_refuses_the_home_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path.parent)
    with pytest.raises(DemoFolderError, match="home folder"):
        demo_folder.prepare(tmp_path, default_config_text())


def test_a_rerun_wipes_its_own_unchanged_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    folder = demo_folder.prepare(tmp_path / "demo", default_config_text())
    (folder / "leakwatch-data").mkdir()
    (folder / "leakwatch-data" / "leakwatch.duckdb").write_bytes(b"old warehouse")
    again = demo_folder.prepare(folder, default_config_text())
    assert again == folder and not (folder / "leakwatch-data").exists()
    assert (folder / "leakwatch.toml").read_text() == default_config_text()
    assert (folder / demo_folder.MARKER).is_file()


def test_an_edited_config_or_a_users_file_needs_force(tmp_path: Path):
    folder = tmp_path / "demo"
    demo_folder.prepare(folder, default_config_text())
    (folder / "leakwatch.toml").write_text(default_config_text() + "\n# my real API settings\n")
    result = run_demo_cli(tmp_path, "--dir", str(folder))
    assert result.returncode == 1
    assert "leakwatch.toml (edited since the demo wrote it)" in result.stderr and "--force" in result.stderr
    assert "my real API settings" in (folder / "leakwatch.toml").read_text()

    (folder / "leakwatch.toml").write_text(default_config_text())
    (folder / "collected.csv").write_text("mine")
    with pytest.raises(DemoFolderError, match="collected.csv"):
        demo_folder.prepare(folder, default_config_text())
    assert (folder / "collected.csv").exists()
    demo_folder.prepare(folder, default_config_text(), force=True)
    assert not (folder / "collected.csv").exists() and (folder / demo_folder.MARKER).is_file()


def test_an_empty_folder_becomes_a_demo_folder(tmp_path: Path):
    folder = tmp_path / "empty"
    folder.mkdir()
    demo_folder.prepare(folder, default_config_text())
    assert sorted(p.name for p in folder.iterdir()) == [demo_folder.MARKER, "leakwatch.toml"]
