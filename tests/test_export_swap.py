"""A week's export files change together or not at all: kill -9 an export anywhere, and every
manifest still matches the files beside it. Also the CSV neutralisation of issue 12.10.

The pause points are patched into the subprocess here (os.replace counts and stops at the K-th
rename); production code has no hook for it.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from daemon_support import cli, post, seed, warehouse_path, write_config

from analysis.export.csv_file import cell, neutralize

KEY = {"LEAKWATCH_PSEUDONYM_KEY": "a-test-key-for-pseudonyms"}

_STOPPING_EXPORT = """
import os, sys, time
stop_at, marker = int(sys.argv.pop(1)), sys.argv.pop(1)
real_replace, calls = os.replace, [0]

def replace(src, dst):
    real_replace(src, dst)
    calls[0] += 1
    with open(marker, "w") as out:
        out.write(str(calls[0]))
    if calls[0] == stop_at:
        time.sleep(120)  # the test kills us here, right after this rename

os.replace = replace
from analysis.export import csv_file
write = csv_file.HashingSink.write

def slow_write(self, text):  # spread the export over time so random kills land everywhere
    time.sleep(0.001)
    return write(self, text)

csv_file.HashingSink.write = slow_write
from leakwatch.cli import main
sys.argv[0] = "leakwatch"
main()
"""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_every_week(root: Path) -> int:
    """Each week folder holds exactly its manifest's files, with the manifest's hashes; temporaries
    (dot names) are not weeks. Returns the number of weeks."""
    weeks = [p for p in root.iterdir() if not p.name.startswith(".")]
    for folder in weeks:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        names = {p.name for p in folder.iterdir() if not p.name.startswith(".")}
        assert names == {"manifest.json", *manifest["files"]}, (folder, names)
        for name, facts in manifest["files"].items():
            assert _sha(folder / name) == facts["sha256"], f"{folder.name}/{name} contradicts its manifest"
    return len(weeks)


@pytest.fixture
def three_weeks(tmp_path):
    config = write_config(tmp_path)
    start = datetime(2024, 11, 18, 9, tzinfo=UTC)
    posts = [post(f"t3_{i}", start + timedelta(hours=5 * i), f"post number {i}", author_id=f"user{i % 7}",
                  author_handle=f"user{i % 7}") for i in range(96)]
    seed(warehouse_path(tmp_path), posts, {p.post_id: ("favor", "none") for p in posts[::2]})
    return config


def stopped_export(config: Path, marker: Path, stop_at: int, pseudonymize: bool) -> subprocess.Popen:
    # Every week named, so every run rewrites all three whatever earlier kills left behind.
    args = ["--config", str(config), "export", "--week", "2024-W47", "--week", "2024-W48", "--week", "2024-W49"]
    args += ["--pseudonymize-authors"] if pseudonymize else []
    env = {**__import__("os").environ, **KEY}
    return subprocess.Popen([sys.executable, "-c", _STOPPING_EXPORT, str(stop_at), str(marker), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_kill_9_at_every_rename_and_at_random_moments_never_leaves_a_contradicting_manifest(tmp_path, three_weeks):
    root = tmp_path / "data" / "exports"
    marker = tmp_path / "renames"
    cli(three_weeks, "export", check=True)
    assert check_every_week(root) == 3

    # How many renames a full re-export makes (the pseudonymized state differs: every week is redone).
    started = time.monotonic()
    full = stopped_export(three_weeks, marker, 0, pseudonymize=True)
    assert full.wait(120) == 0, full.communicate()
    duration = time.monotonic() - started
    renames = int(marker.read_text())
    assert check_every_week(root) == 3
    assert json.loads((root / "2024-W47" / "manifest.json").read_text())["authors"].startswith("pseudonymized")

    pseudonymize, killed = False, 0
    for stop_at in range(1, renames + 1):
        marker.unlink(missing_ok=True)
        process = stopped_export(three_weeks, marker, stop_at, pseudonymize)
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text() == str(stop_at)):
            if process.poll() is not None:  # a week an earlier kill left absent has one rename less
                assert process.returncode == 0, process.communicate()
                break
            assert time.monotonic() < deadline, f"rename {stop_at} never happened"
            time.sleep(0.01)
        else:
            killed += 1
        process.kill()  # SIGKILL: no cleanup of any kind
        process.communicate()
        check_every_week(root)
        pseudonymize = not pseudonymize
    assert killed >= renames - 3, (killed, renames)

    chance = random.Random(12)
    for _ in range(6):
        process = stopped_export(three_weeks, marker, 0, pseudonymize)
        time.sleep(chance.uniform(0, duration))
        process.kill()
        process.communicate()
        check_every_week(root)
        pseudonymize = not pseudonymize

    done = cli(three_weeks, "export", "--pseudonymize-authors", env=KEY)
    assert done.returncode == 0, done.stderr
    assert check_every_week(root) == 3
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # leftovers of the kills are gone
    for week in root.iterdir():
        assert b"user" not in (week / "posts.csv").read_bytes().split(b"\r\n", 1)[1]


@pytest.mark.parametrize("text", ["\n=1+1", "\r=1", "\t=1", "＝HYPERLINK(1)", "＋1", "－1", "＠SUM(A1)"])
def test_neutralisation_covers_line_feeds_and_full_width_signs(text):
    assert neutralize(text) == "'" + text and cell(text) == "'" + text


def test_plain_text_and_numbers_are_left_alone():
    assert cell("Sora leaked") == "Sora leaked" and cell(-3) == "-3" and cell("a\n=b") == "a\n=b"
