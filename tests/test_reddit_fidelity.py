"""What real Reddit answers do to a collection, through real praw against the replay server: ties and
late indexing, removals, raw JSON, permalinks, "continue this thread", odd timestamps, broken text,
broken submissions, queries of threads, truncated 400s."""

from __future__ import annotations

import json
import math
from datetime import UTC, timedelta

import duckdb
import pytest
from conftest import query, reddit_section

import warehouse
from collectors.replay.reddit_api import DROP
from collectors.replay.reddit_shapes import install, reddit_shapes
from collectors.replay.server import Fault
from leakwatch.collect import RunSummary, make_collector, run_collection


def collect(config, server, **bounds) -> RunSummary:
    return run_collection(config, make_collector(config, "reddit", clock=lambda: server.now, **bounds))


def stored(config) -> set[str]:
    return {r[0] for r in query(config.warehouse_path, "SELECT post_id FROM posts")}


def row(config, post_id: str, columns: str) -> tuple:
    return query(config.warehouse_path, f"SELECT {columns} FROM posts WHERE post_id = ?", [post_id])[0]


def to_label(config) -> set[str]:
    con = duckdb.connect(str(config.warehouse_path), read_only=True)
    try:
        return set(warehouse.posts_to_label(con, "m", ["openai"]).column("post_id").to_pylist())
    finally:
        con.close()


# -- 11.2: incremental passes miss nothing ------------------------------------------------------------

def test_same_second_ties_listed_out_of_id_order_are_not_missed(reddit_env, reddit_corpus, reddit_server,
                                                                 make_config):
    older = [reddit_corpus.submission(i) for i in range(3)]
    a, b, x = (reddit_corpus.submission(10) for _ in range(3))  # one second, ids a < b < x
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    server.listing_rank.update({a.id: 3, b.id: 2, x.id: 1})  # Reddit lists them a, b, x
    server.indexed_at[b.id] = reddit_corpus.at(10) + timedelta(seconds=2)  # b turns up a moment later
    # No time overlap at all: the same second alone must be read again.
    _, config = make_config(reddit=reddit_section(server, overlap_minutes=0, refresh_days=0))
    collect(config, server)
    assert stored(config) == {f"t3_{i.id}" for i in (*older, a, x)}

    server.now = reddit_corpus.at(11)
    second = collect(config, server)
    assert f"t3_{b.id}" in stored(config)  # below the checkpoint (a, x) in the listing, yet new
    assert second.inserted == 1 and second.fetched == 1  # a and x were passed over, not refetched


def test_late_indexed_post_is_found_by_the_overlap(reddit_env, reddit_corpus, reddit_server, make_config):
    subs = [reddit_corpus.submission(10 * i) for i in range(7)]  # minutes 0..60
    late = reddit_corpus.submission(45, text="Indexed half an hour late.")
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(70))
    server.indexed_at[late.id] = reddit_corpus.at(75)
    _, config = make_config(reddit=reddit_section(server, overlap_minutes=30, refresh_days=0))
    collect(config, server)
    assert f"t3_{late.id}" not in stored(config)

    server.now = reddit_corpus.at(80)
    before = len(server.requests)
    second = collect(config, server)
    assert f"t3_{late.id}" in stored(config) and second.inserted == 1
    threads = [r.path for r in server.requests[before:] if r.path.startswith("/comments/")]
    assert threads == [f"/comments/{late.id}/"]  # the stored posts of the overlap cost no thread fetch
    assert len(stored(config)) == len(subs) + 1


# -- 11.5: removals and deletions ----------------------------------------------------------------------

