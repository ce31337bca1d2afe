"""Views users query with plain SQL.

`stance_labels` is the long form of the current model's labels; `posts_labeled` pivots it into one
column per configured target. The period views aggregate it per period, target and platform
(platform 'all' for both together):

- `stance_daily` / `stance_weekly`: one row per labelled post; counts per label, shares and 95%
  Wilson intervals for each share.
- `stance_daily_authors` / `stance_weekly_authors`: one vote per author per period, so a few
  prolific accounts cannot dominate. An author's vote is the label they used most often for that
  target in that period; a tie between labels counts as 'none' (a split author takes no side).
  Posts without a known author each count as their own author.

Posts dated outside the plausible range (`plausible_time`: from the earliest source's launch to now
plus a day) are left out of the period views and listed in `posts_out_of_range`.

Empty periods are kept, not dropped: every day (week) between the first and the last labelled post
appears for every target and platform, with zero counts and NULL shares and intervals, so a gap in
the data is visible as a gap rather than silently joined over by a line.

Periods are UTC calendar days, and ISO weeks starting on Monday (`period` is that Monday's date),
computed in UTC whatever the session's time zone.

These definitions are (re)created by `create_views` after every schema migration; a change to them
ships as a new migration in `schema.py` so that existing files, including ones only ever opened by
readers, get the new definitions on their next open.
"""

from __future__ import annotations

import json
import re
from datetime import date

import duckdb

from .records import LABELS

_TARGET_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Wilson score interval for k successes in n trials at 95% (z = the normal 97.5% quantile);
# NULL when n = 0.
_STATIC_VIEWS = """
CREATE OR REPLACE MACRO wilson_bound(k, n, z) AS
    (k / n + z * z / (2 * n) + z * sqrt((k / n) * (1 - k / n) / n + z * z / (4 * n * n))) / (1 + z * z / n);
CREATE OR REPLACE MACRO wilson_low(k, n) AS
    CASE WHEN n = 0 THEN NULL ELSE greatest(0.0, wilson_bound(k, n, -1.959963984540054)) END;
CREATE OR REPLACE MACRO wilson_high(k, n) AS
    CASE WHEN n = 0 THEN NULL ELSE least(1.0, wilson_bound(k, n, 1.959963984540054)) END;

-- The plausible range of created_at: from the earliest source's launch (setting plausible_since,
-- written by the edge from the sources' registry) to now plus a day. Posts outside it are kept but
-- left out of every series: one post dated 0001 or 9999 would otherwise stretch a period grid to
-- millions of rows and overflow the calendar arithmetic of plots and exports.
CREATE OR REPLACE MACRO plausible_since() AS
    CAST(coalesce((SELECT value FROM settings WHERE key = 'plausible_since'), '1990-01-01') || ' 00:00:00+00'
         AS TIMESTAMPTZ);
CREATE OR REPLACE MACRO plausible_until() AS now() + INTERVAL 1 DAY;
CREATE OR REPLACE MACRO plausible_time(ts) AS ts >= plausible_since() AND ts < plausible_until();

CREATE OR REPLACE VIEW posts_out_of_range AS
SELECT platform, post_id, kind, created_at,
       CASE WHEN created_at < plausible_since()
            THEN 'before ' || strftime(plausible_since(), '%Y-%m-%d') ELSE 'in the future' END AS reason
FROM posts WHERE NOT plausible_time(created_at);

CREATE OR REPLACE VIEW stance_labels AS
SELECT p.platform, p.post_id, p.author_id, p.created_at, l.target, l.label,
       greatest(l.p_favor, l.p_against, l.p_none) AS confidence, l.model_id
FROM posts p
JOIN labels l ON l.platform = p.platform AND l.post_id = p.post_id
WHERE l.model_id = (SELECT value FROM settings WHERE key = 'current_model');
"""

# UTC day / ISO week (Monday) of a TIMESTAMPTZ, independent of the session's TimeZone setting.
PERIOD_BUCKETS = {
    "day": "CAST(timezone('UTC', created_at) AS DATE)",
    "week": "CAST(date_trunc('week', timezone('UTC', created_at)) AS DATE)",
}
PERIOD_STEP = {"day": "INTERVAL 1 DAY", "week": "INTERVAL 7 DAY"}
PERIOD_VIEWS = {
    ("day", "posts"): "stance_daily",
    ("week", "posts"): "stance_weekly",
    ("day", "authors"): "stance_daily_authors",
    ("week", "authors"): "stance_weekly_authors",
}


