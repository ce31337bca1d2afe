"""The queries behind `leakwatch trends` and the report: period views, totals, volume, top posts.

Windows are inclusive UTC date ranges (`since`, `until`; None = unbounded).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import duckdb

from .records import LABELS

# The user views per period and counting unit (see views.py).
PERIOD_VIEWS = {
    ("day", "posts"): "stance_daily",
    ("week", "posts"): "stance_weekly",
    ("day", "authors"): "stance_daily_authors",
    ("week", "authors"): "stance_weekly_authors",
}


def _window(column: str, since: date | None, until: date | None) -> tuple[str, list[Any]]:
    """A WHERE fragment (always valid) and its parameters."""
    parts, params = ["true"], []
    if since:
        parts.append(f"{column} >= ?")
        params.append(since)
    if until:
        parts.append(f"{column} <= ?")
        params.append(until)
    return " AND ".join(parts), params


def _dicts(cursor: duckdb.DuckDBPyConnection) -> tuple[list[str], list[dict[str, Any]]]:
    columns = [d[0] for d in cursor.description]
    return columns, [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]


def period_rows(con: duckdb.DuckDBPyConnection, view: str, since: date | None, until: date | None,
                targets: list[str] | None = None, platforms: list[str] | None = None
                ) -> tuple[list[str], list[dict[str, Any]]]:
    """A period view's rows in the window (optionally some targets / platforms): columns and rows."""
    where, params = _window("period", since, until)
    if targets:
        where += f" AND target IN ({', '.join('?' * len(targets))})"
        params += targets
    if platforms:
        where += f" AND platform IN ({', '.join('?' * len(platforms))})"
        params += platforms
    return _dicts(con.execute(f"SELECT * FROM {view} WHERE {where} ORDER BY target, platform, period", params))


def model_metrics(con: duckdb.DuckDBPyConnection, model_id: str) -> Any:
    """A model's stored metrics as stored (JSON text), or None (no metrics, or no such model)."""
    row = con.execute("SELECT metrics FROM models WHERE model_id = ?", [model_id]).fetchone()
    return row[0] if row else None


def last_ok_run_start(con: duckdb.DuckDBPyConnection) -> Any:
    """When the last successful collection run started (None: no run record)."""
    return con.execute("SELECT max(started_at) FROM runs WHERE status = 'ok'").fetchone()[0]


def period_totals(con: duckdb.DuckDBPyConnection, view: str, count: str, since: date | None,
                  until: date | None) -> list[dict[str, Any]]:
    """Per target and platform, a period view's counts summed over the window, with Wilson intervals."""
    where, params = _window("period", since, until)
    shares = ", ".join(
        f"{label} / nullif({count}, 0) AS share_{label}, wilson_low({label}, {count}) AS share_{label}_low, "
        f"wilson_high({label}, {count}) AS share_{label}_high"
        for label in LABELS
    )
    cursor = con.execute(
        f"""
        SELECT target, platform, {count}, favor, against, none, {shares}
        FROM (SELECT target, platform, sum({count}) AS {count}, sum(favor) AS favor,
                     sum(against) AS against, sum(none) AS none
              FROM {view} WHERE {where} GROUP BY ALL)
        ORDER BY target, platform""",
        params,
    )
    return _dicts(cursor)[1]


def daily_volume(con: duckdb.DuckDBPyConnection, since: date | None, until: date | None) -> list[dict[str, Any]]:
    """Posts per UTC day and platform (every post collected, labelled or not, in the plausible date
    range), empty days as 0."""
    where, params = _window("day", since, until)
    cursor = con.execute(
        f"""
        WITH daily AS (
            SELECT CAST(timezone('UTC', created_at) AS DATE) AS day, platform, count(*) AS posts
            FROM posts WHERE plausible_time(created_at) GROUP BY ALL
        ), chosen AS (SELECT * FROM daily WHERE {where}),
        days AS (
            SELECT CAST(unnest(generate_series(CAST(min(day) AS TIMESTAMP), CAST(max(day) AS TIMESTAMP),
                                               INTERVAL 1 DAY)) AS DATE) AS day FROM chosen
        )
        SELECT d.day, k.platform, coalesce(c.posts, 0) AS posts
        FROM days d CROSS JOIN (SELECT DISTINCT platform FROM chosen) k
        LEFT JOIN chosen c ON c.day = d.day AND c.platform = k.platform
        ORDER BY k.platform, d.day""",
        params,
    )
    return [dict(zip(["day", "platform", "posts"], row, strict=True)) for row in cursor.fetchall()]


def engagement_sql(per_platform: Mapping[str, str]) -> str:
    """One engagement expression over posts (alias p) from each platform's own (SQL text the
    collectors declare); a platform without one counts 0."""
    if not per_platform:
        return "0"
    cases = " ".join(f"WHEN '{name.replace(chr(39), '')}' THEN {sql}" for name, sql in per_platform.items())
    return f"CASE p.platform {cases} ELSE 0 END"


def top_posts(con: duckdb.DuckDBPyConnection, since: date | None, until: date | None, per_stance: int,
              engagement: Mapping[str, str]) -> list[dict[str, Any]]:
    """The most engaged posts per target and current-model label in the window."""
    where, params = _window("CAST(timezone('UTC', p.created_at) AS DATE)", since, until)
    cursor = con.execute(
        f"""
        SELECT s.target, s.label, p.platform, p.post_id, CAST(timezone('UTC', p.created_at) AS DATE) AS day,
               p.author_handle, p.title, p.text, p.url, {engagement_sql(engagement)} AS engagement
        FROM stance_labels s JOIN posts p ON p.platform = s.platform AND p.post_id = s.post_id
        WHERE {where} AND plausible_time(p.created_at)
        QUALIFY row_number() OVER (PARTITION BY s.target, s.label
                                   ORDER BY engagement DESC, p.platform, p.post_id) <= ?
        ORDER BY s.target, list_position(['favor', 'against', 'none'], s.label), engagement DESC,
                 p.platform, p.post_id""",
        [*params, per_stance],
    )
    return _dicts(cursor)[1]