def test_removed_comment_keeps_its_last_text_and_is_marked_deleted(reddit_env, reddit_corpus, reddit_server,
                                                                   make_config):
    sub = reddit_corpus.submission(0)
    comment = reddit_corpus.comment(sub, 5, text="OpenAI should pay the testers.")
    account = reddit_corpus.comment(sub, 6, text="My account is gone, my words are not.")
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    _, config = make_config(reddit=reddit_section(server))
    collect(config, server)

    # A moderator removes the comment: Reddit keeps the author and sends "[removed]" as the body.
    server.extra_fields[comment.id] = {"body": "[removed]"}
    server.extra_fields[account.id] = {"author": "[deleted]", "author_fullname": DROP}
    server.now = reddit_corpus.at(20)
    collect(config, server)
    assert row(config, f"t1_{comment.id}", "text, deleted, author_id") == (
        "OpenAI should pay the testers.", True, "ink_badger")
    changes = [r[0] for r in query(config.warehouse_path, "SELECT change FROM post_versions WHERE post_id = ? "
                                                          "ORDER BY observed_at", [f"t1_{comment.id}"])]
    assert changes == ["created", "deleted"]
    # A deleted account is not a deleted post: the text stays (and the author name seen before).
    assert row(config, f"t1_{account.id}", "text, deleted, author_id") == (
        "My account is gone, my words are not.", False, "ink_badger")
    assert to_label(config) >= {f"t1_{comment.id}", f"t1_{account.id}"}  # their last words stay labelled


def test_removal_seen_first_stores_no_text_and_gets_no_label(reddit_env, reddit_corpus, reddit_server,
                                                            make_config):
    sub = reddit_corpus.submission(0)
    removed = reddit_corpus.comment(sub, 5, text="never shown")
    post = reddit_corpus.submission(1, text="never shown either")
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    server.extra_fields[removed.id] = {"body": "[removed]"}
    server.extra_fields[post.id] = {"selftext": "[removed]"}  # no removed_by_category: still a removal
    _, config = make_config(reddit=reddit_section(server))
    collect(config, server)
    assert row(config, f"t1_{removed.id}", "text, deleted") == (None, True)
    assert row(config, f"t3_{post.id}", "text, title, deleted") == (None, post.title, True)
    assert to_label(config) == {f"t3_{sub.id}"}


# -- 11.6 / 11.7: raw as sent, permalinks ------------------------------------------------------------

def test_raw_is_the_json_reddit_sent(reddit_env, reddit_server, make_config):
    shapes = [s for s in reddit_shapes() if s.shape in ("gallery", "video", "crosspost", "poll",
                                                         "flair, awards, distinguished, stickied")]
    server = reddit_server([])
    install(server, shapes)
    server.now = max(s.item.created_at for s in shapes)
    _, config = make_config(reddit=reddit_section(server))
    collect(config, server)
    for shaped in shapes:
        raw = json.loads(row(config, f"t3_{shaped.item.id}", "raw")[0])
        sent = server._submission_data(shaped.item, server.now)
        assert raw == sent, shaped.shape
    poll = next(s for s in shapes if s.shape == "poll")
    raw = json.loads(row(config, f"t3_{poll.item.id}", "raw")[0])
    assert [o["text"] for o in raw["poll_data"]["options"]][0] == "Yes, the testers had a point"


def test_comment_without_permalink_gets_one_built(reddit_env, reddit_corpus, reddit_server, make_config):
    sub = reddit_corpus.submission(0)
    comment = reddit_corpus.comment(sub, 3)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(5))
    server.extra_fields[comment.id] = {"permalink": DROP}
    _, config = make_config(reddit=reddit_section(server))
    collect(config, server)
    assert row(config, f"t1_{comment.id}", "url")[0] == (
        f"https://www.reddit.com/r/OpenAI/comments/{sub.id}/_/{comment.id}/")


# -- 11.9: "continue this thread" and stubs inside morechildren answers ----------------------------------

def test_continue_this_thread_and_nested_stubs_are_followed(reddit_env, reddit_corpus, reddit_server, make_config):
    sub = reddit_corpus.submission(0)
    chain = [reddit_corpus.comment(sub, 1, text="depth 0")]
    for depth in range(1, 7):
        chain.append(reddit_corpus.comment(chain[-1], 1 + depth, text=f"depth {depth}"))
    siblings = [reddit_corpus.comment(sub, 20 + i, text=f"sibling {i}") for i in range(6)]
    nephews = [reddit_corpus.comment(siblings[-1], 40 + i, text=f"reply to the last sibling {i}") for i in range(3)]
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(60), comment_limit=9, morechildren_limit=2)
    server.max_depth = 3  # depth 3 and below comes as "continue this thread"
    _, config = make_config(reddit=reddit_section(server, replace_more_limit=32))
    collect(config, server)
    want = {f"t1_{c.id}" for c in (*chain, *siblings, *nephews)} | {f"t3_{sub.id}"}
    assert stored(config) == want
    assert len([r for r in server.requests if "/_/" in r.path]) == 2  # a continuation inside a continuation
    assert len(server.requests_to("/api/morechildren")) == 2  # the second stub came in the first answer
    assert row(config, f"t1_{chain[6].id}", "parent_id, thread_id") == (f"t1_{chain[5].id}", f"t3_{sub.id}")