def _share_columns(unit: str) -> str:
    columns = []
    for label in LABELS:
        columns.append(
            f"{label} / nullif({unit}, 0) AS share_{label}, "
            f"wilson_low({label}, {unit}) AS share_{label}_low, "
            f"wilson_high({label}, {unit}) AS share_{label}_high"
        )
    return ",\n       ".join(columns)


def _counted_posts(bucket: str) -> str:
    return f"""
    SELECT {bucket} AS period, target, coalesce(platform, 'all') AS platform,
           count(*) AS posts,
           count(*) FILTER (label = 'favor') AS favor,
           count(*) FILTER (label = 'against') AS against,
           count(*) FILTER (label = 'none') AS none
    FROM stance_labels WHERE plausible_time(created_at)
    GROUP BY GROUPING SETS ((period, target, platform), (period, target))"""


def _counted_authors(bucket: str) -> str:
    # One vote per (platform, author) and period: the label they used most; a tie counts as 'none'.
    # A post with no author id stands for an author of its own.
    return f"""
    WITH per_author AS (
        SELECT {bucket} AS period, target, platform, coalesce(author_id, 'post:' || post_id) AS author,
               count(*) AS posts,
               count(*) FILTER (label = 'favor') AS n_favor,
               count(*) FILTER (label = 'against') AS n_against,
               count(*) FILTER (label = 'none') AS n_none
        FROM stance_labels WHERE plausible_time(created_at)
        GROUP BY ALL
    ), votes AS (
        SELECT period, target, platform, posts,
               CASE WHEN n_favor > n_against AND n_favor > n_none THEN 'favor'
                    WHEN n_against > n_favor AND n_against > n_none THEN 'against'
                    ELSE 'none' END AS vote
        FROM per_author
    )
    SELECT period, target, coalesce(platform, 'all') AS platform,
           count(*) AS authors, sum(posts) AS posts,
           count(*) FILTER (vote = 'favor') AS favor,
           count(*) FILTER (vote = 'against') AS against,
           count(*) FILTER (vote = 'none') AS none
    FROM votes
    GROUP BY GROUPING SETS ((period, target, platform), (period, target))"""


def _period_view(period: str, unit: str) -> str:
    name = PERIOD_VIEWS[(period, unit)]
    bucket = PERIOD_BUCKETS[period]
    counted = _counted_posts(bucket) if unit == "posts" else _counted_authors(bucket)
    count_columns = "posts" if unit == "posts" else "authors, posts"
    filled = ", ".join(f"coalesce(c.{col}, 0) AS {col}" for col in (*count_columns.split(", "), *LABELS))
    # The grid of every period from the first to the last one with data, for every target and
    # platform seen, so that empty periods show up as zero counts instead of vanishing.
    return f"""
CREATE OR REPLACE VIEW {name} AS
WITH counted AS ({counted}
), keys AS (
    SELECT DISTINCT target, platform FROM counted
), periods AS (
    SELECT CAST(unnest(generate_series(CAST(min(period) AS TIMESTAMP), CAST(max(period) AS TIMESTAMP),
                                       {PERIOD_STEP[period]})) AS DATE) AS period
    FROM counted
), filled AS (
    SELECT p.period, k.target, k.platform, {filled}
    FROM periods p CROSS JOIN keys k
    LEFT JOIN counted c ON c.period = p.period AND c.target = k.target AND c.platform = k.platform
)
SELECT period, target, platform, {count_columns}, favor, against, none,
       {_share_columns(count_columns.split(", ")[0])}
FROM filled;
"""


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_STATIC_VIEWS)
    for period, unit in PERIOD_VIEWS:
        con.execute(_period_view(period, unit))
    _create_posts_labeled(con, get_targets(con))


def set_plausible_since(con: duckdb.DuckDBPyConnection, since: date) -> None:
    """The lower bound of plausible post dates (the edge passes the earliest source launch)."""
    if get_setting(con, "plausible_since") != since.isoformat():
        con.execute("INSERT OR REPLACE INTO settings VALUES ('plausible_since', ?)", [since.isoformat()])


def get_setting(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    row = con.execute("SELECT value FROM settings WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def set_setting(con: duckdb.DuckDBPyConnection, key: str, value: str) -> None:
    con.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", [key, value])


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
