"""Normalization of Reddit API items into Posts: no HTTP, no praw."""

from datetime import UTC, datetime

import pytest

from collectors.reddit import MalformedItem, normalize

SUBMISSION = {
    "id": "1h0ab12", "name": "t3_1h0ab12", "title": "Sora leaked on Hugging Face",
    "selftext": "Artists say they were PR puppets.", "author": "pixel_otter", "subreddit": "OpenAI",
    "created_utc": 1732633200.0, "score": 412, "num_comments": 57, "edited": False,
    "permalink": "/r/OpenAI/comments/1h0ab12/sora_leaked/", "url": "https://huggingface.co/spaces/x",
    "removed_by_category": None,
}
COMMENT = {
    "id": "lz9k2aa", "name": "t1_lz9k2aa", "body": "Testers should be paid.", "author": "ink_badger",
    "parent_id": "t1_lz9k0zz", "link_id": "t3_1h0ab12", "subreddit": "OpenAI", "created_utc": 1732634000,
    "score": -3, "edited": 1732635000.5, "permalink": "/r/OpenAI/comments/1h0ab12/sora_leaked/lz9k2aa/",
}


def test_submission_fields() -> None:
    post = normalize(SUBMISSION, ("sora leak",))
    assert post.post_id == "t3_1h0ab12" and post.kind == "submission" and post.platform == "reddit"
    assert post.created_at == datetime(2024, 11, 26, 15, 0, tzinfo=UTC)
    assert (post.title, post.text) == ("Sora leaked on Hugging Face", "Artists say they were PR puppets.")
    assert (post.community, post.author_id, post.author_handle) == ("OpenAI", "pixel_otter", "pixel_otter")
    assert (post.score, post.reply_count) == (412, 57)
    assert post.url == "https://www.reddit.com/r/OpenAI/comments/1h0ab12/sora_leaked/"
    assert post.thread_id is None and post.parent_id is None
    assert not post.edited and not post.deleted
    assert post.matched_queries == ("sora leak",)
    assert post.raw["url"] == "https://huggingface.co/spaces/x"  # the link target stays in the raw JSON


def test_comment_fields() -> None:
    post = normalize(COMMENT)
    assert post.kind == "comment" and post.title is None
    assert (post.parent_id, post.thread_id) == ("t1_lz9k0zz", "t3_1h0ab12")
    assert post.score == -3 and post.reply_count is None
    assert post.edited  # Reddit sends the edit time instead of `false`
    assert post.created_at.tzinfo is not None


@pytest.mark.parametrize(("changes", "deleted"), [
    ({"author": "[deleted]", "body": "[deleted]"}, True),  # deleted by its author
    ({"author": "[deleted]", "body": "[removed]"}, True),  # removed by a moderator
    ({"body": "[deleted]"}, False),  # someone literally wrote "[deleted]"
])
def test_comment_deletion(changes: dict, deleted: bool) -> None:
    post = normalize({**COMMENT, **changes})
    assert post.deleted is deleted
    assert (post.author_id is None) is (changes.get("author") == "[deleted]")


def test_removed_submission_keeps_author_but_is_deleted() -> None:
    post = normalize({**SUBMISSION, "selftext": "[removed]", "removed_by_category": "moderator"})
    assert post.deleted and post.author_id == "pixel_otter"


def test_link_post_without_selftext() -> None:
    post = normalize({**SUBMISSION, "selftext": ""})
    assert post.text == "" and post.title == "Sora leaked on Hugging Face"


@pytest.mark.parametrize("changes", [
    {"created_utc": "not-a-timestamp"},
    {"created_utc": None},
    {"name": None},
    {"name": "t5_2qh1i"},  # a subreddit, not a post
    {"title": None},
    {"selftext": 42},
])
def test_malformed_items_are_rejected(changes: dict) -> None:
    with pytest.raises(MalformedItem):
        normalize({**SUBMISSION, **changes})


def test_removed_text_with_the_author_present_is_a_removal_and_not_stored() -> None:
    post = normalize({**COMMENT, "body": "[removed]"})
    assert post.deleted and post.text is None and post.author_id == "ink_badger"


def test_deleted_account_is_not_a_deleted_post() -> None:
    post = normalize({**COMMENT, "author": "[deleted]"})
    assert not post.deleted and post.text == "Testers should be paid." and post.author_id is None


@pytest.mark.parametrize("stamp", [float("nan"), float("inf"), float("-inf"), 1e12, -1e12])
def test_unreadable_times_are_malformed(stamp: float) -> None:
    with pytest.raises(MalformedItem, match="not a representable time"):
        normalize({**COMMENT, "created_utc": stamp})


def test_odd_but_readable_times_are_kept_and_flagged() -> None:
    now = datetime(2024, 11, 27, tzinfo=UTC)
    assert normalize({**COMMENT, "created_utc": 4102444800}, now=now).quality_flags == ("created_at_in_future",)
    assert normalize({**COMMENT, "created_utc": 0}, now=now).quality_flags == ("created_at_before_reddit",)
    assert normalize(COMMENT, now=now).quality_flags == ()


def test_raw_leaves_out_only_the_replies_subtree() -> None:
    post = normalize({**COMMENT, "replies": {"kind": "Listing", "data": {"children": []}}, "all_awardings": []})
    assert "replies" not in post.raw and post.raw["all_awardings"] == [] and set(post.raw) == set(COMMENT) | {
        "all_awardings"}