def test_replace_more_limit_bounds_continued_threads(reddit_env, reddit_corpus, reddit_server, make_config):
    sub = reddit_corpus.submission(0)
    chain = [reddit_corpus.comment(sub, 1)]
    for depth in range(1, 8):
        chain.append(reddit_corpus.comment(chain[-1], 1 + depth))
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(60))
    server.max_depth = 2
    _, config = make_config(reddit=reddit_section(server, replace_more_limit=1))
    collect(config, server)
    assert len([r for r in server.requests if "/_/" in r.path]) == 1
    # The submission, two comments of the first answer, one new one from the continuation (which
    # repeats the comment it continues).
    assert len(stored(config)) == 1 + 2 + 1


# -- 12.1: a bad created_utc never poisons the checkpoint ---------------------------------------------

def test_future_created_utc_is_stored_flagged_and_never_the_checkpoint(reddit_env, reddit_corpus, reddit_server,
                                                                      make_config):
    subs = [reddit_corpus.submission(10 * i) for i in range(4)]
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(60))
    server.extra_fields[subs[-1].id] = {"created_utc": 4102444800.0}  # 2100-01-01
    _, config = make_config(reddit=reddit_section(server))
    collect(config, server)
    created, flags = row(config, f"t3_{subs[-1].id}", "created_at, quality_flags")
    assert created.astimezone(UTC).year == 2100 and flags == ["created_at_in_future"]
    newest = query(config.warehouse_path, "SELECT newest_created_at FROM checkpoints")[0][0]
    assert newest <= server.now + timedelta(minutes=5)

    later = [reddit_corpus.submission(100 + i) for i in range(2)]
    server.add_items(later)
    server.now = reddit_corpus.at(200)
    assert collect(config, server).inserted == 2
    assert {f"t3_{s.id}" for s in later} <= stored(config)


def test_distant_past_created_utc_does_not_end_a_backfill(reddit_env, reddit_corpus, reddit_server, make_config):
    subs = [reddit_corpus.submission(10 * i) for i in range(6)]
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(100))
    server.extra_fields[subs[4].id] = {"created_utc": 0}  # near the top of the listing, dated 1970
    _, config = make_config(reddit=reddit_section(server))
    collect(config, server, since=reddit_corpus.at(-10))
    assert stored(config) == {f"t3_{s.id}" for s in subs}
    assert row(config, f"t3_{subs[4].id}", "quality_flags")[0] == ["created_at_before_reddit"]


# -- 12.2 / 12.3: one bad item costs only itself ---------------------------------------------------

@pytest.mark.parametrize("stamp", [math.nan, math.inf, -math.inf, 1e12])
def test_unreadable_created_utc_in_a_listing_skips_that_item_only(stamp, reddit_env, reddit_corpus, reddit_server,
                                                                 make_config):
    subs = [reddit_corpus.submission(10 * i) for i in range(8)]
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(100))
    server.extra_fields[subs[5].id] = {"created_utc": stamp}
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.skipped == 1
    assert stored(config) == {f"t3_{s.id}" for s in subs} - {f"t3_{subs[5].id}"}


@pytest.mark.parametrize("stamp", [math.nan, math.inf, 1e12])
def test_unreadable_created_utc_in_a_comment_skips_that_comment_only(stamp, reddit_env, reddit_corpus,
                                                                    reddit_server, make_config):
    sub = reddit_corpus.submission(0)
    comments = [reddit_corpus.comment(sub, 1 + i) for i in range(4)]
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    server.extra_fields[comments[1].id] = {"created_utc": stamp}
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert (summary.status, summary.skipped, summary.inserted) == ("ok", 1, 4)


