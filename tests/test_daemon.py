"""`leakwatch run`: the daemon lock, --once, failure recording, logs, SIGTERM with no job running."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from daemon_support import cli, post, seed, spawn, warehouse_path, write_config

from leakwatch.logs import RedactingFormatter, RedactSecrets

NO_SECRETS = {name: "" for name in ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USER_AGENT",
                                    "BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD")}


def wait_for_log(tmp_path: Path, text: str, process=None, timeout: float = 60) -> str:
    log_file = tmp_path / "data" / "logs" / "leakwatch.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = log_file.read_text(encoding="utf-8") if log_file.exists() else ""
        if text in content:
            return content
        if process is not None and process.poll() is not None:
            raise AssertionError(f"daemon exited early: {process.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the log:\n{content}")


def stop(process, sig=signal.SIGTERM, timeout: float = 30) -> tuple[int, str, str]:
    process.send_signal(sig)
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_second_daemon_refuses_and_sigterm_exits_zero(tmp_path):
    config = write_config(tmp_path, reddit=False, bluesky=False)
    seed(warehouse_path(tmp_path), [post("t3_a", datetime(2024, 11, 26, tzinfo=UTC))])
    first = spawn(config, "run")
    try:
        wait_for_log(tmp_path, "scheduled weekly export", first)
        second = cli(config, "run")
        assert second.returncode == 1
        line = second.stderr.strip()
        assert line.startswith("leakwatch: error: another `leakwatch run` (pid ") and "\n" not in line
        assert str(warehouse_path(tmp_path)) in line
        once = cli(config, "run", "--once")  # cron's --once refuses too
        assert once.returncode == 1 and "already running" in once.stderr
        # Meanwhile readers work: the daemon holds no DuckDB connection between jobs.
        assert cli(config, "sql", "--csv", "SELECT count(*) AS n FROM posts", check=True).stdout == "n\n1\n"
    finally:
        code, _, err = stop(first)
    assert code == 0, err
    assert "daemon stopped cleanly" in err
    assert not warehouse_path(tmp_path).with_name("leakwatch.duckdb.daemon.pid").exists()
    assert cli(config, "run", "--once", env=NO_SECRETS).returncode == 0  # the lock was released


def test_once_runs_the_export_and_records_failed_jobs_while_carrying_on(tmp_path):
    config = write_config(tmp_path, reddit=True, bluesky=False)
    seed(warehouse_path(tmp_path), [post("t3_a", datetime(2024, 11, 26, tzinfo=UTC))], {"t3_a": ("favor", "none")})
    secret = "s3cr3t-app-password-value"
    result = cli(config, "run", "--once", env={**NO_SECRETS, "BLUESKY_APP_PASSWORD": secret})
    assert result.returncode == 1  # a job failed
    assert "Traceback" not in result.stderr

    con = duckdb.connect(str(warehouse_path(tmp_path)), read_only=True)
    runs = con.execute("SELECT platform, status, error FROM runs ORDER BY run_id").fetchall()
    con.close()
    assert len(runs) == 1 and runs[0][:2] == ("reddit", "failed") and runs[0][2]
    # The export still ran after the failed collection.
    manifest = json.loads((tmp_path / "data" / "exports" / "2024-W48" / "manifest.json").read_text())
    assert manifest["files"]["posts.csv"]["rows"] == 1

    log_text = (tmp_path / "data" / "logs" / "leakwatch.log").read_text(encoding="utf-8")
    assert "collect reddit failed" in log_text and "export 2024-W48" in log_text
    assert secret not in log_text and secret not in result.stderr


def test_secrets_never_reach_the_log_file_even_in_tracebacks(monkeypatch):
    monkeypatch.setenv("REDDIT_CLIENT_SECRET", "very-secret-token-123")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "login with %s", ("very-secret-token-123",), None)
    try:
        raise RuntimeError("rejected very-secret-token-123")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    RedactSecrets().filter(record)
    line = RedactingFormatter("%(message)s").format(record)
    assert "very-secret-token-123" not in line and "login with ***" in line and "rejected ***" in line


def test_scheduled_jobs_fire_repeatedly_take_turns_and_never_overlap(tmp_path, monkeypatch, caplog):
    """The scheduler wiring with a job body that outlasts its 1.2 s interval."""
    import threading

    from leakwatch.config import load_config
    from leakwatch.daemon import Daemon

    config = load_config(write_config(tmp_path, interval_minutes=0.02))
    daemon = Daemon(config)
    spans: list[tuple[str, float, float]] = []
    inside: set[str] = set()
    lock = threading.Lock()

    def slow_collect(platform: str) -> None:
        with lock:
            assert not inside, f"{platform} started while {inside} ran"
            inside.add(platform)
        started = time.monotonic()
        time.sleep(1.5)
        with lock:
            inside.discard(platform)
            spans.append((platform, started, time.monotonic()))

    monkeypatch.setattr(daemon, "_collect", slow_collect)
    caplog.set_level(logging.WARNING, logger="leakwatch.daemon")
    scheduler = daemon.build_scheduler()
    scheduler.start()
    try:
        deadline = time.monotonic() + 30
        while sum(1 for p, *_ in spans if p == "bluesky") < 2 or sum(1 for p, *_ in spans if p == "reddit") < 2:
            assert time.monotonic() < deadline, spans
            time.sleep(0.1)
    finally:
        daemon.stop.set()
        scheduler.shutdown(wait=False)
        daemon.wait_idle()
    ordered = sorted(spans, key=lambda s: s[1])
    for (_, _, end), (_, start, _) in zip(ordered, ordered[1:], strict=False):
        assert start >= end  # one job at a time on the warehouse
    assert daemon.failures == 0
    assert "still running; this run is skipped" in caplog.text  # max_instances 1 at work


def test_weekly_export_fires_monday_after_midnight_utc_and_collection_on_its_interval(tmp_path):
    from leakwatch.config import load_config
    from leakwatch.daemon import Daemon

    config = load_config(write_config(tmp_path, 'export_cron = "15 0 * * mon"', interval_minutes=45))
    scheduler = Daemon(config).build_scheduler()
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"collect-reddit", "collect-bluesky", "export"}
    wednesday = datetime(2024, 11, 27, 13, 0, tzinfo=UTC)
    assert jobs["export"].trigger.get_next_fire_time(None, wednesday) == datetime(2024, 12, 2, 0, 15, tzinfo=UTC)
    interval = jobs["collect-reddit"].trigger
    assert interval.interval.total_seconds() == 45 * 60 and not interval.jitter
    assert all(job.max_instances == 1 and job.coalesce for job in jobs.values())


def test_bad_schedule_settings_are_one_clear_line(tmp_path):
    config = write_config(tmp_path, 'export_cron = "every monday"')
    result = cli(config, "run", "--once")
    assert result.returncode == 1
    assert result.stderr.startswith(f"leakwatch: error: {config}: schedule.export_cron: ")
    assert "crontab" in result.stderr and len(result.stderr.strip().splitlines()) == 1
