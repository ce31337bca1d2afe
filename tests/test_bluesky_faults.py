"""Faults on the wire: rate limits, 5xx, timeouts, truncated JSON, persistent failures, sessions.

The collector runs in-process through the real driver (`run_collection`), the real atproto client
and a real DuckDB file; only its sleep is recorded instead of slept, so the waits can be checked.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bluesky_support import SEARCH, checkpoint_state, last_run, posts_every, query, stored_ids, uris, write_config

from collectors.bluesky import BlueskyCollector, BlueskyOptions
from collectors.replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE, BlueskyReplay
from collectors.replay.server import Fault
from collectors.retry import RetryPolicy, backoff_delay, rate_limit_wait
from leakwatch.collect import run_collection
from leakwatch.config import load_config

CORPUS = posts_every(30)


@pytest.fixture
def server():
    with BlueskyReplay(CORPUS) as replay:
        yield replay


class Harness:
    def __init__(self, tmp_path, server: BlueskyReplay, *, attempts: int = 4, timeout: float = 5.0):
        self.config = load_config(write_config(tmp_path, server))
        self.tmp_path = tmp_path
        self.sleeps: list[float] = []
        self.options = BlueskyOptions(service_url=server.url, queries=["sora leak"],
                                      start=datetime(2024, 11, 1, tzinfo=UTC), page_size=10,
                                      fetch_threads=False, timeout=timeout,
                                      retry=RetryPolicy(attempts=attempts, base_delay=0.5, max_delay=4,
                                                        max_rate_limit_wait=30))

    def run(self, password: str = DEMO_APP_PASSWORD):
        collector = BlueskyCollector(self.options, DEMO_HANDLE, password, sleep=self.sleeps.append)
        return run_collection(self.config, collector)


def test_429_waits_as_long_as_retry_after_says(tmp_path, server):
    server.add_fault(Fault("429", path_prefix=SEARCH, retry_after=7))
    harness = Harness(tmp_path, server)
    summary = harness.run()
    assert harness.sleeps == [7.0]
    assert summary.status == "ok" and summary.rate_limit_waits == 1
    assert stored_ids(tmp_path) == uris(CORPUS)
    assert last_run(tmp_path)["rate_limit_waits"] == 1


def test_rate_limit_wait_reads_retry_after_then_ratelimit_reset():
    assert rate_limit_wait({"Retry-After": "12"}, now=1000) == 12
    assert rate_limit_wait({"ratelimit-reset": "1030", "ratelimit-remaining": "0"}, now=1000) == 30
    assert rate_limit_wait({"retry-after": "Thu, 01 Jan 1970 00:17:00 GMT"}, now=1000) == 20
    assert rate_limit_wait({"ratelimit-reset": "900"}, now=1000) == 0  # already reset: no negative wait
    assert rate_limit_wait({}, now=1000, default=5) == 5


def test_backoff_grows_and_has_jitter():
    import random

    policy = RetryPolicy(base_delay=1, max_delay=10)
    rng = random.Random(1)
    first = [backoff_delay(1, policy, rng) for _ in range(50)]
    third = [backoff_delay(3, policy, rng) for _ in range(50)]
    late = [backoff_delay(9, policy, rng) for _ in range(50)]
    assert all(0.5 <= d <= 1 for d in first) and len(set(first)) > 1
    assert all(2 <= d <= 4 for d in third)
    assert all(5 <= d <= 10 for d in late)


def test_rate_limit_longer_than_allowed_fails_the_run_keeping_earlier_pages(tmp_path, server):
    server.on_search = lambda n: n == 2 and server.add_fault(Fault("429", path_prefix=SEARCH, retry_after=3600))
    summary = Harness(tmp_path, server).run()
    assert summary.status == "failed" and "rate limit" in summary.error and "3600" in summary.error
    assert len(stored_ids(tmp_path)) == 20  # the two pages before the limit stay committed
    assert last_run(tmp_path)["status"] == "failed"


@pytest.mark.parametrize(("kind", "times", "status"), [("5xx", 2, 503), ("5xx", 1, 502), ("truncated", 2, 0)],
                         ids=["503", "502", "truncated-json"])
def test_transient_faults_back_off_and_retry(tmp_path, server, kind, times, status):
    server.add_fault(Fault(kind, path_prefix=SEARCH, times=times, status=status))
    harness = Harness(tmp_path, server)
    summary = harness.run()
    assert summary.status == "ok"
    assert stored_ids(tmp_path) == uris(CORPUS)
    assert len(harness.sleeps) == times  # one backoff per failed try
    assert 0.25 <= harness.sleeps[0] <= 0.5 and all(0.25 <= s <= 1 for s in harness.sleeps)


def test_timeout_is_retried(tmp_path, server):
    server.add_fault(Fault("slow", path_prefix=SEARCH, delay=2.5))
    harness = Harness(tmp_path, server, timeout=0.5)
    summary = harness.run()
    assert summary.status == "ok" and len(harness.sleeps) == 1
    assert stored_ids(tmp_path) == uris(CORPUS)


def test_persistent_failure_keeps_pages_and_checkpoint_then_resumes(tmp_path, server):
    server.on_search = lambda n: n == 2 and server.add_fault(Fault("5xx", path_prefix=SEARCH, times=1000))
    harness = Harness(tmp_path, server, attempts=3)
    summary = harness.run()
    assert summary.status == "failed"
    assert "kept failing after 3 tries" in summary.error and "503" in summary.error
    assert len(harness.sleeps) == 2
    newest_20 = uris(CORPUS[-20:])
    assert stored_ids(tmp_path) == newest_20  # pages 1 and 2 committed
    run = last_run(tmp_path)
    assert (run["status"], run["pages"], run["inserted"]) == ("failed", 2, 20)
    assert checkpoint_state(tmp_path)["windows"]  # the unfinished rest of the window

    server.clear_faults()
    server.on_search = None
    assert harness.run().status == "ok"
    assert stored_ids(tmp_path) == uris(CORPUS)
    assert query(tmp_path, "SELECT count(*) FROM post_versions")[0][0] == 30  # nothing twice
    assert "windows" not in checkpoint_state(tmp_path)


def test_server_side_token_expiry_is_refreshed_mid_run(tmp_path, server):
    server.tokens_expire_after = 2  # the server stops honouring a token before its exp claim says
    summary = Harness(tmp_path, server).run()
    assert summary.status == "ok" and stored_ids(tmp_path) == uris(CORPUS)
    assert server.sessions_created == 1 and server.sessions_refreshed >= 1
    cursors = [r.query.get("cursor", ["-"])[0] for r in server.requests_to(SEARCH)]
    assert cursors == ["-", "10", "20", "20"]  # the third call was refused, then repeated with the new token
    tokens = [r.headers["authorization"] for r in server.requests_to(SEARCH)]
    assert tokens[2] == tokens[0] and tokens[3] != tokens[2]


def test_sdk_refreshes_on_its_own_before_the_jwt_expires(tmp_path, server):
    server.access_ttl = 600  # exp within the SDK's 15-minute margin: it refreshes before calls
    summary = Harness(tmp_path, server).run()
    assert summary.status == "ok" and stored_ids(tmp_path) == uris(CORPUS)
    assert server.sessions_refreshed >= 1 and server.sessions_created == 1
    assert len(server.requests_to(SEARCH)) == 3  # no call was refused: the refresh came first
    refreshes = server.requests_to("/xrpc/com.atproto.server.refreshSession")
    assert all(r.headers["authorization"].startswith("Bearer ") for r in refreshes)


def test_failed_refresh_creates_a_new_session(tmp_path, server):
    def expire(n: int) -> None:
        if n == 1:
            server.revoke_refresh_tokens()
            server.expire_access_tokens()

    server.on_search = expire
    summary = Harness(tmp_path, server).run()
    assert summary.status == "ok" and stored_ids(tmp_path) == uris(CORPUS)
    assert server.sessions_created == 2


def test_401_expired_token_is_recovered(tmp_path, server):
    server.add_fault(Fault("401", path_prefix=SEARCH))
    summary = Harness(tmp_path, server).run()
    assert summary.status == "ok" and server.sessions_refreshed == 1


def test_password_revoked_mid_run_fails_cleanly(tmp_path, server):
    def revoke(n: int) -> None:
        if n == 2:
            server.app_password = "changed"
            server.revoke_refresh_tokens()
            server.expire_access_tokens()

    server.on_search = revoke
    summary = Harness(tmp_path, server).run()
    assert summary.status == "failed" and "rejected the login" in summary.error
    run = last_run(tmp_path)
    assert run["status"] == "failed" and "BLUESKY_APP_PASSWORD" in run["error"]
    assert DEMO_APP_PASSWORD not in run["error"] and "changed" not in run["error"] and DEMO_HANDLE not in run["error"]
    assert len(stored_ids(tmp_path)) == 20
