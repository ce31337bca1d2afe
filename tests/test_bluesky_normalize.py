"""normalize_post: one postView → Post, with the SDK's own validation deciding what is invalid."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from collectors.bluesky_normalize import InvalidItem, normalize_post, post_web_url

DID = "did:plc:abcdefghijklmnopqrstuvwx"
URI = f"at://{DID}/app.bsky.feed.post/3lbtyfex62222"
QUOTED = "at://did:plc:zzzzzzzzzzzzzzzzzzzzzzzz/app.bsky.feed.post/3lbtyaaaaaa22"


def view(**record_extra) -> dict:
    return {
        "$type": "app.bsky.feed.defs#postView", "uri": URI, "cid": "bafyreiabc",
        "author": {"did": DID, "handle": "ann.bsky.social"},
        "record": {"$type": "app.bsky.feed.post", "text": "Sora leak", "createdAt": "2024-11-26T16:00:00+01:00",
                   "langs": ["de", "en"], **record_extra},
        "indexedAt": "2024-11-26T15:00:02.5Z", "likeCount": 4, "replyCount": 0, "repostCount": 2, "quoteCount": 1,
    }


def test_times_are_utc_and_first_language_is_kept():
    post = normalize_post(view(), ["sora leak"])
    assert post.created_at == datetime(2024, 11, 26, 15, 0, tzinfo=UTC)
    assert post.indexed_at == datetime(2024, 11, 26, 15, 0, 2, 500000, tzinfo=UTC)
    assert (post.kind, post.language, post.author_id, post.author_handle) == ("post", "de", DID, "ann.bsky.social")
    assert (post.like_count, post.repost_count, post.quote_count, post.score) == (4, 2, 1, None)
    assert post.matched_queries == ("sora leak",) and post.raw["uri"] == URI


def test_quote_with_media_and_its_link():
    embed = {"$type": "app.bsky.embed.recordWithMedia",
             "record": {"$type": "app.bsky.embed.record", "record": {"uri": QUOTED, "cid": "bafyreiq"}},
             "media": {"$type": "app.bsky.embed.external",
                       "external": {"uri": "https://example.org/a", "title": "", "description": ""}}}
    post = normalize_post(view(embed=embed))
    assert post.kind == "quote" and post.url == "https://example.org/a" and post.parent_id is None


def test_quoting_a_feed_is_not_a_quote_post():
    feed = "at://did:plc:zzzzzzzzzzzzzzzzzzzzzzzz/app.bsky.feed.generator/cats"
    post = normalize_post(view(embed={"$type": "app.bsky.embed.record", "record": {"uri": feed, "cid": "bafyx"}}))
    assert post.kind == "post"


def test_reply_refs():
    ref = {"uri": QUOTED, "cid": "bafyreiq"}
    post = normalize_post(view(reply={"root": ref, "parent": {"uri": URI + "x", "cid": "bafyreip"}}))
    assert (post.kind, post.thread_id, post.parent_id) == ("reply", QUOTED, URI + "x")


@pytest.mark.parametrize(("broken", "reason"), [
    ({"author": {"handle": "no-did.bsky.social"}}, "no author DID"),
    ({"uri": None}, "no at:// post URI"),
    ({"uri": "https://bsky.app/profile/ann/post/1"}, "no at:// post URI"),
    ({"uri": "at://did:plc:x/app.bsky.feed.like/3l"}, "no at:// post URI"),
    ({"record": {"$type": "app.bsky.feed.repost", "subject": {"uri": QUOTED, "cid": "bafy"},
                 "createdAt": "2024-11-26T15:00:00Z"}}, "not a app.bsky.feed.post"),  # a repost is not a post
    ({"record": {"$type": "app.bsky.feed.post", "text": "x", "createdAt": "yesterday"}, "indexedAt": None},
     "neither createdAt nor indexedAt"),
])
def test_posts_without_uri_did_or_time_are_skipped(broken, reason):
    with pytest.raises(InvalidItem, match=reason):
        normalize_post({**view(), **broken})


def test_post_web_url_from_the_at_uri():
    uri = "at://did:plc:abc123xyz/app.bsky.feed.post/3lbzq7k2xyz2a"
    assert post_web_url(uri) == "https://bsky.app/profile/did:plc:abc123xyz/post/3lbzq7k2xyz2a"
    assert post_web_url("at://alice.example.com/app.bsky.feed.post/3k") == \
        "https://bsky.app/profile/alice.example.com/post/3k"
    # Not a post record: no address rather than a wrong one.
    for other in ("at://did:plc:abc/app.bsky.feed.generator/whats-hot", "at://did:plc:abc", "https://bsky.app/x",
                  "at://did:plc:abc/app.bsky.feed.post/", "at://did:plc:abc/app.bsky.feed.post/a/b", ""):
        assert post_web_url(other) is None, other


@pytest.mark.parametrize(("broken", "field", "value"), [
    ({"likeCount": "lots"}, "like_count", None),  # the SDK's strict integer refused the whole post
    ({"cid": None}, "cid", None),
    ({"record": {"$type": "app.bsky.feed.post", "createdAt": "2024-11-26T15:00:00Z"}}, "text", ""),  # no text
    ({"record": {"text": "Sora leak", "createdAt": "2024-11-26T15:00:00.123456789+00:00"}}, "created_at",
     datetime(2024, 11, 26, 15, 0, 0, 123456, tzinfo=UTC)),  # no $type, nine digits
])
def test_fields_the_sdk_refused_cost_only_themselves(broken, field, value):
    post = normalize_post({**view(), **broken})
    assert getattr(post, field) == value and post.post_id == URI and post.raw["uri"] == URI


def test_unreadable_created_at_falls_back_to_indexed_at_and_is_flagged():
    post = normalize_post(view(createdAt="last tuesday"))
    assert post.created_at == datetime(2024, 11, 26, 15, 0, 2, 500000, tzinfo=UTC)
    assert post.quality_flags == ("created_at_unreadable",)
    assert post.raw["record"]["createdAt"] == "last tuesday"


def test_a_client_clock_ahead_is_stored_as_sent_and_flagged():
    post = normalize_post(view(createdAt="2099-01-01T00:00:00Z"))
    assert post.created_at == datetime(2099, 1, 1, tzinfo=UTC)
    assert post.quality_flags == ("created_at_after_indexed_at",)
