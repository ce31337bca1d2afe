"""The queries behind the weekly exports: what a week's export depends on, its rows, its runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

import duckdb

_FETCH_BATCH = 5000

POST_COLUMNS = [
    "platform", "post_id", "kind", "thread_id", "parent_id", "community", "author_id", "author_handle",
    "created_at", "language", "url", "post_url", "title", "text", "score", "like_count", "reply_count",
    "repost_count", "quote_count", "edited", "deleted", "matched_queries",
]


def _batches(cursor: duckdb.DuckDBPyConnection) -> Iterator[tuple[Any, ...]]:
    while rows := cursor.fetchmany(_FETCH_BATCH):
        yield from rows


def week_states(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int, str]]:
    """Per ISO week with posts in the plausible date range (2024-W48): posts, current-model labels,
    and a digest of what the export writes from them (each post's content hash, labels and
    probabilities). Relabelling with the same model leaves the digest as it was, so the week is not
    exported again."""
    return con.execute(
        """
        WITH current_labels AS (
            SELECT platform, post_id, count(*) AS labels,
                   string_agg(target || '=' || label || ':' || printf('%.6f/%.6f/%.6f', p_favor, p_against, p_none),
                              ',' ORDER BY target) AS content
            FROM labels WHERE model_id = (SELECT value FROM settings WHERE key = 'current_model')
            GROUP BY ALL
        )
        SELECT strftime(p.created_at, '%G-W%V') AS week, count(*) AS posts,
               coalesce(sum(l.labels), 0) AS labels,
               md5(string_agg(p.platform || ' ' || p.post_id || ' ' || p.content_hash || ' '
                              || coalesce(l.content, ''), chr(10) ORDER BY p.platform, p.post_id)) AS digest
        FROM posts p LEFT JOIN current_labels l USING (platform, post_id)
        WHERE plausible_time(p.created_at)  -- a post dated 9999 makes no week folder (posts_out_of_range)
        GROUP BY week ORDER BY week
        """
    ).fetchall()


def week_posts(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, label_columns: Sequence[str],
               post_url_sql: str = "NULL", include_deleted: bool = False) -> Iterator[tuple[Any, ...]]:
    """Posts created in [start, end) in export order: POST_COLUMNS, then the current-model label columns.
    `post_url_sql` is the post's web address (SQL over p); the title and text of posts deleted upstream
    are left empty unless `include_deleted`."""
    def column(name: str) -> str:
        if name == "post_url":
            return f"({post_url_sql}) AS post_url"
        if name in ("title", "text") and not include_deleted:
            return f"CASE WHEN p.deleted THEN NULL ELSE p.{name} END AS {name}"
        return f"p.{name}"

    select = ", ".join([column(c) for c in POST_COLUMNS] + [f"pl.{c}" for c in label_columns])
    return _batches(con.execute(
        f"""SELECT {select} FROM posts p LEFT JOIN posts_labeled pl USING (platform, post_id)
            WHERE p.created_at >= ? AND p.created_at < ? ORDER BY p.created_at, p.platform, p.post_id""",
        [start, end],
    ))


def stance_daily_rows(con: duckdb.DuckDBPyConnection, first: date, end: date
                      ) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """The stance_daily view for days in [first, end): its column names and its rows."""
    cursor = con.execute(
        "SELECT * FROM stance_daily WHERE period >= ? AND period < ? ORDER BY period, target, platform",
        [first, end],
    )
    return [d[0] for d in cursor.description], _batches(cursor)


def problem_runs(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> list[tuple]:
    """Runs started in [start, end) that failed, were interrupted or hit a result cap:
    run_id, platform, status, started_at, finished_at, caps_hit, error."""
    return con.execute(
        """SELECT run_id, platform, status, started_at, finished_at, caps_hit, error FROM runs
           WHERE started_at >= ? AND started_at < ? AND (status IN ('failed', 'interrupted') OR caps_hit > 0)
           ORDER BY run_id""",
        [start, end],
    ).fetchall()


def run_counts(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> list[tuple[str, str, int]]:
    """Runs started in [start, end) per platform and status."""
    return con.execute(
        """SELECT platform, status, count(*) FROM runs WHERE started_at >= ? AND started_at < ?
           GROUP BY ALL ORDER BY ALL""",
        [start, end],
    ).fetchall()


def first_run_start(con: duckdb.DuckDBPyConnection, platform: str) -> datetime | None:
    return con.execute("SELECT min(started_at) FROM runs WHERE platform = ?", [platform]).fetchone()[0]


def ok_finishes(con: duckdb.DuckDBPyConnection, platform: str, start: datetime, end: datetime) -> list[datetime]:
    """When the successful runs of `platform` finished within [start, end), in order."""
    return [row[0] for row in con.execute(
        "SELECT finished_at FROM runs WHERE platform = ? AND status = 'ok' AND finished_at >= ? "
        "AND finished_at < ? ORDER BY finished_at",
        [platform, start, end],
    ).fetchall()]


def run_query_keys(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> list[tuple[str, str]]:
    """(platform, query key) of every run started in [start, end)."""
    return con.execute(
        "SELECT DISTINCT platform, unnest(queries) AS q FROM runs WHERE started_at >= ? AND started_at < ? "
        "ORDER BY ALL",
        [start, end],
    ).fetchall()