def test_lone_surrogates_are_repaired_and_flagged(reddit_env, reddit_corpus, reddit_server, make_config):
    sub = reddit_corpus.submission(0, title="Sora leak \ud83d broken title")
    comment = reddit_corpus.comment(sub, 2, text="half a pair \udc00 here")
    fine = reddit_corpus.comment(sub, 3, text="fine")
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.inserted == 3
    assert row(config, f"t3_{sub.id}", "title, quality_flags") == ("Sora leak \ufffd broken title", ["text_repaired"])
    assert row(config, f"t1_{comment.id}", "text, quality_flags") == ("half a pair \ufffd here", ["text_repaired"])
    assert row(config, f"t1_{fine.id}", "quality_flags")[0] == []


def test_comments_are_stored_when_their_submission_is_malformed(reddit_env, reddit_corpus, reddit_server,
                                                               make_config):
    sub = reddit_corpus.submission(0)
    comments = [reddit_corpus.comment(sub, 1 + i) for i in range(3)]
    other = reddit_corpus.submission(5)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    server.malformed_ids.add(sub.id)
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert {f"t1_{c.id}" for c in comments} | {f"t3_{other.id}"} == stored(config)
    assert summary.skipped == 1  # seen in the listing and in its thread: counted once
    assert query(config.warehouse_path, "SELECT skipped FROM runs")[0][0] == 1


# -- 12.4: a thread's comments carry every query that matched it ---------------------------------------

@pytest.mark.parametrize("queries", [["sora leak", "testers paid"], ["testers paid", "sora leak"]])
def test_comments_carry_every_query_of_their_thread(queries, reddit_env, reddit_corpus, reddit_server, make_config):
    both = reddit_corpus.submission(0, title="Sora leak: were the testers paid?")
    reddit_corpus.comment(both, 2)
    reddit_corpus.comment(reddit_corpus.items[-1], 3)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    _, config = make_config(reddit=reddit_section(server, queries=queries))
    collect(config, server)
    assert {tuple(sorted(r[0])) for r in query(config.warehouse_path, "SELECT matched_queries FROM posts")} == {
        ("sora leak", "testers paid")}
    assert len(server.requests_to(f"/comments/{both.id}")) == 1  # still one thread fetch


def test_comments_carry_every_query_after_an_interrupted_pass(reddit_env, reddit_corpus, reddit_server,
                                                             make_config):
    both = reddit_corpus.submission(0, title="Sora leak: were the testers paid?")
    first = reddit_corpus.comment(both, 2)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    # The first query's search goes through; the second one's fails until the run gives up.
    server.add_fault(Fault("5xx", "/r/all/search", status=502, times=100, after=1))
    _, config = make_config(reddit=reddit_section(server, queries=["sora leak", "testers paid"], retries=0))
    assert collect(config, server).status == "failed"
    assert row(config, f"t1_{first.id}", "matched_queries")[0] == ["sora leak"]

    server.clear_faults()
    late = reddit_corpus.comment(both, 12)  # a comment the first pass never saw
    server.add_items([late])
    server.now = reddit_corpus.at(20)
    assert collect(config, server).status == "ok"
    for post_id in (f"t3_{both.id}", f"t1_{first.id}", f"t1_{late.id}"):
        assert sorted(row(config, post_id, "matched_queries")[0]) == ["sora leak", "testers paid"], post_id


# -- 12.10: a truncated 400 is a broken answer, not a refusal -------------------------------------------

def test_400_with_a_truncated_body_is_retried(reddit_env, reddit_corpus, reddit_server, make_config):
    subs = [reddit_corpus.submission(i) for i in range(3)]
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    server.add_fault(Fault("400-truncated", "/r/all/search"))
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert summary.status == "ok" and stored(config) == {f"t3_{s.id}" for s in subs}
    assert len(server.requests_to("/r/all/search")) == 2


def test_persistent_truncated_400_fails_the_run_in_one_line(reddit_env, reddit_corpus, reddit_server, make_config):
    reddit_corpus.submission(0)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(10))
    server.add_fault(Fault("400-truncated", "/r/all/search", times=10))
    _, config = make_config(reddit=reddit_section(server, retries=1))
    summary = collect(config, server)
    assert summary.status == "failed" and "HTTP 400 with an unreadable body" in summary.error
    assert "\n" not in summary.error
    assert query(config.warehouse_path, "SELECT status FROM runs")[0][0] == "failed"
