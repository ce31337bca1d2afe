"""`leakwatch sql` never writes or reads files: a battery of bypass attempts against the connection itself.

The statement-type check is only the friendly first message; the guarantee is the connection that
user SQL runs on (read-only, external access off, configuration locked). Every attempt below must be
refused with one line and leave every file in the data folder and the target paths untouched.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

import warehouse
from leakwatch.config import default_config_text
from warehouse.records import Post


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LEAKWATCH_CONFIG"}
    return subprocess.run([sys.executable, "-m", "leakwatch", *args], capture_output=True, text=True,
                          env=env, input=stdin, timeout=120)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sqlguard")
    config = root / "leakwatch.toml"
    config.write_text(default_config_text().replace('data_dir = "leakwatch-data"', 'data_dir = "data"'))
    with warehouse.writing(root / "data" / "leakwatch.duckdb") as con:
        warehouse.upsert_posts(con, [
            Post("reddit", "t3_a", "submission", datetime(2024, 11, 26, 15, tzinfo=UTC), "They leaked it"),
        ])
    (root / "secret.txt").write_text("do not read me\n")
    (root / "data.csv").write_text("name,n\nalpha,1\nbeta,2\n")
    return root


def snapshot(root: Path) -> dict[str, str]:
    """Every file under root (the warehouse, the config, the targets) and its hash."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def attempts(root: Path) -> list[str]:
    out = root / "out"
    cfg = root / "leakwatch.toml"
    secret = root / "secret.txt"
    return [
        f"WITH w AS (COPY (SELECT 1 AS x) TO '{out}.csv') SELECT 1",
        f"EXPLAIN ANALYZE COPY (SELECT 1 AS x) TO '{out}.csv'",
        f"explain analyze copy (select * from posts) to '{cfg}'",  # once overwrote the config
        f"COPY (SELECT * FROM posts) TO '{out}.parquet' (FORMAT parquet)",
        f"COPY posts TO '{out}.csv'",
        f"SELECT 1; COPY (SELECT 1) TO '{out}.csv'",
        f"/* harmless */ CoPy (SELECT 1) TO '{out}.csv'",
        f"-- a comment\nWITH a AS (SELECT 1) SELECT * FROM a; copy (select 2) to '{out}.csv'",
        f"SELECT * FROM read_text('{secret}')",
        f"SELECT * FROM read_blob('{secret}')",
        f"SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM '{secret}'",
        f"SELECT * FROM glob('{root}/*')",
        f"ATTACH '{out}.duckdb' AS other",
        f"ATTACH '{root}/data/leakwatch.duckdb' AS again",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET lock_configuration",
        "SET lock_configuration = false",
        "PRAGMA enable_profiling",
        f"PRAGMA profiling_output = '{out}.json'",
        f"EXPORT DATABASE '{out}_dir'",
        "CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
        "CALL pragma_version()",
        f"CALL enable_logging(); COPY (SELECT 1) TO '{out}.csv'",
        "CHECKPOINT",
        "DELETE FROM posts",
        "CREATE TABLE x AS SELECT 1",
        f"SELECT * FROM read_parquet('{out}.parquet')",
        f"EXPLAIN ANALYZE SELECT * FROM read_text('{secret}')",
        f"WITH s AS (SELECT * FROM read_text('{secret}')) SELECT content FROM s",
    ]


def test_the_battery_is_refused_in_one_line_and_nothing_changes(world: Path):
    before = snapshot(world)
    config = str(world / "leakwatch.toml")
    assert len(attempts(world)) >= 25
    for statement in attempts(world):
        result = run_cli("--config", config, "sql", "--csv", "--", statement)
        assert result.returncode == 1, (statement, result.stdout)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("leakwatch: error: "), (statement, result.stderr)
        assert "Traceback" not in result.stderr
        assert "do not read me" not in result.stdout, statement
        assert snapshot(world) == before, statement
    assert not list(world.glob("out*"))


def test_the_connection_itself_refuses_file_access_and_unlocking(world: Path):
    """Below the friendly statement check: the runner's connection refuses even what passes it."""
    from warehouse.user_sql import SqlError, run_query

    db = world / "data" / "leakwatch.duckdb"
    before = snapshot(world)
    for statement in (f"WITH w AS (COPY (SELECT 1) TO '{world}/out.csv') SELECT 1",
                      f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{world}/out.csv'",
                      f"SELECT * FROM read_text('{world}/secret.txt')"):
        with pytest.raises(SqlError, match="read-only|file access is off"):
            run_query(db, statement)
    assert snapshot(world) == before


def test_table_option_reads_local_files_before_the_lock(world: Path):
    config = str(world / "leakwatch.toml")
    result = run_cli("--config", config, "sql", "--csv", "--table", f"mine={world / 'data.csv'}",
                     "SELECT m.name, m.n, (SELECT count(*) FROM posts) AS posts FROM mine m ORDER BY m.n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["name,n,posts", "alpha,1,1", "beta,2,1"]
    bad = run_cli("--config", config, "sql", "--table", "mine=/nonexistent/x.csv", "SELECT 1")
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "x.csv" in bad.stderr
    shadow = run_cli("--config", config, "sql", "--table", f"Posts={world / 'data.csv'}", "SELECT 1")
    assert shadow.returncode == 1 and "already has a table or view named Posts" in shadow.stderr
    twice = run_cli("--config", config, "sql", "--csv", "--table", f"a={world / 'data.csv'}",
                    "--table", f"b={world / 'data.csv'}", "SELECT count(*) AS n FROM a, b")
    assert twice.stdout.splitlines() == ["n", "4"], twice.stderr
    odd = run_cli("--config", config, "sql", "--table", f"mine={world / 'secret.txt'}", "SELECT 1")
    assert odd.returncode == 1 and ".csv, .parquet or .json" in odd.stderr


def test_interactive_prompt_is_held_to_the_same_connection(world: Path, monkeypatch):
    from rich.console import Console

    from leakwatch import sql as sql_mod

    before = snapshot(world)
    typed = iter([f"WITH w AS (COPY (SELECT 1) TO '{world}/out.csv') SELECT 1;",
                  f"EXPLAIN ANALYZE COPY (SELECT 1) TO '{world}/out.csv';",
                  f"SELECT * FROM read_text('{world}/secret.txt');",
                  "SELECT count(*) * 7 AS seven FROM posts;", ".quit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(typed))
    console = Console(record=True, width=200)
    assert sql_mod.interactive(world / "data" / "leakwatch.duckdb", console, 50) == 0
    out = console.export_text()
    assert out.count("error:") == 3 and " 7 " in out and "do not read me" not in out
    assert snapshot(world) == before
