"""Smaller things a newcomer meets (issue 13.9–13.11), each through the command line."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REDDIT_ENV, cli_env, reddit_section, run_cli

import warehouse
from leakwatch.config import default_config_text, parse_config
from leakwatch.errors import ConfigError
from warehouse.records import Post


def test_collect_names_every_missing_variable_and_tries_every_platform(make_config, reddit_corpus, reddit_server):
    reddit_corpus.submission(0)
    server = reddit_server(reddit_corpus.items)
    path, config = make_config(reddit=reddit_section(server))
    nothing = run_cli(path, "collect", env=cli_env())
    assert nothing.returncode == 1
    lines = nothing.stderr.strip().splitlines()
    assert lines == [
        "leakwatch: error: reddit: environment variables REDDIT_CLIENT_ID, REDDIT_CLIENT_SECRET, "
        "REDDIT_USER_AGENT are not set; export them before collecting",
        "leakwatch: error: bluesky: environment variables BLUESKY_HANDLE, BLUESKY_APP_PASSWORD are not set; "
        "export them before collecting"]
    assert not config.warehouse_path.exists()
    # With Reddit's credentials only: Reddit collects, Bluesky is reported, the exit code says so.
    half = run_cli(path, "collect", env=cli_env(REDDIT_ENV))
    assert half.returncode == 1
    assert re.search(r"^reddit: run 1 ok", half.stdout, re.M)
    assert "bluesky: environment variables BLUESKY_HANDLE, BLUESKY_APP_PASSWORD are not set" in half.stderr


def test_a_config_lists_every_problem_without_pydantic_prefixes():
    text = default_config_text().replace("[reddit]", "[reddit]\nintervall_minutes = 5", 1)
    text = text.replace('export_cron = "15 0 * * mon"', 'export_cron = "every monday"')
    text = re.sub(r"bootstrap_samples = \d+", "bootstrap_samples = 5", text)
    text = text.replace("[warehouse]", "extra_top = 1\n[warehouse]", 1)
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "my.toml", Path("."))
    message = str(caught.value)
    assert message.startswith("my.toml: 4 problems: ")
    for part in ("reddit.intervall_minutes: unknown key", "extra_top: unknown key", "schedule.export_cron: ",
                 "report.bootstrap_samples: "):
        assert part in message
    assert "Value error" not in message and "more problem" not in message and "\n" not in message
    # The typos come first: they are the likeliest cause of everything else.
    assert message.index("unknown key") < message.index("export_cron")


def write_config(folder: Path) -> Path:
    path = folder / "leakwatch.toml"
    path.write_text(default_config_text().replace('data_dir = "leakwatch-data"', 'data_dir = "data"'))
    return path


def test_classify_on_a_missing_or_empty_warehouse_creates_nothing(tmp_path: Path):
    config = write_config(tmp_path)
    db = tmp_path / "data" / "leakwatch.duckdb"
    result = run_cli(config, "classify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("classify: nothing to label: no warehouse yet")
    assert not db.exists() and not (tmp_path / "data").exists()
    with warehouse.writing(db):
        pass
    result = run_cli(config, "classify")
    assert result.returncode == 0 and "has no posts yet" in result.stdout


def test_trends_names_an_unknown_target(tmp_path: Path):
    config = write_config(tmp_path)
    with warehouse.writing(tmp_path / "data" / "leakwatch.duckdb"):
        pass
    result = run_cli(config, "trends", "--target", "sora")
    assert result.returncode == 1
    assert result.stderr.strip() == ("leakwatch: error: trends: no target 'sora'; the configured targets are "
                                     "openai, artists")


def test_export_of_a_week_without_posts_says_so_and_writes_nothing(tmp_path: Path):
    config = write_config(tmp_path)
    with warehouse.writing(tmp_path / "data" / "leakwatch.duckdb") as con:
        warehouse.upsert_posts(con, [Post("reddit", "t3_a", "submission", datetime(2024, 11, 26, tzinfo=UTC), "x")])
    result = run_cli(config, "export", "--week", "2024-W10")
    assert result.returncode == 1
    assert result.stderr.strip() == "leakwatch: error: no posts in 2024-W10: nothing exported"
    assert not (tmp_path / "data" / "exports" / "2024-W10").exists()


def test_run_once_failing_prints_the_error_line(tmp_path: Path):
    config = write_config(tmp_path)
    result = run_cli(config, "run", "--once", env=cli_env())  # no credentials: every collection fails
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("leakwatch: error: run --once: a job failed")
