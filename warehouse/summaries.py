"""Read-only summaries of what is stored: `leakwatch status` and the demo's per-community tables."""

from __future__ import annotations

from typing import Any

import duckdb


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def post_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM posts").fetchone()[0]


def status_rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    """Posts per platform and kind, the last runs, every checkpoint (with its raw cursor), label
    coverage per model and target, and the last runs that recorded an error."""
    return {
        "posts": _dicts(con.execute("""
            SELECT platform, kind, count(*) AS posts, count(*) FILTER (deleted) AS deleted,
                   count(*) FILTER (edited) AS edited,
                   min(created_at) AS oldest, max(created_at) AS newest
            FROM posts GROUP BY ALL ORDER BY ALL""")),
        "runs": _dicts(con.execute("""
            SELECT run_id, platform, status, started_at, finished_at, pages, fetched,
                   inserted, updated, skipped, rate_limit_waits, caps_hit, error
            FROM runs ORDER BY run_id DESC LIMIT 8""")),
        "checkpoints": _dicts(con.execute("""
            SELECT platform, query_key, newest_created_at, cursor, updated_at
            FROM checkpoints ORDER BY platform, query_key""")),
        "labels": _dicts(con.execute("""
            SELECT l.model_id, l.target, count(*) AS labelled,
                   round(100.0 * count(*) / (SELECT count(*) FROM posts), 1) AS coverage_pct
            FROM labels l GROUP BY ALL ORDER BY ALL""")),
        "out_of_range": out_of_range(con),
        "recent_errors": _dicts(con.execute("""
            SELECT run_id, platform, started_at, status, error FROM runs
            WHERE error IS NOT NULL ORDER BY run_id DESC LIMIT 5""")),
    }


def out_of_range(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per platform, posts dated outside the plausible range (kept, but in no series or export)."""
    return _dicts(con.execute("""
        SELECT platform, count(*) AS posts, min(created_at) AS earliest, max(created_at) AS latest
        FROM posts_out_of_range GROUP BY ALL ORDER BY ALL"""))


def community_summary(con: duckdb.DuckDBPyConnection, platform: str, kinds: tuple[str, ...]) -> list[tuple]:
    """Per community of `platform`: posts of each kind (in `kinds` order), edited, deleted."""
    counts = "".join(f"count(*) FILTER (kind = ${i + 2}), " for i in range(len(kinds)))
    return con.execute(
        f"""SELECT community, {counts}count(*) FILTER (edited) AS edited, count(*) FILTER (deleted) AS deleted
            FROM posts WHERE platform = $1 GROUP BY ALL ORDER BY 2 DESC, community""",
        [platform, *kinds],
    ).fetchall()


def version_changes(con: duckdb.DuckDBPyConnection, platform: str) -> dict[str, int]:
    """post_versions rows of `platform` per change (created, edited, deleted)."""
    return dict(con.execute("SELECT change, count(*) FROM post_versions v WHERE platform = ? GROUP BY ALL",
                            [platform]).fetchall())


def top_threads(con: duckdb.DuckDBPyConnection, platform: str, kind: str, limit: int) -> list[tuple]:
    """The highest-scored posts of one kind: community, score, reply count, title."""
    return con.execute(
        "SELECT community, score, reply_count, title FROM posts WHERE platform = ? AND kind = ? "
        "ORDER BY score DESC LIMIT ?", [platform, kind, limit]).fetchall()


def known_posts(con: duckdb.DuckDBPyConnection, platform: str, since: Any) -> list[tuple]:
    """Stored, not yet deleted posts created since `since`: id, created_at, matched queries."""
    return con.execute(
        "SELECT post_id, created_at, matched_queries FROM posts "
        "WHERE platform = ? AND created_at >= ? AND NOT deleted ORDER BY created_at",
        [platform, since],
    ).fetchall()
