"""Real Bluesky shapes and clocks: every valid post stored, checkpoints that a wrong clock cannot poison,
paging that `hitsTotal` cannot fool, one thread fetch per post. Real atproto client, replay server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bluesky_support import (
    SEARCH,
    T0,
    THREAD,
    checkpoint_state,
    collect,
    db_path,
    item,
    last_run,
    posts_every,
    query,
    serving,
    stored_ids,
    uris,
    write_config,
)

from collectors.replay.bluesky_api import BlueskyReplay, post_uri
from collectors.replay.bluesky_shapes import DROP, INVALID_UTF8, LONE_SURROGATE, Shape


def test_posts_the_sdk_models_refuse_are_stored(tmp_path):
    # Each of these made the SDK's strict PostView refuse the whole post.
    nested = item(1, T0, "sora leak: the letter")
    counted = item(2, T0 + timedelta(minutes=1), "sora leak: counts as text")
    future = item(3, T0 + timedelta(minutes=2), "sora leak: a poll")
    bare = item(4, T0 + timedelta(minutes=3), "sora leak: no $type anywhere")
    link = "https://example.org/letter"
    shapes = {
        nested.id: Shape(record={"embed": {"$type": "app.bsky.embed.external", "external": {
            "$type": "app.bsky.embed.external#external", "uri": link, "title": "t", "description": ""}}}),
        counted.id: Shape(view={"likeCount": "lots", "quoteCount": -1}),
        future.id: Shape(record={"embed": {"$type": "app.bsky.embed.poll", "options": ["a", "b"]}, "extra": [1]},
                         view={"embed": {"$type": "app.bsky.embed.poll#view"}, "bookmarkCount": 2}),
        bare.id: Shape(view={"$type": DROP}, record={"$type": DROP}),
    }
    with serving(tmp_path, [nested, counted, future, bare], shapes=shapes) as (server, config):
        result = collect(config)
        assert result.returncode == 0, result.stderr
        assert last_run(tmp_path)["skipped"] == 0
    rows = {r[0]: r[1:] for r in query(tmp_path, "SELECT post_id, url, like_count, quote_count, text, "
                                                 "raw->>'$.record.embed.$type' FROM posts")}
    assert set(rows) == uris([nested, counted, future, bare])
    assert rows[post_uri(nested)][0] == link
    assert rows[post_uri(counted)][1:3] == (None, None)  # unreadable counts stay empty, the post stays
    assert rows[post_uri(future)][4] == "app.bsky.embed.poll"  # raw keeps what no SDK knows
    assert rows[post_uri(bare)][3] == "sora leak: no $type anywhere"


@pytest.mark.parametrize("ahead", [timedelta(seconds=40), timedelta(hours=5), timedelta(days=3)],
                         ids=["seconds", "hours", "days"])
def test_created_at_ahead_of_indexed_at_does_not_move_the_checkpoint(tmp_path, ahead):
    before = posts_every(3)
    indexed = T0 + timedelta(minutes=10)
    fast_clock = item(50, indexed + ahead, "sora leak from a phone in the future")
    later = [item(60 + k, indexed + timedelta(seconds=20) + k * ahead / 3, f"sora leak later #{k}") for k in range(3)]
    # No overlap: not even the overlap may save it.
    with serving(tmp_path, [*before, fast_clock, *later], now=indexed + timedelta(seconds=5),
                 overlap_minutes=0) as (server, config):
        server.indexed_at[fast_clock.id] = indexed
        assert collect(config).returncode == 0
        assert stored_ids(tmp_path) == uris([*before, fast_clock])
        [(newest,)] = query(tmp_path, "SELECT newest_created_at FROM checkpoints")
        assert newest == indexed  # sortAt: the earlier of createdAt and indexedAt
        server.now = indexed + ahead * 2
        assert collect(config).returncode == 0
    assert stored_ids(tmp_path) == uris([*before, fast_clock, *later])
    created, flags = query(tmp_path, "SELECT created_at, quality_flags FROM posts WHERE post_id = ?",
                           [post_uri(fast_clock)])[0]
    assert created == indexed + ahead  # stored as sent
    assert flags == ([] if ahead < timedelta(minutes=5) else ["created_at_after_indexed_at"])


def test_a_backdated_post_indexed_late_is_found_by_the_overlap(tmp_path):
    posts = posts_every(5)  # T0 .. T0+4m
    late = item(70, T0 + timedelta(minutes=2, seconds=30), "sora leak, posted offline and synced later")
    # The default overlap: 10 minutes.
    with serving(tmp_path, [*posts, late], now=T0 + timedelta(minutes=5)) as (server, config):
        server.indexed_at[late.id] = T0 + timedelta(minutes=8)  # indexed after the first pass
        assert collect(config).returncode == 0
        assert stored_ids(tmp_path) == uris(posts)
        server.now = T0 + timedelta(minutes=9)
        assert collect(config).returncode == 0
        since = server.requests_to(SEARCH)[-1].arg("since")
    assert stored_ids(tmp_path) == uris([*posts, late])
    assert since == "2024-11-26T11:54:00.000000Z"  # newest sortAt (12:04) minus the overlap
    [(newest,)] = query(tmp_path, "SELECT newest_created_at FROM checkpoints")
    assert newest == posts[-1].created_at  # the backdated post did not pull the checkpoint back


def test_a_post_from_2099_never_becomes_the_checkpoint(tmp_path):
    posts = posts_every(3)
    future = item(80, T0 + timedelta(minutes=3), "sora leak: device clock says 2099")
    broken = item(81, T0 + timedelta(minutes=4), "sora leak: even the index time is wrong")
    later = posts_every(3, start=T0 + timedelta(minutes=20), first=10)
    shapes = {future.id: Shape(created_at="2099-01-01T00:00:00Z"),
              broken.id: Shape(created_at="2099-06-01T00:00:00Z", view={"indexedAt": "2099-06-01T00:00:05Z"})}
    with serving(tmp_path, [*posts, future, broken, *later], now=T0 + timedelta(minutes=10),
                 shapes=shapes) as (server, config):
        assert collect(config).returncode == 0
        [(newest,)] = query(tmp_path, "SELECT newest_created_at FROM checkpoints")
        assert newest.year == 2024
        server.now = T0 + timedelta(hours=1)
        assert collect(config).returncode == 0
    assert stored_ids(tmp_path) == uris([*posts, future, broken, *later])
    rows = dict(query(tmp_path, "SELECT post_id, quality_flags FROM posts WHERE year(created_at) = 2099"))
    assert rows == {post_uri(future): ["created_at_after_indexed_at"],
                    post_uri(broken): ["indexed_at_in_future"]}


def test_a_checkpoint_in_the_future_left_by_an_older_version_starts_over(tmp_path):
    import duckdb

    posts = posts_every(4)
    with serving(tmp_path, posts, now=T0 + timedelta(minutes=2)) as (server, config):
        assert collect(config).returncode == 0
        con = duckdb.connect(str(db_path(tmp_path)))
        con.execute("UPDATE checkpoints SET newest_created_at = TIMESTAMPTZ '2099-01-01 00:00:00+00'")
        con.close()
        server.now = T0 + timedelta(hours=1)
        result = collect(config)
        assert result.returncode == 0, result.stderr
    assert stored_ids(tmp_path) == uris(posts)
    assert "lies in the future" in result.stderr


def test_hits_total_is_not_a_cap_signal(tmp_path):
    posts = posts_every(30)
    with serving(tmp_path, posts, page_size=25) as (server, config):
        # The newest 25 hits include 2 the server hides: 23 posts, cursor "25", hitsTotal 30 > 28 shown.
        server.hidden_ids |= {posts[-3].id, posts[-9].id}
        assert collect(config).returncode == 0
        cursors = [r.arg("cursor") for r in server.requests_to(SEARCH)]
    assert cursors == [None, "25"]  # no slicing, no second look at the window
    assert stored_ids(tmp_path) == uris(posts) - uris([posts[-3], posts[-9]])
    assert last_run(tmp_path)["caps_hit"] == 0


def test_pages_without_hits_total_and_empty_pages_with_a_cursor(tmp_path):
    posts = posts_every(12)
    with serving(tmp_path, posts, page_size=5) as (server, config):
        server.send_hits_total = False
        server.hidden_ids |= {p.id for p in posts[-5:]}  # the whole first page is hidden
        assert collect(config).returncode == 0
        cursors = [r.arg("cursor") for r in server.requests_to(SEARCH)]
    assert cursors == [None, "5", "10"]
    assert stored_ids(tmp_path) == uris(posts[:7])
    assert last_run(tmp_path)["caps_hit"] == 0


def test_one_thread_fetch_per_post_per_pass_whatever_the_queries(tmp_path):
    root = item(1, T0, "sora leak: the artists explain")
    reply = item(2, T0 + timedelta(minutes=1), "thanks for posting", kind="reply", parent=root)
    with serving(tmp_path, [root, reply], queries=("sora leak", "sora artists", "artists"),
                 fetch_threads=True) as (server, config):
        assert collect(config).returncode == 0
        assert [r.arg("uri") for r in server.requests_to(THREAD)] == [post_uri(root)]
        # A later pass sees the post again in its overlap; with the same reply count, no new fetch.
        server.requests.clear()
        assert collect(config).returncode == 0
        assert server.requests_to(THREAD) == [] and len(server.requests_to(SEARCH)) == 3
    assert stored_ids(tmp_path) == uris([root, reply])
    assert query(tmp_path, "SELECT matched_queries FROM posts WHERE post_id = ?", [post_uri(root)]) == [
        (["artists", "sora artists", "sora leak"],)]


def test_broken_text_in_a_page_is_repaired_and_the_page_stored(tmp_path):
    posts = posts_every(6)
    bad_byte = item(90, T0 + timedelta(seconds=90), f"sora leak with a bad byte {INVALID_UTF8} here")
    half_pair = item(91, T0 + timedelta(seconds=150), f"sora leak, half an emoji {LONE_SURROGATE}")
    reply = item(92, T0 + timedelta(minutes=9), f"a reply with {LONE_SURROGATE} in it", kind="reply",
                 parent=posts[0])
    with serving(tmp_path, [*posts, bad_byte, half_pair, reply], fetch_threads=True) as (server, config):
        result = collect(config)
        assert result.returncode == 0, result.stderr
        assert last_run(tmp_path)["status"] == "ok"
    rows = dict(query(tmp_path, "SELECT post_id, text FROM posts WHERE list_contains(quality_flags, 'text_repaired')"))
    assert rows == {post_uri(bad_byte): "sora leak with a bad byte \ufffd here",
                    post_uri(half_pair): "sora leak, half an emoji \ufffd",
                    post_uri(reply): "a reply with \ufffd in it"}
    assert stored_ids(tmp_path) == uris([*posts, bad_byte, half_pair, reply])
    assert query(tmp_path, "SELECT count(*) FROM posts WHERE raw->>'$.record.text' LIKE '%\ufffd%'") == [(3,)]


def test_a_failing_thread_costs_neither_the_page_nor_its_replies_for_good(tmp_path):
    posts = posts_every(5)
    reply = item(20, T0 + timedelta(minutes=7), "reply under a thread that fails", kind="reply", parent=posts[1])
    with serving(tmp_path, [*posts, reply], fetch_threads=True, retries=1) as (server, config):
        server.failing_thread_ids.add(posts[1].id)
        result = collect(config)
        assert result.returncode == 0, result.stderr
        assert last_run(tmp_path)["status"] == "ok"
        assert stored_ids(tmp_path) == uris(posts)  # the whole page of hits
        assert checkpoint_state(tmp_path)["owed_threads"] == {post_uri(posts[1]): 1}
        server.failing_thread_ids.clear()
        server.requests.clear()
        assert collect(config).returncode == 0
        assert [r.arg("uri") for r in server.requests_to(THREAD)] == [post_uri(posts[1])]
    assert stored_ids(tmp_path) == uris([*posts, reply])
    assert "owed_threads" not in checkpoint_state(tmp_path)


def test_a_400_cut_short_is_retried_not_taken_as_a_refusal(tmp_path):
    from collectors.replay.server import Fault

    posts = posts_every(4)
    with serving(tmp_path, posts) as (server, config):
        server.add_fault(Fault("400-truncated", path_prefix=SEARCH))
        result = collect(config)
        assert result.returncode == 0, result.stderr
        assert len(server.requests_to(SEARCH)) == 2
    assert last_run(tmp_path)["status"] == "ok" and stored_ids(tmp_path) == uris(posts)


def test_a_default_install_records_edits_and_deletions_once_a_day(tmp_path, monkeypatch):
    from collectors.replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE
    from collectors.replay.corpus import Edit
    from leakwatch.collect import make_collector, run_collection
    from leakwatch.config import load_config

    posts = [*posts_every(4), item(40, T0 + timedelta(minutes=40), "sora leak: the newest")]
    gone = item(30, T0 + timedelta(minutes=5), "sora leak take I regret", deleted_at=T0 + timedelta(hours=2))
    changed = item(31, T0 + timedelta(minutes=6), "sora leak: first draft",
                   edits=(Edit(T0 + timedelta(hours=2), "sora leak: second draft"),))
    monkeypatch.setenv("BLUESKY_HANDLE", DEMO_HANDLE)
    monkeypatch.setenv("BLUESKY_APP_PASSWORD", DEMO_APP_PASSWORD)
    with BlueskyReplay([*posts, gone, changed], now=T0 + timedelta(hours=1)) as server:
        config = load_config(write_config(tmp_path, server))  # no revisit settings: the defaults

        def run_at(when: datetime):
            server.now = when
            server.requests.clear()
            return run_collection(config, make_collector(config, "bluesky", clock=lambda: when))

        assert run_at(T0 + timedelta(hours=1)).inserted == 7
        assert run_at(T0 + timedelta(hours=3)).status == "ok"  # in between: one request, no lookups
        assert len(server.requests_to(SEARCH)) == 1 and server.requests_to(THREAD) == []
        assert query(tmp_path, "SELECT count(*) FROM post_versions WHERE change <> 'created'") == [(0,)]
        assert run_at(T0 + timedelta(hours=26)).status == "ok"  # a day later: the revisit
        assert {r.arg("uri") for r in server.requests_to(THREAD)} == {post_uri(gone)}
        assert run_at(T0 + timedelta(hours=27)).status == "ok"
        assert len(server.requests_to(SEARCH)) == 1 and server.requests_to(THREAD) == []
    versions = sorted(query(tmp_path, "SELECT post_id, change, text FROM post_versions WHERE change <> 'created'"))
    assert versions == sorted([(post_uri(gone), "deleted", None),
                               (post_uri(changed), "edited", "sora leak: second draft")])
    assert checkpoint_state(tmp_path)["revisited_at"].startswith("2024-11-27T14:00:00")
    assert datetime.fromisoformat(checkpoint_state(tmp_path)["revisited_at"]).tzinfo == UTC


def test_the_replay_server_sorts_and_filters_on_sort_at():
    from atproto import Client, models

    from collectors.replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE

    ahead = item(1, T0 + timedelta(hours=6), "sora leak from a clock six hours ahead")  # indexed at T0
    backdated = item(2, T0 - timedelta(days=30), "sora leak from an archive")  # indexed at T0 + 1h
    plain = item(3, T0 + timedelta(minutes=30), "sora leak, plain")
    with BlueskyReplay([ahead, backdated, plain], now=T0 + timedelta(days=1)) as server:
        server.indexed_at.update({ahead.id: T0, backdated.id: T0 + timedelta(hours=1)})
        client = Client(base_url=server.url)
        client.login(DEMO_HANDLE, DEMO_APP_PASSWORD)

        def search(since: datetime, until: datetime) -> list[str]:
            params = models.AppBskyFeedSearchPosts.Params(q="sora leak", sort="latest", since=since.isoformat(),
                                                          until=until.isoformat())
            return [p.uri for p in client.app.bsky.feed.search_posts(params).posts]

        assert search(T0 - timedelta(days=60), T0 + timedelta(days=1)) == [
            post_uri(plain), post_uri(ahead), post_uri(backdated)]  # newest sortAt first
        assert search(T0, T0 + timedelta(minutes=1)) == [post_uri(ahead)]  # by indexedAt, not createdAt
        assert search(T0 + timedelta(hours=5), T0 + timedelta(days=1)) == []
        assert search(T0 - timedelta(days=31), T0 - timedelta(days=29)) == [post_uri(backdated)]
