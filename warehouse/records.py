"""Plain data classes that cross package boundaries.

Collectors produce these, the warehouse stores them; neither side needs to know how the
other works. Nothing here touches DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

PLATFORMS = ("reddit", "bluesky")
KINDS = ("submission", "comment", "post", "reply", "quote")


@dataclass(frozen=True)
class Post:
    """One normalized post or comment, as seen at one moment."""

    platform: str  # "reddit" | "bluesky"
    post_id: str  # Reddit fullname (t3_…, t1_…) or Bluesky at:// URI
    kind: str  # one of KINDS
    created_at: datetime  # UTC, tz-aware
    text: str
    thread_id: str | None = None  # id of the thread's root (None for a root)
    parent_id: str | None = None  # id of the direct parent (None for a root)
    community: str | None = None  # subreddit
    author_id: str | None = None  # Reddit username / Bluesky DID
    author_handle: str | None = None
    title: str | None = None
    language: str | None = None
    url: str | None = None
    cid: str | None = None  # Bluesky content id
    indexed_at: datetime | None = None  # Bluesky AppView index time
    score: int | None = None  # Reddit net score
    like_count: int | None = None
    reply_count: int | None = None  # Reddit num_comments / Bluesky replyCount
    repost_count: int | None = None
    quote_count: int | None = None
    edited: bool = False
    deleted: bool = False  # deleted by its author or removed by a moderator upstream
    matched_queries: tuple[str, ...] = ()
    # What was odd about the item as received (e.g. "text_repaired", "created_at_after_indexed_at"):
    # stored as it came where possible, flagged so analyses can tell.
    quality_flags: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """Where the next incremental pass of one query resumes."""

    platform: str
    query_key: str  # e.g. "r/OpenAI:sora leak" or "bsky:sora leak"
    newest_created_at: datetime | None = None
    newest_id: str | None = None
    cursor: str | None = None  # an opaque paging cursor, when resuming mid-backfill


@dataclass(frozen=True)
class Page:
    """One page of results as a collector hands it over: committed atomically with its checkpoint."""

    platform: str
    query_key: str
    posts: list[Post]
    checkpoint: Checkpoint | None = None  # None: leave the stored checkpoint as it is
    skipped: int = 0  # malformed items dropped from this page
    rate_limit_waits: int = 0  # times the collector waited on a rate limit before this page
    cap_hit: bool = False  # the listing or search result cap was reached


@dataclass(frozen=True)
class UpsertResult:
    inserted: int  # posts never seen before
    updated: int  # known posts whose text, deletion, edit flag or counts changed
    versions: int  # post_versions rows written (creations, edits, deletions)
