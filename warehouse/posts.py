"""Bulk, idempotent upsert of normalized posts, with edit and deletion tracking.

Posts arrive as one Arrow table per batch and are merged in a handful of set-based statements, so
a page of 100 posts and a backfill of 100,000 cost the same few round trips.
"""

from __future__ import annotations

import json
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
        ("raw", pa.string()),
    ]
)

_COLUMNS = [f.name for f in _ARROW_SCHEMA]


def posts_to_arrow(posts: Sequence[Post]) -> pa.Table:
    """Column-wise conversion: one pass per column, no per-row SQL."""
    columns = {name: [getattr(p, name) for p in posts] for name in _COLUMNS if name != "raw"}
    columns["matched_queries"] = [list(p.matched_queries) for p in posts]
    columns["raw"] = [json.dumps(p.raw, ensure_ascii=False, default=str) for p in posts]
    return pa.table(columns, schema=_ARROW_SCHEMA)


# The incoming batch, deduplicated by key (last one wins) and compared with what is stored.
_STAGE = """
CREATE OR REPLACE TEMP TABLE upsert_stage AS
WITH incoming AS (
    SELECT * EXCLUDE (batch_seq), sha256(coalesce(title, '') || chr(10) || text) AS content_hash
    FROM upsert_batch
    QUALIFY row_number() OVER (PARTITION BY platform, post_id ORDER BY batch_seq DESC) = 1
)
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
       ) AS is_update
FROM incoming i
LEFT JOIN posts p ON p.platform = i.platform AND p.post_id = i.post_id
"""

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

# A post deleted upstream keeps its last known text: the deletion is recorded as a version,
# and the analysis of what was said before it vanished is not lost.
_MERGE = """
INSERT INTO posts BY NAME
SELECT * EXCLUDE (is_new, is_edit, is_deletion, is_update),
       $seen_at AS first_seen_at, $seen_at AS last_seen_at
FROM upsert_stage
ON CONFLICT (platform, post_id) DO UPDATE SET
    last_seen_at = excluded.last_seen_at,
    title = CASE WHEN excluded.deleted THEN posts.title ELSE excluded.title END,
    text = CASE WHEN excluded.deleted THEN posts.text ELSE excluded.text END,
    content_hash = CASE WHEN excluded.deleted THEN posts.content_hash ELSE excluded.content_hash END,
    deleted = excluded.deleted OR posts.deleted,
    edited = excluded.edited OR posts.edited,
    score = coalesce(excluded.score, posts.score),
    like_count = coalesce(excluded.like_count, posts.like_count),
    reply_count = coalesce(excluded.reply_count, posts.reply_count),
    repost_count = coalesce(excluded.repost_count, posts.repost_count),
    quote_count = coalesce(excluded.quote_count, posts.quote_count),
    indexed_at = coalesce(excluded.indexed_at, posts.indexed_at),
    cid = coalesce(excluded.cid, posts.cid),
    matched_queries = list_sort(list_distinct(list_concat(posts.matched_queries, excluded.matched_queries))),
    raw = CASE WHEN excluded.deleted THEN posts.raw ELSE excluded.raw END
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
        inserted, updated, versions = con.execute(
            "SELECT count(*) FILTER (is_new), count(*) FILTER (is_update), "
            "count(*) FILTER (is_new OR is_edit OR is_deletion) FROM upsert_stage"
        ).fetchone()
        params = {"seen_at": seen_at}
        con.execute(_VERSIONS, params)
        con.execute(_MERGE, params)
        con.execute("DROP TABLE upsert_stage")
    finally:
        con.unregister("upsert_batch")
    return UpsertResult(inserted, updated, versions)
