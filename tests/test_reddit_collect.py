"""Real praw against the Reddit replay server, into a real DuckDB file: paging, checkpoints,
comment trees, refreshes, the listing cap and backfills."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import RedditCorpus, query, reddit_section

from leakwatch.collect import RunSummary, make_collector, run_collection


def collect(config, server, **bounds) -> RunSummary:
    """One pass, with the collector's clock on the server's clock (for the refresh age)."""
    return run_collection(config, make_collector(config, "reddit", clock=lambda: server.now, **bounds))


def searches(server, start: int = 0) -> list:
    return [r for r in server.requests[start:] if r.path.endswith("/search/")]


def submissions(corpus: RedditCorpus, count: int, start_minute: float = 0, **kw) -> list:
    return [corpus.submission(start_minute + 10 * i, **kw) for i in range(count)]


def test_pages_to_the_checkpoint_then_only_new_items(reddit_env, reddit_corpus, reddit_server, make_config):
    old = submissions(reddit_corpus, 12)
    noise = reddit_corpus.submission(5, title="Kingdom Hearts 4 leak")  # does not match "sora leak"
    newer = submissions(reddit_corpus, 3, start_minute=600)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(200))
    # No overlap below the checkpoint (it would read the stored posts of the last hour again).
    _, config = make_config(reddit=reddit_section(server, subreddits=["all"], overlap_minutes=0))

    first = collect(config, server)
    assert first.status == "ok" and first.inserted == 12 and first.pages == 3  # 5 + 5 + 2
    db = config.warehouse_path
    stored = {row[0] for row in query(db, "SELECT post_id FROM posts")}
    assert stored == {f"t3_{s.id}" for s in old}
    assert f"t3_{noise.id}" not in stored
    assert query(db, "SELECT newest_id FROM checkpoints")[0][0] == f"t3_{old[-1].id}"

    server.now = reddit_corpus.at(700)
    before = len(server.requests)
    second = collect(config, server)
    assert second.inserted == 3
    assert len(searches(server, before)) == 1  # the newest page reaches the checkpoint at once
    assert query(db, "SELECT count(*) FROM posts")[0][0] == 15
    assert query(db, "SELECT newest_id FROM checkpoints")[0][0] == f"t3_{newer[-1].id}"


def test_second_pass_with_nothing_new_is_one_request_and_no_writes(reddit_env, reddit_corpus, reddit_server,
                                                                    make_config):
    for sub in submissions(reddit_corpus, 7, community="singularity"):
        reddit_corpus.comment(sub, 2000)
    # Five days on: the threads are past the refresh age, so only the searches are asked again.
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(3000) + timedelta(days=5))
    # overlap_minutes=0: with an overlap the pass rereads the listing below the checkpoint (all seven).
    _, config = make_config(reddit=reddit_section(server, subreddits=["all", "singularity"],
                                                  queries=["sora leak", "sora artists"], overlap_minutes=0))
    first = collect(config, server)
    assert first.inserted == 14  # each submission once, though it matches in both subreddits

    db = config.warehouse_path
    versions = query(db, "SELECT count(*) FROM post_versions")[0][0]
    before = len(server.requests)
    second = collect(config, server)
    assert (second.status, second.fetched, second.inserted, second.updated) == ("ok", 0, 0, 0)
    assert len(searches(server, before)) == 4  # one per subreddit and query
    assert len(server.requests) - before == 5  # and the token
    assert query(db, "SELECT count(*) FROM posts")[0][0] == 14
    assert query(db, "SELECT count(*) FROM post_versions")[0][0] == versions
    assert query(db, "SELECT list_sort(matched_queries) FROM posts WHERE kind = 'submission' LIMIT 1")[0][0] == [
        "sora artists", "sora leak"]


def test_comment_trees_with_more_stubs_and_morechildren(reddit_env, reddit_corpus, reddit_server, make_config):
    sub = reddit_corpus.submission(0)
    tops = [reddit_corpus.comment(sub, 1 + i, text=f"top {i}") for i in range(6)]
    replies = [reddit_corpus.comment(tops[0], 10 + i, text=f"reply {i}") for i in range(4)]
    deep = reddit_corpus.comment(replies[0], 30, text="deep reply")
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(100), comment_limit=3, morechildren_limit=2)
    _, config = make_config(reddit=reddit_section(server, replace_more_limit=32))

    summary = collect(config, server)
    assert summary.inserted == 12
    assert len(server.requests_to("/api/morechildren")) >= 3  # the tree came in several answers
    rows = dict((r[0], r[1:]) for r in query(config.warehouse_path,
                                             "SELECT post_id, parent_id, thread_id, kind FROM posts"))
    assert rows[f"t1_{deep.id}"] == (f"t1_{replies[0].id}", f"t3_{sub.id}", "comment")
    assert rows[f"t1_{tops[5].id}"] == (f"t3_{sub.id}", f"t3_{sub.id}", "comment")
    assert rows[f"t3_{sub.id}"] == (None, None, "submission")


def test_replace_more_limit_bounds_the_requests(reddit_env, reddit_corpus, reddit_server, make_config):
    sub = reddit_corpus.submission(0)
    for i in range(10):
        reddit_corpus.comment(sub, 1 + i)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(100), comment_limit=3, morechildren_limit=2)
    _, config = make_config(reddit=reddit_section(server, replace_more_limit=1))
    summary = collect(config, server)
    assert len(server.requests_to("/api/morechildren")) == 1
    assert summary.inserted == 1 + 3 + 2  # submission, the first answer, one morechildren answer


def test_refresh_records_new_comments_edits_scores_and_deletions(reddit_env, reddit_corpus, reddit_server,
                                                                 make_config):
    edit = RedditCorpus.edit(120, "Original post\n\nEDIT: typo")
    sub = reddit_corpus.submission(0, text="Original post", edits=(edit,))
    kept = reddit_corpus.comment(sub, 10, text="OpenAI owes them nothing.")
    gone = reddit_corpus.comment(sub, 20, text="This will vanish.", deleted_at=reddit_corpus.at(150))
    removed = reddit_corpus.comment(kept, 30, text="Rule-breaking reply.", deleted_at=reddit_corpus.at(160),
                                    removed=True)
    late = reddit_corpus.comment(kept, 140, text="Late reply after the edit.")
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(60), score_ramp_hours=4)
    _, config = make_config(reddit=reddit_section(server, refresh_days=3))
    db = config.warehouse_path

    assert collect(config, server).inserted == 4
    first_score = query(db, "SELECT score FROM posts WHERE post_id = ?", [f"t3_{sub.id}"])[0][0]

    server.now = reddit_corpus.at(200)  # the edit, both deletions and the late reply have happened
    before = len(server.requests)
    summary = collect(config, server)
    assert len(searches(server, before)) == 1
    assert server.requests_to(f"/comments/{sub.id}")  # the recent thread was refetched
    assert summary.inserted == 1 and summary.updated >= 3

    changes = dict(((r[0], r[1]), r[2]) for r in query(db, "SELECT post_id, change, count(*) FROM post_versions "
                                                           "GROUP BY ALL"))
    assert changes[(f"t3_{sub.id}", "edited")] == 1
    assert changes[(f"t1_{gone.id}", "deleted")] == 1
    assert changes[(f"t1_{removed.id}", "deleted")] == 1
    assert changes[(f"t1_{late.id}", "created")] == 1
    assert all(count == 1 for count in changes.values())  # nothing recorded twice
    text, deleted = query(db, "SELECT text, deleted FROM posts WHERE post_id = ?", [f"t1_{gone.id}"])[0]
    assert (text, deleted) == ("This will vanish.", True)  # the last text seen is kept
    edited, score = query(db, "SELECT edited, score FROM posts WHERE post_id = ?", [f"t3_{sub.id}"])[0]
    assert edited and score > first_score

    # A third pass past the refresh age leaves the thread alone.
    server.now = reddit_corpus.at(200) + timedelta(days=4)
    before = len(server.requests)
    collect(config, server)
    assert not [r for r in server.requests[before:] if r.path.startswith("/comments/")]


def test_listing_cap_is_recorded(reddit_env, reddit_corpus, reddit_server, make_config):
    submissions(reddit_corpus, 10)
    server = reddit_server(reddit_corpus.items, listing_cap=7)
    _, config = make_config(reddit=reddit_section(server, listing_cap=7))
    summary = collect(config, server)
    assert (summary.inserted, summary.caps_hit) == (7, 1)
    assert query(config.warehouse_path, "SELECT caps_hit, pages, fetched FROM runs")[0] == (1, 2, 7)


def test_backfill_window(reddit_env, reddit_corpus, reddit_server, make_config):
    subs = submissions(reddit_corpus, 10)  # minutes 0, 10, ... 90
    server = reddit_server(reddit_corpus.items)
    # overlap_minutes=0: an overlap would also take the hour below the window's checkpoint.
    _, config = make_config(reddit=reddit_section(server, overlap_minutes=0))
    summary = collect(config, server, since=reddit_corpus.at(25), until=reddit_corpus.at(65))
    stored = {r[0] for r in query(config.warehouse_path, "SELECT post_id FROM posts")}
    assert stored == {f"t3_{s.id}" for s in subs[3:7]}
    assert summary.status == "ok"
    # A later incremental pass collects what is newer than the window, not what is older.
    collect(config, server)
    stored = {r[0] for r in query(config.warehouse_path, "SELECT post_id FROM posts")}
    assert stored == {f"t3_{s.id}" for s in subs[3:]}


def test_sample_corpus_collects(reddit_env, reddit_server, make_config):
    from collectors.replay.corpus import load_sample_corpus

    server = reddit_server(load_sample_corpus())
    _, config = make_config(reddit=reddit_section(server, page_size=100, subreddits=["all", "OpenAI"],
                                                  queries=["sora leak", "sora artists"]))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.inserted > 100
    kinds = dict(query(config.warehouse_path, "SELECT kind, count(*) FROM posts GROUP BY kind"))
    assert kinds["submission"] > 10 and kinds["comment"] > kinds["submission"]
    orphans = query(config.warehouse_path, """
        SELECT count(*) FROM posts c WHERE kind = 'comment'
        AND NOT EXISTS (SELECT 1 FROM posts p WHERE p.post_id = c.thread_id)""")[0][0]
    assert orphans == 0


@pytest.mark.parametrize("days", [0])
def test_refresh_can_be_turned_off(days, reddit_env, reddit_corpus, reddit_server, make_config):
    reddit_corpus.comment(reddit_corpus.submission(0), 5)
    server = reddit_server(reddit_corpus.items)
    _, config = make_config(reddit=reddit_section(server, refresh_days=days))
    collect(config, server)
    before = len(server.requests)
    collect(config, server)
    assert [r.path for r in server.requests[before:]] == ["/api/v1/access_token", "/r/all/search/"]
