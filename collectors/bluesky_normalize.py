"""Turn one Bluesky postView (as JSON) into a normalized `Post`, validated by the atproto SDK's models."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from atproto_client import models
from atproto_client.models.utils import get_or_create

from warehouse.records import Post

POST_NSID = "app.bsky.feed.post"
_QUOTE_EMBEDS = ("app.bsky.embed.record", "app.bsky.embed.recordWithMedia")


class InvalidItem(ValueError):
    """A postView the SDK refuses, or whose record is not a usable post: skipped and counted."""


def post_web_url(at_uri: str) -> str | None:
    """The bsky.app address of a post, from its at:// URI (at://<did>/app.bsky.feed.post/<rkey>)."""
    parts = at_uri.removeprefix("at://").split("/") if at_uri.startswith("at://") else []
    if len(parts) != 3 or parts[1] != POST_NSID or not parts[0] or not parts[2]:
        return None
    return f"https://bsky.app/profile/{parts[0]}/post/{parts[2]}"


def parse_time(value: str) -> datetime:
    """An atproto datetime as a UTC-aware datetime; a value without zone is read as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _quoted_uri(embed: Any) -> str | None:
    """The at:// URI a quote post embeds, if its embed quotes a post."""
    py_type = getattr(embed, "py_type", None)
    if py_type == "app.bsky.embed.record":
        uri = embed.record.uri
    elif py_type == "app.bsky.embed.recordWithMedia":
        uri = embed.record.record.uri
    else:
        return None
    return uri if f"/{POST_NSID}/" in uri else None  # quoting a feed or a list is not a quote post


def _external_url(embed: Any) -> str | None:
    py_type = getattr(embed, "py_type", None)
    if py_type == "app.bsky.embed.external":
        return embed.external.uri
    if py_type == "app.bsky.embed.recordWithMedia":
        return _external_url(embed.media)
    return None


def normalize_post(view: dict[str, Any], matched_queries: Sequence[str] = ()) -> Post:
    """One postView dict → Post. Raises InvalidItem for anything the SDK's validation refuses."""
    try:
        post_view = get_or_create(view, models.AppBskyFeedDefs.PostView, strict=True)
    except Exception as exc:  # the SDK raises ModelError (pydantic's message inside)
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidItem(f"{view.get('uri', '?')}: {first_line}") from None
    record = post_view.record
    if not isinstance(record, models.AppBskyFeedPost.Record):
        # Reposts, likes and records that failed the post schema fall back to other types.
        kind = getattr(record, "py_type", None) or (record.get("$type") if isinstance(record, dict) else None)
        raise InvalidItem(f"{post_view.uri}: record is not a valid {POST_NSID} (got {kind or type(record).__name__})")
    try:
        created_at = parse_time(record.created_at)
        indexed_at = parse_time(post_view.indexed_at)
    except ValueError as exc:
        raise InvalidItem(f"{post_view.uri}: {exc}") from None
    reply = record.reply
    quoted = _quoted_uri(record.embed)
    kind = "reply" if reply else ("quote" if quoted else "post")
    return Post(
        platform="bluesky",
        post_id=post_view.uri,
        kind=kind,
        created_at=created_at,
        text=record.text,
        thread_id=reply.root.uri if reply else None,
        parent_id=reply.parent.uri if reply else None,
        author_id=post_view.author.did,
        author_handle=post_view.author.handle,
        language=record.langs[0] if record.langs else None,
        url=_external_url(record.embed),
        cid=post_view.cid,
        indexed_at=indexed_at,
        like_count=post_view.like_count,
        reply_count=post_view.reply_count,
        repost_count=post_view.repost_count,
        quote_count=post_view.quote_count,
        matched_queries=tuple(sorted(set(matched_queries))),
        raw=view,
    )
