"""Collection runs and checkpoints.

A page of posts, its checkpoint and the run's counters commit in one transaction, so a crash at
any moment leaves the warehouse at the end of the last whole page: nothing skipped on resume,
nothing duplicated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb

from .posts import upsert_posts
from .records import Checkpoint, Page, UpsertResult
from .transaction import transaction


def start_run(con: duckdb.DuckDBPyConnection, platform: str, queries: Sequence[str],
              at: datetime | None = None) -> int:
    """A new run, started now (or `at`: a replayed collection's own time, as the demo's)."""
    row = con.execute(
        "INSERT INTO runs (platform, queries, started_at, status) VALUES (?, ?, ?, 'running') "
        "RETURNING run_id",
        [platform, list(queries), at or datetime.now(UTC)],
    ).fetchone()
    return int(row[0])


def commit_page(con: duckdb.DuckDBPyConnection, run_id: int, page: Page) -> UpsertResult:
    """Store one page, move its checkpoint and count it on the run, all or nothing."""
    with transaction(con):
        result = upsert_posts(con, page.posts)
        if page.checkpoint is not None:
            _save_checkpoint(con, page.checkpoint, run_id)
        con.execute(
            """UPDATE runs SET pages = pages + 1, fetched = fetched + ?, inserted = inserted + ?,
                   updated = updated + ?, skipped = skipped + ?,
                   rate_limit_waits = rate_limit_waits + ?, caps_hit = caps_hit + ?
               WHERE run_id = ?""",
            [
                len(page.posts),
                result.inserted,
                result.updated,
                page.skipped,
                page.rate_limit_waits,
                int(page.cap_hit),
                run_id,
            ],
        )
    return result


def add_to_run(con: duckdb.DuckDBPyConnection, run_id: int, *, skipped: int = 0,
               rate_limit_waits: int = 0, caps_hit: int = 0) -> None:
    """Count events that happened outside any committed page (e.g. waits before a failure)."""
    con.execute(
        "UPDATE runs SET skipped = skipped + ?, rate_limit_waits = rate_limit_waits + ?, "
        "caps_hit = caps_hit + ? WHERE run_id = ?",
        [skipped, rate_limit_waits, caps_hit, run_id],
    )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: int, status: str, error: str | None = None,
               at: datetime | None = None) -> None:
    con.execute(
        "UPDATE runs SET status = ?, error = ?, finished_at = ? WHERE run_id = ?",
        [status, error, at or datetime.now(UTC), run_id],
    )


def close_abandoned_runs(con: duckdb.DuckDBPyConnection, platform: str) -> int:
    """Mark runs left 'running' by a killed process as interrupted; return how many."""
    rows = con.execute(
        "UPDATE runs SET status = 'interrupted', error = 'process ended before the run finished' "
        "WHERE platform = ? AND status = 'running' RETURNING run_id",
        [platform],
    ).fetchall()
    return len(rows)


def get_checkpoints(con: duckdb.DuckDBPyConnection, platform: str) -> dict[str, Checkpoint]:
    rows = con.execute(
        "SELECT query_key, newest_created_at, newest_id, cursor FROM checkpoints WHERE platform = ?",
        [platform],
    ).fetchall()
    return {
        key: Checkpoint(platform, key, newest_created_at=created, newest_id=newest_id, cursor=cursor)
        for key, created, newest_id, cursor in rows
    }


def _save_checkpoint(con: duckdb.DuckDBPyConnection, checkpoint: Checkpoint, run_id: int) -> None:
    con.execute(
        "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            checkpoint.platform,
            checkpoint.query_key,
            checkpoint.newest_created_at,
            checkpoint.newest_id,
            checkpoint.cursor,
            run_id,
            datetime.now(UTC),
        ],
    )
