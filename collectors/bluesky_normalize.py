"""Turn one Bluesky postView (JSON as the AppView sent it) into a normalized `Post`.

Read from plain dicts, not the SDK's models: real records carry shapes the SDK's strict models
refuse (an `external` embed whose inner object has its own `$type`, fields and embed types newer
than the SDK), and one refused field used to cost the whole post. Here a post is skipped only when
what leakwatch cannot do without is unreadable: its at:// post URI, its author's DID, or any
parseable time (createdAt, else indexedAt). Every other field is read when it has the expected
shape and left empty otherwise; `raw` always keeps the whole postView.

Pages are decoded here too (`decode_page`): invalid UTF-8 and escaped lone surrogates are replaced
with U+FFFD instead of making the page unreadable, and the posts that needed it are flagged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic_core import from_json

from warehouse.records import Post

POST_NSID = "app.bsky.feed.post"
# createdAt comes from the author's client; more than this ahead of indexedAt is a wrong clock.
CLIENT_CLOCK_SLACK = timedelta(minutes=5)

# Flags stored in posts.quality_flags: what was odd about a post, so analyses can leave it out.
TEXT_REPAIRED = "text_repaired"  # invalid UTF-8 or lone surrogates replaced with U+FFFD
CREATED_AFTER_INDEXED = "created_at_after_indexed_at"  # the client's clock was ahead
CREATED_UNREADABLE = "created_at_unreadable"  # createdAt missing or unparseable: indexedAt used
RECORD_UNREADABLE = "record_unreadable"  # no record object: text and refs left empty
INDEXED_IN_FUTURE = "indexed_at_in_future"  # later than the request time: not used as a checkpoint

_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidItem(ValueError):
    """A postView without a readable URI, author DID or time: skipped and counted."""


def parse_time(value: str) -> datetime:
    """An atproto datetime as a UTC-aware datetime; a value without zone is read as UTC."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def post_web_url(uri: str) -> str | None:
    """The bsky.app address of a post's at:// URI (at://<did>/app.bsky.feed.post/<rkey>), or None
    for anything that is not a post record URI. The DID form of the profile never goes stale when
    the author changes handle."""
    repo, _, rest = uri.removeprefix("at://").partition("/")
    collection, _, rkey = rest.partition("/")
    if not uri.startswith("at://") or not repo or collection != POST_NSID or not rkey or "/" in rkey:
        return None
    return f"https://bsky.app/profile/{quote(repo, safe=':.')}/post/{quote(rkey, safe='')}"


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except (ValueError, OverflowError):  # OverflowError: year 1 with a positive offset, and the like
        return None


# -- pages ----------------------------------------------------------------------------------------

def decode_page(content: bytes) -> tuple[dict[str, Any], bool]:
    """A JSON object from an answer body, and whether its strings may hold lone surrogates.

    When they may, the caller passes each item through `scrub` (so it knows which items were
    repaired). Raises ValueError when the body is not a JSON object even so (truncated, not JSON):
    the caller retries that like any other broken answer.
    """
    try:
        body, dirty = from_json(content), False  # the fast path: valid UTF-8, no lone surrogates
    except ValueError:
        # surrogateescape turns each invalid byte into a lone surrogate; json.loads keeps escaped
        # lone surrogates (\ud800) as they are; scrub() then replaces both with U+FFFD.
        body, dirty = json.loads(content.decode("utf-8", "surrogateescape")), True
    if not isinstance(body, dict):
        raise ValueError("the answer is not a JSON object")
    return body, dirty


def scrub(value: Any) -> tuple[Any, int]:
    """`value` with every lone surrogate in its strings (keys included) replaced; how many strings changed."""
    if isinstance(value, str):
        fixed, count = _SURROGATE.subn("\ufffd", value)
        return fixed, int(count > 0)
    if isinstance(value, dict):
        out, total = {}, 0
        for key, item in value.items():
            key, k = scrub(key)
            out[key], n = scrub(item)
            total += k + n
        return out, total
    if isinstance(value, list):
        items, total = [], 0
        for item in value:
            fixed, n = scrub(item)
            items.append(fixed)
            total += n
        return items, total
    return value, 0


# -- one post -------------------------------------------------------------------------------------

def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _post_uri(value: Any) -> str | None:
    """An at:// URI naming a post record (at://<did>/app.bsky.feed.post/<rkey>), else None."""
    if not isinstance(value, str) or not value.startswith("at://"):
        return None
    parts = value[5:].split("/")
    return value if len(parts) == 3 and parts[1] == POST_NSID and all(parts) else None


