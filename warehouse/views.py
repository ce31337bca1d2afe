"""Views users query with plain SQL.

`stance_labels` is the long form of the current model's labels; `posts_labeled` pivots it into one
column per configured target; `stance_daily` / `stance_weekly` aggregate it per target and platform
(platform 'all' for both together) with 95% Wilson intervals for each share.
"""

from __future__ import annotations

import json
import re

import duckdb

_TARGET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_STATIC_VIEWS = """
CREATE OR REPLACE MACRO wilson_low(k, n) AS CASE WHEN n = 0 THEN NULL ELSE
    greatest(0.0, ((k / n) + 1.920729 / n
      - 1.959964 * sqrt((k / n) * (1 - k / n) / n + 0.960365 / (n * n))) / (1 + 3.841459 / n)) END;
CREATE OR REPLACE MACRO wilson_high(k, n) AS CASE WHEN n = 0 THEN NULL ELSE
    least(1.0, ((k / n) + 1.920729 / n
      + 1.959964 * sqrt((k / n) * (1 - k / n) / n + 0.960365 / (n * n))) / (1 + 3.841459 / n)) END;

CREATE OR REPLACE VIEW stance_labels AS
SELECT p.platform, p.post_id, p.author_id, p.created_at, l.target, l.label,
       greatest(l.p_favor, l.p_against, l.p_none) AS confidence, l.model_id
FROM posts p
JOIN labels l ON l.platform = p.platform AND l.post_id = p.post_id
WHERE l.model_id = (SELECT value FROM settings WHERE key = 'current_model');
"""


def _period_view(name: str, bucket: str) -> str:
    return f"""
CREATE OR REPLACE VIEW {name} AS
WITH counted AS (
    SELECT {bucket} AS period, target, coalesce(platform, 'all') AS platform,
           count(*) AS posts,
           count(*) FILTER (label = 'favor') AS favor,
           count(*) FILTER (label = 'against') AS against,
           count(*) FILTER (label = 'none') AS none
    FROM stance_labels
    GROUP BY GROUPING SETS ((period, target, platform), (period, target))
)
SELECT period, target, platform, posts, favor, against, none,
       favor / posts AS share_favor,
       wilson_low(favor, posts) AS share_favor_low, wilson_high(favor, posts) AS share_favor_high,
       against / posts AS share_against,
       wilson_low(against, posts) AS share_against_low,
       wilson_high(against, posts) AS share_against_high,
       none / posts AS share_none
FROM counted;
"""


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_STATIC_VIEWS)
    con.execute(_period_view("stance_daily", "CAST(created_at AS DATE)"))
    con.execute(_period_view("stance_weekly", "CAST(date_trunc('week', created_at) AS DATE)"))
    _create_posts_labeled(con, get_targets(con))


def get_setting(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def get_targets(con: duckdb.DuckDBPyConnection) -> list[str]:
    value = get_setting(con, "targets")
    return json.loads(value) if value else []


def configure(con: duckdb.DuckDBPyConnection, targets: list[str], current_model: str | None) -> None:
    """Record the configured targets and current model; rebuild `posts_labeled` if they changed."""
    for name in targets:
        if not _TARGET_NAME.match(name):
            raise ValueError(f"target name {name!r} must be lower-case letters, digits and _")
    changed = get_targets(con) != targets
    con.execute("INSERT OR REPLACE INTO settings VALUES ('targets', ?)", [json.dumps(targets)])
    if current_model is not None:
        con.execute("INSERT OR REPLACE INTO settings VALUES ('current_model', ?)", [current_model])
    if changed:
        _create_posts_labeled(con, targets)


def _create_posts_labeled(con: duckdb.DuckDBPyConnection, targets: list[str]) -> None:
    columns = "".join(
        f""",
       max(s.label) FILTER (s.target = '{t}') AS {t},
       max(s.confidence) FILTER (s.target = '{t}') AS {t}_confidence"""
        for t in targets
    )
    con.execute(
        f"""
CREATE OR REPLACE VIEW posts_labeled AS
SELECT p.platform, p.post_id, any_value(p.kind) AS kind, any_value(p.community) AS community,
       any_value(p.author_handle) AS author_handle, any_value(p.title) AS title,
       any_value(p.text) AS text, any_value(p.created_at) AS created_at,
       any_value(p.url) AS url, any_value(p.deleted) AS deleted{columns}
FROM posts p
LEFT JOIN stance_labels s ON s.platform = p.platform AND s.post_id = p.post_id
GROUP BY p.platform, p.post_id
"""
    )
