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
