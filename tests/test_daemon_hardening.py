"""Smaller partial-failure cases of issue 12: a manual collect beside the daemon's, a classify
failure named as such, APScheduler's skip warning logged once."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

from conftest import REDDIT_ENV, REPO, cli_env, query, reddit_section, run_cli

from collectors.replay.server import Fault

SCHEDULE = {"jitter_seconds": 0, "shutdown_grace_seconds": 15, "classify_after_collect": False}


def test_manual_collect_while_another_collects_the_platform_refuses_and_leaves_the_live_run_alone(
        reddit_corpus, reddit_server, make_config):
    for i in range(15):
        reddit_corpus.submission(10 * i)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(1000))
    server.add_fault(Fault("slow", "/r/all/search", delay=3, after=1))  # the second page is in flight a while
    path, config = make_config(reddit=reddit_section(server, timeout_seconds=30), bluesky={"enabled": False})
    first = subprocess.Popen([sys.executable, "-m", "leakwatch", "--config", str(path), "collect",
                              "--platform", "reddit"], cwd=REPO, env=cli_env(REDDIT_ENV),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(server.requests_to("/r/all/search")) < 2:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = run_cli(path, "collect", "--platform", "reddit", env=cli_env(REDDIT_ENV))
    finally:
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert second.returncode == 1
    line = second.stderr.strip()
    assert "\n" not in line and line.startswith("leakwatch: error: a reddit collection (pid ")
    assert "already running" in line
    # The live run finished as ok: the refused collect neither marked it interrupted nor made its own.
    assert query(config.warehouse_path, "SELECT run_id, status FROM runs") == [(1, "ok")]
    assert query(config.warehouse_path, "SELECT count(*) FROM posts")[0][0] == 15


def test_a_classify_failure_after_a_good_collection_is_reported_as_classify(reddit_corpus, reddit_server,
                                                                             make_config):
    reddit_corpus.submission(10)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(100))
    path, config = make_config(reddit=reddit_section(server), bluesky={"enabled": False},
                               schedule={**SCHEDULE, "classify_after_collect": True})
    path.write_text(path.read_text().replace("[stance]\n", '[stance]\nmodel = "no-such-model"\n'))
    result = run_cli(path, "run", "--once", env=cli_env(REDDIT_ENV))
    assert result.returncode == 1
    log_text = (config.data_dir / "logs" / "leakwatch.log").read_text(encoding="utf-8")
    assert "classify failed" in log_text and "collect reddit failed" not in log_text, log_text
    runs = query(config.warehouse_path, "SELECT platform, status FROM runs ORDER BY run_id")
    assert runs == [("reddit", "ok"), ("classify", "failed")]


def test_a_skipped_run_is_logged_once(make_config, caplog, monkeypatch):
    from leakwatch.daemon import Daemon

    _, config = make_config(reddit={"interval_minutes": 0.01}, bluesky={"enabled": False}, schedule=SCHEDULE)
    daemon = Daemon(config)
    release = threading.Event()
    monkeypatch.setattr(daemon, "_collect", lambda platform: release.wait(10) and False)
    caplog.set_level(logging.DEBUG)
    scheduler = daemon.build_scheduler()
    scheduler.start()
    try:
        deadline = time.monotonic() + 20
        while not any("skipped" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "no run was ever skipped"
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        release.set()
        daemon.stop.set()
        scheduler.shutdown(wait=False)
        daemon.wait_idle()
    skips = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert skips and all(r.name == "leakwatch.daemon" for r in skips), [(r.name, r.getMessage()) for r in skips]
