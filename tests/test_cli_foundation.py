"""The command line as a user meets it: config errors, read-only SQL, status, exit codes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import warehouse
from leakwatch.config import default_config_text, load_config, require_env
from leakwatch.errors import ConfigError
from leakwatch.logs import RedactSecrets
from warehouse.records import Post


def run_cli(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "LEAKWATCH_CONFIG"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "leakwatch", *args], capture_output=True, text=True,
                          env=full_env, input=stdin, timeout=120)


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "leakwatch.toml"
    path.write_text(default_config_text().replace('data_dir = "leakwatch-data"', 'data_dir = "data"'))
    return path


@pytest.fixture
def filled(config_file: Path) -> Path:
    """A warehouse with two posts, one of them with a formula-looking title."""
    db = config_file.parent / "data" / "leakwatch.duckdb"
    with warehouse.writing(db) as con:
        warehouse.upsert_posts(con, [
            Post("reddit", "t3_a", "submission", datetime(2024, 11, 26, 15, tzinfo=UTC), "They leaked it",
                 title="Sora leaked", community="OpenAI", score=5),
            Post("bluesky", "at://did:plc:x/app.bsky.feed.post/3a", "post",
                 datetime(2024, 11, 27, 9, tzinfo=UTC), "pay artists, OpenAI", like_count=12),
        ])
    return config_file


def test_sql_prints_a_table_csv_and_json(filled: Path):
    query = "SELECT platform, post_id FROM posts ORDER BY platform"
    table = run_cli("--config", str(filled), "sql", query)
    assert table.returncode == 0, table.stderr
    assert "t3_a" in table.stdout and "2 rows" in table.stdout

    as_csv = run_cli("--config", str(filled), "sql", "--csv", query)
    assert as_csv.stdout.splitlines() == ["platform,post_id", "bluesky,at://did:plc:x/app.bsky.feed.post/3a",
                                          "reddit,t3_a"]
    as_json = run_cli("--config", str(filled), "sql", "--json", query)
    assert json.loads(as_json.stdout) == [
        {"platform": "bluesky", "post_id": "at://did:plc:x/app.bsky.feed.post/3a"},
        {"platform": "reddit", "post_id": "t3_a"}]


def test_sql_reads_the_query_from_stdin_when_piped(filled: Path):
    result = run_cli("--config", str(filled), "sql", "--csv", stdin="SELECT count(*) AS n FROM posts;")
    assert result.returncode == 0 and result.stdout.splitlines() == ["n", "2"]


@pytest.mark.parametrize("statement", [
    "DELETE FROM posts",
    "INSERT INTO posts (platform) VALUES ('x')",
    "DROP TABLE posts",
    "COPY posts TO 'out.csv'",
    "ATTACH 'other.duckdb' AS other",
    "SELECT 1; UPDATE posts SET text = ''",
])
def test_sql_refuses_writes_and_changes_nothing(filled: Path, statement: str):
    result = run_cli("--config", str(filled), "sql", statement)
    assert result.returncode == 1
    assert result.stderr.startswith("leakwatch: error: `leakwatch sql` is read-only")
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    check = run_cli("--config", str(filled), "sql", "--csv", "SELECT count(*), min(text) FROM posts")
    assert check.stdout.splitlines()[1] == "2,They leaked it"


def test_sql_syntax_error_is_one_line(filled: Path):
    result = run_cli("--config", str(filled), "sql", "SELEC * FROM posts")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("leakwatch: error: SQL error: Parser Error")
    assert len(result.stderr.strip().splitlines()) == 1


def test_interactive_sql_session(filled: Path, monkeypatch):
    from rich.console import Console

    from leakwatch import sql as sql_mod

    db = filled.parent / "data" / "leakwatch.duckdb"
    typed = iter([".tables", "SELECT count(*) * 21", "AS answer FROM posts;", "DELETE FROM posts;", ".quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    console = Console(record=True, width=200)
    assert sql_mod.interactive(db, console, 50) == 0
    out = console.export_text()
    assert "posts_labeled" in out  # .tables lists the views
    assert "answer" in out and " 42 " in out  # the statement spanning two lines ran
    assert "read-only: DELETE statements are refused" in out
    with warehouse.reading(db) as con:
        assert con.execute("SELECT count(*) FROM posts").fetchone() == (2,)


def test_status_reports_counts_and_schema_version(filled: Path):
    result = run_cli("--config", str(filled), "status", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["schema_version"] == warehouse.LATEST_VERSION
    assert {(r["platform"], r["posts"]) for r in info["posts"]} == {("reddit", 1), ("bluesky", 1)}
    human = run_cli("--config", str(filled), "status")
    assert human.returncode == 0 and "schema version" in human.stdout


def test_missing_warehouse_is_one_clear_line(config_file: Path):
    result = run_cli("--config", str(config_file), "status")
    assert result.returncode == 1
    assert "no warehouse at" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("edit, expected", [
    (("interval_minutes = 60", "interval_minutes = 0"), "reddit.interval_minutes: Input should be greater than 0"),
    (("interval_minutes = 60", "interval_minutez = 60"), "reddit.interval_minutez: unknown key"),
    (('name = "openai"', 'name = "Open AI"'), "stance.targets.0.name: String should match pattern"),
    (('queries = ["sora leak", "sora artists", \'"PR puppets"\', "sora openai"]', "queries = []"),
     "bluesky.queries: List should have at least 1 item"),
    (("[reddit]", "[reddit"), "not valid TOML"),
])
def test_invalid_config_names_file_key_and_expectation(tmp_path: Path, edit, expected):
    path = tmp_path / "bad.toml"
    text = default_config_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    result = run_cli("--config", str(path), "status")
    assert result.returncode == 1
    assert result.stderr.startswith(f"leakwatch: error: {path}: ")
    assert expected in result.stderr and "Traceback" not in result.stderr


def test_config_from_environment_variable(tmp_path: Path, config_file: Path, monkeypatch):
    result = run_cli("status", env={"LEAKWATCH_CONFIG": str(tmp_path / "nope.toml")})
    assert result.returncode == 1 and "does not exist" in result.stderr and "LEAKWATCH_CONFIG" in result.stderr
    monkeypatch.setenv("LEAKWATCH_CONFIG", str(config_file))
    assert load_config().warehouse_path == (tmp_path / "data" / "leakwatch.duckdb").resolve()


def test_unknown_command_is_a_usage_error():
    result = run_cli("frobnicate")
    assert result.returncode == 2 and "No such command" in result.stderr


def test_demo_creates_a_warehouse_and_weekly_exports(demo_run):
    assert demo_run.db.exists()
    assert "Weekly exports" in demo_run.result.stdout and "export 2024-W48:" in demo_run.result.stdout
    from test_export import check_demo_exports

    check_demo_exports(demo_run.folder)


def test_missing_secret_names_the_variable(monkeypatch):
    monkeypatch.delenv("REDDIT_CLIENT_ID", raising=False)
    with pytest.raises(ConfigError, match="REDDIT_CLIENT_ID is not set"):
        require_env("REDDIT_CLIENT_ID")


def test_secrets_are_scrubbed_from_log_records(monkeypatch):
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", "abcd-efgh-ijkl-mnop")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "login with %s failed", ("abcd-efgh-ijkl-mnop",),
                               None)
    RedactSecrets().filter(record)
    assert record.getMessage() == "login with *** failed"
