"""Credentials and a killed process, through the CLI as users run it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from bluesky_support import (
    checkpoint_state,
    cli_env,
    collect,
    db_path,
    last_run,
    posts_every,
    query,
    serving,
    stored_ids,
    uris,
)

from collectors.replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE

CORPUS = posts_every(35)


def test_missing_password_is_one_clear_line_and_nothing_is_written(tmp_path):
    with serving(tmp_path, CORPUS) as (server, config):
        result = collect(config, env=cli_env(password=None))
        assert server.requests == []
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "leakwatch: error: bluesky: environment variable BLUESKY_APP_PASSWORD is not set; "
        "export it before collecting"]
    assert not db_path(tmp_path).exists()


def test_rejected_password_is_one_clear_line_and_nothing_is_written(tmp_path):
    with serving(tmp_path, CORPUS) as (server, config):
        result = collect(config, env=cli_env(password="wrong-pass-word"))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("leakwatch: error: Bluesky rejected the login")
    assert "401" in lines[0] and "BLUESKY_APP_PASSWORD" in lines[0]
    assert "wrong-pass-word" not in result.stderr + result.stdout and DEMO_HANDLE not in result.stderr
    assert not db_path(tmp_path).exists()


def test_killed_process_resumes_with_no_gap_and_no_duplicate(tmp_path):
    held = threading.Event()
    release = threading.Event()

    def hold_third_call(number: int) -> None:
        if number == 3:
            held.set()
            release.wait(timeout=60)

    with serving(tmp_path, CORPUS, now=CORPUS[29].created_at, page_size=10) as (server, config):
        server.on_search = hold_third_call
        process = subprocess.Popen([sys.executable, "-m", "leakwatch", "--config", str(config), "collect",
                                    "--platform", "bluesky"], env=cli_env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        try:
            assert held.wait(timeout=90), "the collector never reached its third page"
            process.send_signal(signal.SIGKILL)  # no clean-up of any kind
            process.wait(timeout=30)
        finally:
            release.set()
            process.kill()
        server.on_search = None
        # Two whole pages survived, and the run is still marked running.
        assert stored_ids(tmp_path) == uris(CORPUS[10:30])
        assert last_run(tmp_path)["status"] == "running"
        # Meanwhile new posts arrive; the next pass takes them and the rest of the old window.
        server.now = CORPUS[-1].created_at
        result = collect(config)
        assert result.returncode == 0, result.stderr
    assert stored_ids(tmp_path) == uris(CORPUS)
    assert query(tmp_path, "SELECT count(*), count(DISTINCT post_id) FROM post_versions") == [(35, 35)]
    assert query(tmp_path, "SELECT status FROM runs ORDER BY run_id") == [("interrupted",), ("ok",)]
    assert "windows" not in checkpoint_state(tmp_path)
    assert DEMO_APP_PASSWORD not in result.stderr
