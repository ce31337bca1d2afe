"""`leakwatch status`: what is in the warehouse and how collection has been going."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

import warehouse


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def gather(path: Path) -> dict[str, Any]:
    with warehouse.reading(path) as con:
        return {
            "warehouse": str(path),
            "size_bytes": path.stat().st_size,
            "schema_version": warehouse.schema_version(con),
            "current_model": warehouse.get_setting(con, "current_model"),
            "posts": _rows(con, """
                SELECT platform, kind, count(*) AS posts, count(*) FILTER (deleted) AS deleted,
                       count(*) FILTER (edited) AS edited,
                       min(created_at) AS oldest, max(created_at) AS newest
                FROM posts GROUP BY ALL ORDER BY ALL"""),
            "runs": _rows(con, """
                SELECT run_id, platform, status, started_at, finished_at, pages, fetched,
                       inserted, updated, skipped, rate_limit_waits, caps_hit, error
                FROM runs ORDER BY run_id DESC LIMIT 8"""),
            "checkpoints": _rows(con, """
                SELECT platform, query_key, newest_created_at,
                       -- a Reddit cursor also lists recent threads; only its `resume` part means mid-scan;
                       -- a Bluesky cursor also keeps owed threads and the last revisit; only `windows` does
                       CASE WHEN platform = 'reddit' THEN coalesce(cursor, '') LIKE '%"resume":{%'
                            ELSE coalesce(cursor, '') LIKE '%"windows":%[[%' END AS mid_backfill,
                       updated_at
                FROM checkpoints ORDER BY platform, query_key"""),
            "labels": _rows(con, """
                SELECT l.model_id, l.target, count(*) AS labelled,
                       round(100.0 * count(*) / (SELECT count(*) FROM posts), 1) AS coverage_pct
                FROM labels l GROUP BY ALL ORDER BY ALL"""),
            "recent_errors": _rows(con, """
                SELECT run_id, platform, started_at, status, error FROM runs
                WHERE error IS NOT NULL ORDER BY run_id DESC LIMIT 5"""),
        }


# Columns the human view leaves out to stay readable in an 80-column terminal (--json has them all).
_HIDDEN = {"finished_at", "error", "updated_at"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _table(title: str, rows: list[dict[str, Any]], console: Console, empty: str,
           hidden: frozenset[str] | set[str] = frozenset()) -> None:
    if not rows:
        console.print(f"[bold]{title}[/bold]: {empty}")
        return
    columns = [name for name in rows[0] if name not in hidden]
    table = Table(title=title, title_justify="left", header_style="bold")
    for name in columns:
        table.add_column(name.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row[name]) for name in columns))
    console.print(table)


def show(info: dict[str, Any], console: Console, brief: bool = False) -> None:
    """The human view; `brief` (for the demo) leaves out runs and checkpoints."""
    size_mb = info["size_bytes"] / 1_000_000
    console.print(
        f"[bold]Warehouse[/bold] {info['warehouse']} ({size_mb:.1f} MB), "
        f"schema version {info['schema_version']}, current model: {info['current_model'] or 'none yet'}"
    )
    _table("Posts", info["posts"], console, "none collected yet")
    if not brief:
        _table("Last runs", info["runs"], console, "no collection runs yet", _HIDDEN)
        _table("Checkpoints", info["checkpoints"], console, "none yet", _HIDDEN)
    _table("Labels", info["labels"], console, "no posts labelled yet")
    if info["recent_errors"] and not brief:
        _table("Recent errors", info["recent_errors"], console, "")
