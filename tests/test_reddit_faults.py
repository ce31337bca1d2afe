"""Faults between praw and the Reddit replay server: rate limits, server errors, timeouts,
truncated JSON, expired tokens, malformed items, rejected credentials."""

from __future__ import annotations

import pytest
from conftest import query, reddit_section

from collectors.base import AuthError, CollectorError
from collectors.replay.server import Fault
from leakwatch.collect import RunSummary, make_collector, run_collection


def collect(config, server) -> RunSummary:
    return run_collection(config, make_collector(config, "reddit", clock=lambda: server.now))


@pytest.fixture
def ten(reddit_corpus):
    """Ten matching submissions, one with a comment: two search pages of five."""
    subs = [reddit_corpus.submission(10 * i) for i in range(10)]
    reddit_corpus.comment(subs[0], 5)
    return reddit_corpus


def stored(config) -> set[str]:
    return {row[0] for row in query(config.warehouse_path, "SELECT post_id FROM posts")}


def test_429_waits_for_retry_after_and_continues(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    server.add_fault(Fault("429", "/r/all/search", retry_after=1, after=1))  # the second page
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.inserted == 11
    assert query(config.warehouse_path, "SELECT status, rate_limit_waits FROM runs")[0] == ("ok", 1)
    assert len(server.requests_to("/r/all/search")) == 3


def test_429_asking_for_too_long_fails_the_run_and_keeps_the_pages(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    server.add_fault(Fault("429", "/r/all/search", retry_after=3600, after=1))
    _, config = make_config(reddit=reddit_section(server, max_rate_limit_wait_seconds=5))
    summary = collect(config, server)
    assert summary.status == "failed" and "rate-limiting" in summary.error
    assert summary.inserted == 5  # the first page (the five newest) stays


def test_transient_5xx_is_retried_by_prawcore(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    server.add_fault(Fault("5xx", "/comments/", status=503))
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.inserted == 11


def test_persistent_5xx_fails_then_resumes_without_gap_or_duplicate(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    server.add_fault(Fault("5xx", "/r/all/search", status=502, times=100, after=1))
    _, config = make_config(reddit=reddit_section(server, retries=0))
    db = config.warehouse_path

    failed = collect(config, server)
    assert failed.status == "failed" and "HTTP 502" in failed.error
    assert query(db, "SELECT status, pages, error LIKE '%502%' FROM runs")[0] == ("failed", 1, True)
    assert len(stored(config)) == 5
    newest_id, cursor = query(db, "SELECT newest_id, cursor FROM checkpoints")[0]
    assert newest_id is None and '"after":"t3_' in cursor  # mid-scan: resume point, no high-water yet

    server.clear_faults()
    before = len(server.requests)
    resumed = collect(config, server)
    assert resumed.status == "ok" and resumed.inserted == 6  # five submissions and a comment
    first_search = [r for r in server.requests[before:] if r.path.endswith("/search/")][0]
    assert first_search.arg("after")  # continued where the committed page ended
    assert len(stored(config)) == 11
    assert query(db, "SELECT max(n) FROM (SELECT count(*) AS n FROM post_versions GROUP BY post_id)")[0][0] == 1


def test_timeout_is_retried_and_persistent_timeouts_fail(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    server.add_fault(Fault("slow", "/r/all/search", delay=1.5))
    _, config = make_config(reddit=reddit_section(server, timeout_seconds=0.5, retries=0))
    assert collect(config, server).status == "ok"

    server.add_fault(Fault("slow", "/api/v1/access_token", delay=1.5, times=100))
    with pytest.raises(CollectorError, match="ReadTimeout"):
        collect(config, server)


def test_truncated_json_is_retried_with_backoff(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    server.add_fault(Fault("truncated", "/r/all/search"))
    server.add_fault(Fault("truncated", "/api/morechildren"))
    _, config = make_config(reddit=reddit_section(server, retries=1))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.inserted == 11

    server.now = ten.at(10_000)
    ten_more = [ten.submission(2000 + i) for i in range(2)]
    server.add_items(ten_more)
    server.add_fault(Fault("truncated", "/r/all/search", times=5))
    failed = collect(config, server)
    assert failed.status == "failed" and "unreadable JSON" in failed.error


def test_expired_token_is_refreshed_by_prawcore(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    server.add_fault(Fault("401", "/r/all/search", after=1))
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.inserted == 11
    assert len(server.requests_to("/api/v1/access_token")) == 2


def test_malformed_item_is_skipped_and_counted(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    bad = ten.items[3]
    server.malformed_ids.add(bad.id)
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.skipped == 1
    assert f"t3_{bad.id}" not in stored(config) and len(stored(config)) == 10
    assert query(config.warehouse_path, "SELECT skipped FROM runs")[0][0] == 1


def test_rejected_credentials_write_nothing(reddit_env, ten, reddit_server, make_config, monkeypatch):
    server = reddit_server(ten.items)
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "wrong")
    _, config = make_config(reddit=reddit_section(server))
    with pytest.raises(AuthError, match="rejected the credentials"):
        collect(config, server)
    assert not config.warehouse_path.exists()
    assert not server.requests_to("/r/")


def test_malformed_comment_is_skipped_and_counted(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    comment = next(i for i in ten.items if i.kind == "comment")
    server.malformed_ids.add(comment.id)
    _, config = make_config(reddit=reddit_section(server))
    summary = collect(config, server)
    assert (summary.status, summary.skipped, summary.inserted) == ("ok", 1, 10)


def test_banned_subreddit_is_skipped_not_fatal(reddit_env, ten, reddit_server, make_config):
    server = reddit_server(ten.items)
    server.banned_subreddits.add("GoneSub")
    _, config = make_config(reddit=reddit_section(server, subreddits=["GoneSub", "OpenAI"]))
    summary = collect(config, server)
    assert summary.status == "ok" and summary.inserted == 11
    assert server.requests_to("/r/GoneSub/search")
