"""`leakwatch collect --platform bluesky` end to end: the real atproto client against the replay server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bluesky_support import (
    SEARCH,
    T0,
    THREAD,
    checkpoint_state,
    collect,
    item,
    last_run,
    posts_every,
    query,
    serving,
    stored_ids,
    uris,
)

from collectors.replay.bluesky_api import post_uri


@pytest.fixture
def corpus():
    # 45 matching posts a minute apart, plus noise that must never be stored.
    return posts_every(45) + [item(900 + i, T0 + timedelta(seconds=30 + 60 * i), "cats and dogs") for i in range(5)]


def test_pages_to_the_checkpoint_then_one_request_per_query(tmp_path, corpus):
    matching = corpus[:45]
    with serving(tmp_path, corpus, now=T0 + timedelta(minutes=30), page_size=10,
                 overlap_minutes=5) as (server, config):
        # A post a minute: the 5-minute overlap of later passes fits in one page of 10.
        first = collect(config)
        assert first.returncode == 0, first.stderr
        visible = [i for i in matching if i.created_at <= server.now]
        assert stored_ids(tmp_path) == uris(visible)  # 31 posts, over 4 pages, no noise
        assert len(server.requests_to(SEARCH)) == 4
        run = last_run(tmp_path)
        assert (run["status"], run["pages"], run["inserted"], run["skipped"]) == ("ok", 4, 31, 0)
        # Every request asked for the newest first, within the window, with the SDK's cursor paging.
        params = [r.query for r in server.requests_to(SEARCH)]
        assert all(p["sort"] == ["latest"] and p["limit"] == ["10"] for p in params)
        assert [p.get("cursor", [None])[0] for p in params] == [None, "10", "20", "30"]
        assert params[0]["since"] == ["2024-11-01T00:00:00.000000Z"]
        checkpoint = query(tmp_path, "SELECT newest_id FROM checkpoints WHERE query_key = 'bsky:sora leak'")
        assert checkpoint == [(post_uri(visible[-1]),)]
        assert "windows" not in checkpoint_state(tmp_path)  # nothing left to fetch

        # Nothing new: one request, nothing inserted, nothing changed.
        server.requests.clear()
        second = collect(config)
        assert second.returncode == 0, second.stderr
        assert len(server.requests_to(SEARCH)) == 1
        run = last_run(tmp_path)
        assert (run["inserted"], run["updated"]) == (0, 0)
        assert "0 new" in second.stdout

        # The clock moves on: only the new posts are fetched, down to the checkpoint and no further.
        server.now = T0 + timedelta(hours=2)
        server.requests.clear()
        third = collect(config)
        assert third.returncode == 0, third.stderr
        assert stored_ids(tmp_path) == uris(matching)
        run = last_run(tmp_path)
        assert run["inserted"] == 14
        assert len(server.requests_to(SEARCH)) == 2  # 20 results (14 new + the 6 of the overlap)
        assert query(tmp_path, "SELECT count(*) FROM post_versions")[0][0] == 45  # one 'created' each


def test_normalized_record(tmp_path):
    root = item(1, T0, "OpenAI and the sora leak: a thread")
    reply = item(2, T0 + timedelta(minutes=5), "Sora leak reply", kind="reply", parent=root, author="bob.art")
    quote = item(3, T0 + timedelta(minutes=9), "Quoting this sora leak take", kind="quote", quote_of=root)
    with serving(tmp_path, [root, reply, quote]) as (server, config):
        result = collect(config)
        assert result.returncode == 0, result.stderr
        rows = query(tmp_path, """
            SELECT post_id, kind, thread_id, parent_id, author_id, author_handle, text, language, cid,
                   created_at, indexed_at - created_at, reply_count, like_count, repost_count, quote_count,
                   matched_queries, raw->>'$.uri', raw->>'$.record.embed.record.uri'
            FROM posts ORDER BY created_at""")
    by_kind = {row[1]: row for row in rows}
    post, rep, quo = by_kind["post"], by_kind["reply"], by_kind["quote"]
    assert post[0] == post_uri(root) and post[0].startswith("at://did:plc:")
    assert post[2:4] == (None, None)
    assert rep[2:4] == (post_uri(root), post_uri(root))
    assert rep[5] == "bob.art" and rep[4].startswith("did:plc:")
    assert post[6] == "OpenAI and the sora leak: a thread" and post[7] == "en"
    assert post[8].startswith("bafyrei")
    assert post[9].utcoffset() == timedelta(0) and post[9].replace(tzinfo=None) == T0.replace(tzinfo=None)
    assert post[10] == timedelta(seconds=2)
    assert (post[11], post[12], post[13], post[14]) == (1, 3, 1, 1)
    assert post[15] == ["sora leak"] and post[16] == post[0]
    assert quo[2:4] == (None, None) and quo[17] == post_uri(root)  # a quote is no reply; raw names the quoted post


def test_time_slicing_when_the_search_cap_is_reached(tmp_path):
    corpus = posts_every(57, step=timedelta(minutes=7))
    with serving(tmp_path, corpus, result_cap=20, page_size=8, search_result_cap=20) as (server, config):
        result = collect(config)
        assert result.returncode == 0, result.stderr
        assert stored_ids(tmp_path) == uris(corpus)  # complete despite a cap of 20 per search
        run = last_run(tmp_path)
        assert run["caps_hit"] >= 2 and run["status"] == "ok"
        untils = {r.arg("until") for r in server.requests_to("/xrpc/app.bsky.feed.searchPosts")}
        assert len(untils) >= 3  # the window was cut into slices by time
        # The same backfill without slicing would have lost posts: the cap is real.
        assert len(server.searchable("sora leak")) == 57


def test_threads_are_fetched_with_parent_and_root(tmp_path):
    root = item(1, T0, "Sora leak thread")
    first = item(2, T0 + timedelta(minutes=1), "I disagree", kind="reply", parent=root)
    nested = item(3, T0 + timedelta(minutes=2), "Why?", kind="reply", parent=first)
    gone = item(4, T0 + timedelta(minutes=3), "deleted later", kind="reply", parent=root,
                deleted_at=T0 + timedelta(minutes=4))
    under_gone = item(5, T0 + timedelta(minutes=5), "answer to a deleted reply", kind="reply", parent=gone)
    blocked = item(6, T0 + timedelta(minutes=6), "blocked reply", kind="reply", parent=root)
    lonely = item(7, T0 + timedelta(minutes=7), "Another sora leak post without replies")
    broken = item(8, T0 + timedelta(minutes=8), "a reply without an author DID", kind="reply", parent=first)
    with serving(tmp_path, [root, first, nested, gone, under_gone, blocked, lonely, broken],
                 fetch_threads=True) as (server, config):
        server.blocked_ids.add(blocked.id)
        server.invalid_ids.add(broken.id)
        result = collect(config)
        assert result.returncode == 0, result.stderr
        rows = {r[0]: r[1:] for r in query(tmp_path, "SELECT post_id, kind, parent_id, thread_id, matched_queries "
                                                    "FROM posts")}
        # One getPostThread, only for the post that has replies.
        assert [r.arg("uri") for r in server.requests_to(THREAD)] == [post_uri(root)]
        assert last_run(tmp_path)["skipped"] == 1  # the invalid reply, counted; its siblings stored
    assert set(rows) == uris([root, first, nested, lonely])  # deleted, blocked and orphaned ones are absent
    assert rows[post_uri(nested)] == ("reply", post_uri(first), post_uri(root), [])
    assert rows[post_uri(root)][3] == ["sora leak"]


def test_invalid_posts_are_skipped_and_counted(tmp_path):
    corpus = posts_every(12)
    with serving(tmp_path, corpus, page_size=5) as (server, config):
        server.invalid_ids.update({corpus[3].id, corpus[8].id})
        result = collect(config)
        assert result.returncode == 0, result.stderr
        assert stored_ids(tmp_path) == uris(corpus) - uris([corpus[3], corpus[8]])
        run = last_run(tmp_path)
        assert (run["status"], run["skipped"], run["pages"]) == ("ok", 2, 3)
        assert "2 skipped" in result.stdout


def test_second_query_adds_its_name_to_posts_both_match(tmp_path):
    both = item(1, T0, "sora leak: the artists speak")
    only = item(2, T0 + timedelta(minutes=1), "sora artists only")
    with serving(tmp_path, [both, only], queries=("sora leak", "sora artists")) as (server, config):
        assert collect(config).returncode == 0
        rows = dict(query(tmp_path, "SELECT post_id, matched_queries FROM posts"))
    assert rows == {post_uri(both): ["sora artists", "sora leak"], post_uri(only): ["sora artists"]}


def test_bounded_backfill_leaves_the_checkpoint_alone(tmp_path):
    corpus = posts_every(10, step=timedelta(hours=1))
    with serving(tmp_path, corpus) as (server, config):
        result = collect(config, "--since", "2024-11-26T14:00:00", "--until", "2024-11-26T18:00:00")
        assert result.returncode == 0, result.stderr
        assert stored_ids(tmp_path) == uris(corpus[2:6])  # 14:00 inclusive to 18:00 exclusive
        assert query(tmp_path, "SELECT count(*) FROM checkpoints") == [(0,)]
        assert collect(config).returncode == 0  # the incremental pass still covers everything
        assert stored_ids(tmp_path) == uris(corpus)
