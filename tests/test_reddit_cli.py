"""`leakwatch collect --platform reddit` as a subprocess against the Reddit replay server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import REDDIT_ENV, REPO, cli_env, query, reddit_section, run_cli

from collectors.replay.server import Fault


def test_collect_prints_a_summary_and_keeps_secrets_out(reddit_corpus, reddit_server, make_config):
    for i in range(7):
        reddit_corpus.comment(reddit_corpus.submission(10 * i), 10 * i + 5)
    server = reddit_server(reddit_corpus.items)
    path, config = make_config(reddit=reddit_section(server))
    result = run_cli(path, "collect", "--platform", "reddit", env=cli_env(REDDIT_ENV))
    assert result.returncode == 0, result.stderr
    assert "reddit: run 1 ok: 2 pages, 14 fetched, 14 new" in result.stdout
    assert query(config.warehouse_path, "SELECT count(*) FROM posts")[0][0] == 14
    secret = REDDIT_ENV["REDDIT_CLIENT_SECRET"].encode()
    assert secret not in (result.stdout + result.stderr).encode()
    assert secret not in config.warehouse_path.read_bytes()


def test_missing_credential_is_one_line_and_writes_nothing(reddit_corpus, reddit_server, make_config):
    reddit_corpus.submission(0)
    server = reddit_server(reddit_corpus.items)
    path, config = make_config(reddit=reddit_section(server))
    env = cli_env({k: v for k, v in REDDIT_ENV.items() if k != "REDDIT_CLIENT_ID"})
    result = run_cli(path, "collect", "--platform", "reddit", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "leakwatch: error: reddit: environment variable REDDIT_CLIENT_ID is not set; export it before collecting"]
    assert not config.warehouse_path.exists()
    assert not server.requests


def test_rejected_credentials_are_one_line_and_write_nothing(reddit_corpus, reddit_server, make_config):
    reddit_corpus.submission(0)
    server = reddit_server(reddit_corpus.items)
    path, config = make_config(reddit=reddit_section(server))
    result = run_cli(path, "collect", "--platform", "reddit",
                     env=cli_env({**REDDIT_ENV, "REDDIT_CLIENT_SECRET": "not-the-secret"}))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "rejected the credentials" in lines[0] and "REDDIT_CLIENT_SECRET" in lines[0]
    assert "not-the-secret" not in result.stderr
    assert not config.warehouse_path.exists()


def test_killed_mid_run_then_resumes_without_gap_or_duplicate(reddit_corpus, reddit_server, make_config):
    first_batch = [reddit_corpus.submission(10 * i) for i in range(30)]  # six pages of five
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(1000))
    # The fourth search request hangs, so the process is surely mid-run when it is killed.
    server.add_fault(Fault("slow", "/r/all/search", delay=30, after=3))
    path, config = make_config(reddit=reddit_section(server, timeout_seconds=60))
    db = config.warehouse_path

    process = subprocess.Popen([sys.executable, "-m", "leakwatch", "--config", str(path), "collect",
                                "--platform", "reddit"], cwd=REPO, env=cli_env(REDDIT_ENV),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(server.requests_to("/r/all/search")) < 4:
            assert process.poll() is None and time.monotonic() < deadline, "collector ended early"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert query(db, "SELECT status, pages FROM runs") == [("running", 3)]
    assert query(db, "SELECT count(*) FROM posts")[0][0] == 15

    # New posts arrive while the collector is down; the next pass must get both ends.
    server.clear_faults()
    server.now = reddit_corpus.at(2000)
    newer = [reddit_corpus.submission(1500 + i) for i in range(3)]
    server.add_items(newer)
    before = len(server.requests)
    result = run_cli(path, "collect", "--platform", "reddit", env=cli_env(REDDIT_ENV))
    assert result.returncode == 0, result.stderr
    assert "run 2 ok" in result.stdout

    resumed_from = [r for r in server.requests[before:] if r.path.endswith("/search/")][0].arg("after")
    assert resumed_from == f"t3_{first_batch[15].id}"  # the last item of the last committed page
    ids = {row[0] for row in query(db, "SELECT post_id FROM posts")}
    assert ids == {f"t3_{s.id}" for s in first_batch + newer}
    assert query(db, "SELECT count(*), count(DISTINCT post_id) FROM post_versions") == [(33, 33)]
    assert query(db, "SELECT run_id, status FROM runs ORDER BY run_id") == [(1, "interrupted"), (2, "ok")]
    assert query(db, "SELECT newest_id FROM checkpoints")[0][0] == f"t3_{newer[-1].id}"


def test_demo_collects_reddit_from_the_replay_server(demo_run):
    assert "Reddit posts stored" in demo_run.result.stdout
    db = demo_run.db
    kinds = dict(query(db, "SELECT kind, count(*) FROM posts WHERE platform = 'reddit' GROUP BY kind"))
    assert kinds["submission"] >= 30 and kinds["comment"] >= 100
    changes = dict(query(db, "SELECT change, count(*) FROM post_versions GROUP BY change"))
    assert changes.get("edited", 0) > 0 and changes.get("deleted", 0) > 0  # seen between passes
    assert query(db, "SELECT count(*), count(*) FILTER (status = 'ok') FROM runs WHERE platform = 'reddit'") == [
        (3, 3)]


def test_demo_credentials_never_enter_the_environment(monkeypatch, tmp_path):
    """The demo hands the replay server's credentials straight to the collector factory."""
    from collectors import registry
    from leakwatch.config import default_config_text, parse_config

    monkeypatch.delenv("REDDIT_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("REDDIT_CLIENT_ID", "the-users-own")
    config = parse_config(default_config_text(), "test config", tmp_path)
    with registry.get("reddit").demo(config.source_settings("reddit")) as session:
        demo_pass = next(session.passes)
        collector = registry.build("reddit", demo_pass.settings, demo_pass.secrets, **demo_pass.options)
        collector.authenticate()  # the replay server accepts the demo's own credentials
    assert "REDDIT_CLIENT_SECRET" not in os.environ
    assert os.environ["REDDIT_CLIENT_ID"] == "the-users-own"