def _embed_kind(embed: dict[str, Any]) -> str | None:
    """The embed's type: its `$type`, or, without one, what its shape says it is."""
    kind = embed.get("$type")
    if isinstance(kind, str):
        return kind.split("#")[0]
    if "media" in embed and "record" in embed:
        return "app.bsky.embed.recordWithMedia"
    if "external" in embed:
        return "app.bsky.embed.external"
    if "record" in embed:
        return "app.bsky.embed.record"
    return None


def _quoted_uri(embed: dict[str, Any]) -> str | None:
    """The at:// URI of the post a quote embeds; quoting a feed or a list is not a quote post."""
    kind = _embed_kind(embed)
    if kind == "app.bsky.embed.record":
        return _post_uri(_dict(embed.get("record")).get("uri"))
    if kind == "app.bsky.embed.recordWithMedia":
        return _post_uri(_dict(_dict(embed.get("record")).get("record")).get("uri"))
    return None


def _external_url(embed: dict[str, Any]) -> str | None:
    kind = _embed_kind(embed)
    if kind == "app.bsky.embed.external":
        return _str(_dict(embed.get("external")).get("uri"))
    if kind == "app.bsky.embed.recordWithMedia":
        return _external_url(_dict(embed.get("media")))
    return None


def _language(langs: Any) -> str | None:
    if isinstance(langs, list):
        return next((lang for lang in langs if isinstance(lang, str) and lang), None)
    return None


def normalize_post(view: Any, matched_queries: Sequence[str] = (), flags: Sequence[str] = ()) -> Post:
    """One postView → Post. Raises InvalidItem only for a missing URI, author DID or time."""
    if not isinstance(view, dict):
        raise InvalidItem(f"not a JSON object: {str(view)[:80]}")
    uri = _post_uri(view.get("uri"))
    if uri is None:
        raise InvalidItem(f"no at:// post URI (uri={str(view.get('uri'))[:100]!r})")
    author = _dict(view.get("author"))
    did = author.get("did")
    if not isinstance(did, str) or not did.startswith("did:"):
        raise InvalidItem(f"{uri}: no author DID")
    record = view.get("record")
    found = list(flags)
    if not isinstance(record, dict):
        found.append(RECORD_UNREADABLE)
        record = {}
    record_type = record.get("$type")
    if isinstance(record_type, str) and record_type != POST_NSID:
        raise InvalidItem(f"{uri}: record is a {record_type[:60]}, not a {POST_NSID}")
    created_at, indexed_at = _time(record.get("createdAt")), _time(view.get("indexedAt"))
    if created_at is None:
        if indexed_at is None:
            raise InvalidItem(f"{uri}: neither createdAt nor indexedAt is a readable time")
        found.append(CREATED_UNREADABLE)
        created_at = indexed_at
    elif indexed_at is not None and created_at > indexed_at + CLIENT_CLOCK_SLACK:
        found.append(CREATED_AFTER_INDEXED)
    reply = _dict(record.get("reply"))
    parent = _post_uri(_dict(reply.get("parent")).get("uri"))
    root = _post_uri(_dict(reply.get("root")).get("uri")) or parent
    embed = _dict(record.get("embed"))
    quoted = _quoted_uri(embed)
    text = record.get("text")
    return Post(
        platform="bluesky",
        post_id=uri,
        kind="reply" if parent else ("quote" if quoted else "post"),
        created_at=created_at,
        text=text if isinstance(text, str) else "",
        thread_id=root if parent else None,
        parent_id=parent,
        author_id=did,
        author_handle=_str(author.get("handle")),
        language=_language(record.get("langs")),
        url=_external_url(embed),
        cid=_str(view.get("cid")),
        indexed_at=indexed_at,
        like_count=_count(view.get("likeCount")),
        reply_count=_count(view.get("replyCount")),
        repost_count=_count(view.get("repostCount")),
        quote_count=_count(view.get("quoteCount")),
        matched_queries=tuple(sorted(set(matched_queries))),
        quality_flags=tuple(sorted(set(found))),
        raw=view,
    )


def sort_at(post: Post) -> datetime:
    """What searchPosts sorts and filters on: the earlier of createdAt and indexedAt (per its lexicon)."""
    return min(post.created_at, post.indexed_at) if post.indexed_at else post.created_at
