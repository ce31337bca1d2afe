"""Configs that used to pass validation and then crash: each is now one clear line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from daemon_support import cli, write_config

NO_SECRETS = {name: "" for name in ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USER_AGENT",
                                    "BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD")}


def one_error_line(result) -> str:
    assert result.returncode == 1, result.stdout
    assert "Traceback" not in result.stderr and "unexpected error" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("value", ["inf", "nan", "1e308", "1e12", "10081"])
def test_interval_must_be_finite_and_at_most_a_week(tmp_path: Path, value: str):
    config = write_config(tmp_path, interval_minutes=60)
    text = config.read_text().replace("interval_minutes = 60", f"interval_minutes = {value}", 1)
    config.write_text(text)
    for command in (["run", "--once"], ["status"]):
        line = one_error_line(cli(config, *command, env=NO_SECRETS))
        assert line.startswith(f"leakwatch: error: {config}: reddit.interval_minutes: "), line


@pytest.mark.parametrize("key, value", [
    ("backoff_seconds", "inf"), ("max_rate_limit_wait_seconds", "1e308"), ("timeout_seconds", "1e12"),
])
def test_other_source_numbers_are_bounded(tmp_path: Path, key: str, value: str):
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("[bluesky]\n", f"[bluesky]\n{key} = {value}\n", 1))
    line = one_error_line(cli(config, "status"))
    assert line.startswith(f"leakwatch: error: {config}: bluesky.{key}: "), line


@pytest.mark.parametrize("setting", ["jitter_seconds = inf", "shutdown_grace_seconds = 1e308"])
def test_schedule_numbers_are_bounded(tmp_path: Path, setting: str):
    config = write_config(tmp_path)
    key = setting.split()[0]
    config.write_text("\n".join(setting if line.startswith(key) else line
                                for line in config.read_text().splitlines()))
    line = one_error_line(cli(config, "run", "--once", env=NO_SECRETS))
    assert line.startswith(f"leakwatch: error: {config}: schedule.{key}: "), line


@pytest.mark.parametrize("queries", ['[""]', '["sora leak", "   "]'])
def test_blank_queries_are_refused(tmp_path: Path, queries: str):
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('queries = ["sora leak"]', f"queries = {queries}", 1))
    line = one_error_line(cli(config, "status"))
    assert line.startswith(f"leakwatch: error: {config}: reddit.queries: ") and "blank" in line, line


def test_blank_subreddit_is_refused(tmp_path: Path):
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('subreddits = ["OpenAI"]', 'subreddits = ["OpenAI", ""]'))
    line = one_error_line(cli(config, "status"))
    assert line.startswith(f"leakwatch: error: {config}: reddit.subreddits: ") and "blank" in line, line


def test_data_dir_that_is_a_file_is_one_line(tmp_path: Path):
    config = write_config(tmp_path)
    (tmp_path / "data").write_text("I am a file\n")
    for command in (["run", "--once"], ["collect"], ["status"]):
        line = one_error_line(cli(config, *command, env=NO_SECRETS))
        assert line == f"leakwatch: error: {config}: data_dir: {tmp_path / 'data'} is a file, not a folder", line
    config.write_text(config.read_text().replace('data_dir = "data"', 'data_dir = "data/inner"'))
    line = one_error_line(cli(config, "status"))
    assert "data_dir: " in line and "cannot be created" in line and "is a file, not a folder" in line
    assert (tmp_path / "data").read_text() == "I am a file\n"
