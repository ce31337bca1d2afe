"""Bulk, idempotent upsert of normalized posts, with edit and deletion tracking.

Posts arrive as one Arrow table per batch and are merged in a handful of set-based statements, so
a page of 100 posts and a backfill of 100,000 cost the same few round trips.
"""

from __future__ import annotations

import contextlib
import json
import operator
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from .records import Post, UpsertResult

_ARROW_SCHEMA = pa.schema(
    [
        ("platform", pa.string()),
        ("post_id", pa.string()),
        ("kind", pa.string()),
        ("thread_id", pa.string()),
        ("parent_id", pa.string()),
        ("community", pa.string()),
        ("author_id", pa.string()),
        ("author_handle", pa.string()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("language", pa.string()),
        ("url", pa.string()),
        ("cid", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("indexed_at", pa.timestamp("us", tz="UTC")),
        ("score", pa.int64()),
        ("like_count", pa.int64()),
        ("reply_count", pa.int64()),
        ("repost_count", pa.int64()),
        ("quote_count", pa.int64()),
        ("edited", pa.bool_()),
        ("deleted", pa.bool_()),
        ("matched_queries", pa.list_(pa.string())),
        ("quality_flags", pa.list_(pa.string())),
        ("raw", pa.string()),
    ]
)

_COLUMNS = [f.name for f in _ARROW_SCHEMA]


_FIELDS = [name for name in _COLUMNS if name != "raw"]
_GET_FIELDS = operator.attrgetter(*_FIELDS)
_ENCODE_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode


def posts_to_arrow(posts: Sequence[Post]) -> pa.Table:
    """Column-wise conversion (transpose the records once), no per-row SQL."""
    if not posts:
        return _ARROW_SCHEMA.empty_table()
    columns = dict(zip(_FIELDS, map(list, zip(*map(_GET_FIELDS, posts), strict=True)), strict=True))
    columns["raw"] = [_ENCODE_JSON(p.raw) for p in posts]
    try:
        return pa.table(columns, schema=_ARROW_SCHEMA)
    except UnicodeEncodeError:
        # A lone surrogate (an API answer's escaped "\ud800") cannot be stored as UTF-8. Replace it
        # and flag the post instead of losing the batch; the fast path above pays nothing for this.
        return pa.table(_repair_surrogates(columns), schema=_ARROW_SCHEMA)


TEXT_REPAIRED = "text_repaired"
_SURROGATE = re.compile("[\ud800-\udfff]")


def _repair_surrogates(columns: dict[str, list]) -> dict[str, list]:
    repaired: set[int] = set()

    def fix(value, row: int):
        if isinstance(value, str) and _SURROGATE.search(value):
            repaired.add(row)
            return _SURROGATE.sub("\ufffd", value)
        if isinstance(value, tuple | list):
            return tuple(fix(v, row) for v in value)
        return value

    fixed = {name: [fix(v, row) for row, v in enumerate(values)] for name, values in columns.items()}
    fixed["quality_flags"] = [tuple(sorted({*flags, TEXT_REPAIRED})) if row in repaired else flags
                              for row, flags in enumerate(fixed["quality_flags"])]
    return fixed


# The incoming batch, deduplicated by key (last one wins) and compared with what is stored.
_STAGE = """
CREATE OR REPLACE TEMP TABLE upsert_stage AS
WITH incoming AS (
    SELECT * EXCLUDE (batch_seq), sha256(coalesce(title, '') || chr(10) || coalesce(text, '')) AS content_hash
    FROM upsert_batch
    QUALIFY row_number() OVER (PARTITION BY platform, post_id ORDER BY batch_seq DESC) = 1
),
compared AS (
    SELECT i.*,
           p.post_id IS NULL AS is_new,
           p.post_id IS NOT NULL AND NOT i.deleted AND p.content_hash <> i.content_hash AS is_edit,
           p.post_id IS NOT NULL AND i.deleted AND NOT p.deleted AS is_deletion,
           p.post_id IS NOT NULL AND (
               p.content_hash <> i.content_hash AND NOT i.deleted
               OR p.deleted <> i.deleted OR p.edited <> i.edited
               OR p.score IS DISTINCT FROM i.score OR p.like_count IS DISTINCT FROM i.like_count
               OR p.reply_count IS DISTINCT FROM i.reply_count
               OR p.repost_count IS DISTINCT FROM i.repost_count
               OR p.quote_count IS DISTINCT FROM i.quote_count
           ) AS is_update,
           p.post_id IS NOT NULL AND NOT list_has_all(p.matched_queries, i.matched_queries) AS new_queries,
           p.post_id IS NOT NULL AND NOT i.deleted AND p.quality_flags IS DISTINCT FROM i.quality_flags
               AS new_flags
    FROM incoming i
    LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id
)
SELECT * FROM compared
"""

_FLAGS = "is_new, is_edit, is_deletion, is_update, new_queries, new_flags"

_VERSIONS = """
INSERT INTO post_versions
SELECT platform, post_id, $seen_at,
       CASE WHEN is_new THEN 'created' WHEN is_edit THEN 'edited' ELSE 'deleted' END,
       CASE WHEN is_deletion THEN NULL ELSE title END,
       CASE WHEN is_deletion THEN NULL ELSE text END,
       CASE WHEN is_deletion THEN NULL ELSE content_hash END
FROM upsert_stage
WHERE is_new OR is_edit OR is_deletion
"""

_INSERT_NEW = f"""
INSERT INTO posts BY NAME
SELECT * EXCLUDE ({_FLAGS}), $seen_at AS first_seen_at, $seen_at AS last_seen_at
FROM upsert_stage WHERE is_new
"""

# Touching every known post's last_seen_at is cheap; the fuller updates below run only for posts
# that actually changed.
_TOUCH_SEEN = """
UPDATE posts SET last_seen_at = $seen_at
FROM upsert_stage s
WHERE posts.platform = s.platform AND posts.post_id = s.post_id AND NOT s.is_new
"""

# A post deleted upstream keeps its last known text: the deletion is recorded as a version,
# and what was said before it vanished stays available to the analysis.
_UPDATE_CHANGED = """
UPDATE posts SET
    title = CASE WHEN s.deleted THEN posts.title ELSE s.title END,
    text = CASE WHEN s.deleted THEN posts.text ELSE s.text END,
    content_hash = CASE WHEN s.deleted THEN posts.content_hash ELSE s.content_hash END,
    deleted = s.deleted OR posts.deleted,
    edited = s.edited OR posts.edited,
    score = coalesce(s.score, posts.score),
    like_count = coalesce(s.like_count, posts.like_count),
    reply_count = coalesce(s.reply_count, posts.reply_count),
    repost_count = coalesce(s.repost_count, posts.repost_count),
    quote_count = coalesce(s.quote_count, posts.quote_count),
    indexed_at = coalesce(s.indexed_at, posts.indexed_at),
    cid = coalesce(s.cid, posts.cid),
    raw = CASE WHEN s.deleted THEN posts.raw ELSE s.raw END
FROM upsert_stage s
WHERE posts.platform = s.platform AND posts.post_id = s.post_id AND s.is_update
"""

# Rewriting a LIST column is DuckDB's slowest update (10x the rest of a refresh), so quality_flags
# and matched_queries are rewritten only where they change.
_SET_FLAGS = """
UPDATE posts SET quality_flags = s.quality_flags
FROM upsert_stage s
WHERE posts.platform = s.platform AND posts.post_id = s.post_id AND NOT s.is_new AND NOT s.deleted
  AND posts.quality_flags <> s.quality_flags
"""

_ADD_QUERIES = """
UPDATE posts SET
    matched_queries = list_sort(list_distinct(list_concat(posts.matched_queries, s.matched_queries)))
FROM upsert_stage s
WHERE posts.platform = s.platform AND posts.post_id = s.post_id AND s.new_queries
"""


# Same reason: quality flags are rewritten only for the rare posts whose flags changed.
_SET_FLAGS = """
UPDATE posts SET quality_flags = s.quality_flags
FROM upsert_stage s
WHERE posts.platform = s.platform AND posts.post_id = s.post_id AND s.new_flags
"""


def upsert_posts(
    con: duckdb.DuckDBPyConnection,
    posts: Sequence[Post] | pa.Table,
    seen_at: datetime | None = None,
) -> UpsertResult:
    """Insert new posts and refresh known ones. Runs inside the caller's transaction if one is open."""
    batch = posts if isinstance(posts, pa.Table) else posts_to_arrow(posts)
    if batch.num_rows == 0:
        return UpsertResult(0, 0, 0)
    seen_at = seen_at or datetime.now(UTC)
    # batch_seq makes "the last copy of a post in the batch wins" well defined.
    batch = batch.append_column("batch_seq", pa.array(range(batch.num_rows), pa.int64()))
    con.register("upsert_batch", batch)
    try:
        con.execute(_STAGE)
        inserted, updated, versions, new_flags = con.execute(
            "SELECT count(*) FILTER (is_new), count(*) FILTER (is_update), "
            "count(*) FILTER (is_new OR is_edit OR is_deletion), count(*) FILTER (new_flags) FROM upsert_stage"
        ).fetchone()
        params = {"seen_at": seen_at}
        for statement in (_VERSIONS, _INSERT_NEW, _TOUCH_SEEN):
            con.execute(statement, params)
        con.execute(_UPDATE_CHANGED)
        con.execute(_SET_FLAGS)
        con.execute(_ADD_QUERIES)
        if new_flags:
            con.execute(_SET_FLAGS)
        con.execute("DROP TABLE upsert_stage")
    except BaseException:
        # In an aborted transaction even unregister fails; its error must not hide the real one.
        with contextlib.suppress(duckdb.Error):
            con.unregister("upsert_batch")
        raise
    con.unregister("upsert_batch")
    return UpsertResult(inserted, updated, versions)
