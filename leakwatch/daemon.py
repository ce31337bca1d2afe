"""`leakwatch run`: the scheduler daemon — collect → classify on intervals, the weekly export.

Jobs run in APScheduler 3 worker threads but take turns on the warehouse (one DuckDB writer per
process, and no writer is held between jobs), so `leakwatch sql`, `status`, `export` and `report`
work from other processes while the daemon runs. A job never overlaps itself (max_instances 1),
runs missed while another job was busy coalesce into one, and a failed job is logged and recorded
in `runs` while the daemon carries on. SIGTERM or Ctrl-C stops the running collection after the
page it is writing; the next start resumes from the checkpoints.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import filelock
from rich.console import Console

import warehouse

from .config import Config
from .errors import DaemonLockError, is_user_error
from .logs import FILE_ONLY, redact

log = logging.getLogger(__name__)


class DaemonLock:
    """An OS file lock next to the warehouse, held for the daemon's lifetime (not DuckDB's lock,
    which the daemon releases between jobs). The OS frees it if the process dies."""

    def __init__(self, warehouse_path: Path):
        self.warehouse_path = warehouse_path
        self.lock_path = warehouse_path.with_name(warehouse_path.name + ".daemon.lock")
        self.info_path = warehouse_path.with_name(warehouse_path.name + ".daemon.pid")
        self._lock = filelock.FileLock(str(self.lock_path))

    def acquire(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            try:
                holder = self.info_path.read_text(encoding="utf-8").strip()
            except OSError:
                holder = "another process"
            raise DaemonLockError(
                f"another `leakwatch run` ({holder}) is already running on {self.warehouse_path}; "
                "stop it first (sql, status, export and report work alongside it)"
            ) from None
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self.info_path.write_text(f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n",
                                  encoding="utf-8")

    def release(self) -> None:
        self.info_path.unlink(missing_ok=True)
        self._lock.release()

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Daemon:
    def __init__(self, config: Config, console: Console | None = None):
        self.config = config
        self.console = console
        self.stop = threading.Event()
        self.failures = 0
        # Warehouse jobs take turns: DuckDB refuses a read-only and a read-write connection to one
        # file in the same process, and one writer at a time keeps transactions simple.
        self._turn = threading.Lock()
        self._idle = threading.Condition()
        self._running = 0

    # -- the jobs -----------------------------------------------------------------------------------
    @property
    def platforms(self) -> list[str]:
        return self.config.enabled_sources()

    def collect_job(self, platform: str) -> bool:
        """Collect, then (if configured and the pass went well) label: two jobs with their own names,
        so a labelling failure is reported as `classify failed`, not as a failed collection."""
        outcome: list[bool] = []
        if not self._run_job(f"collect {platform}", lambda: outcome.append(bool(self._collect(platform)))):
            return False
        if outcome and outcome[0] and not self.stop.is_set():
            return self._run_job("classify", self._classify)
        return True

    def export_job(self) -> bool:
        return self._run_job("export", self._export)

    def _collect(self, platform: str) -> bool:
        """One pass; True when labelling should follow it."""
        from .collect import make_collector, run_collection

        try:
            collector = make_collector(self.config, platform)
            summary = run_collection(self.config, collector, None, stop=self.stop)
        except Exception as exc:
            # Failures before the run row existed (missing secret, rejected credentials, busy
            # warehouse) are recorded here; failures mid-pass are already on their run row.
            if getattr(exc, "leakwatch_run_id", None) is None:
                self._record_failure(platform, exc)
            raise
        log.info("%s", summary.line())
        if summary.status == "failed":
            raise JobFailed(summary.line())
        return summary.status == "ok" and self.config.settings.schedule.classify_after_collect

    def _classify(self) -> None:
        from .classify import run_classification

        try:
            summary = run_classification(self.config, console=None)
        except Exception as exc:
            self._record_failure("classify", exc)
            raise
        log.info("classify: %s", summary.line())

    def _export(self) -> None:
        from .export import export_weeks

        if not self.config.warehouse_path.exists():
            log.info("export: no warehouse yet, nothing to export")
            return
        try:
            exported = export_weeks(self.config)
        except Exception as exc:
            self._record_failure("export", exc)
            raise
        for week in exported:
            log.info("export %s", week.line())
        if not exported:
            log.info("export: every complete week is already exported and unchanged")

    def _record_failure(self, job: str, exc: BaseException) -> None:
        """A failed job becomes a `runs` row (platform = the platform or the job's name)."""
        text = redact(f"{type(exc).__name__}: {exc}" if not is_user_error(exc) else str(exc))
        try:
            with warehouse.writing(self.config.warehouse_path) as con:
                run_id = warehouse.start_run(con, job, [])
                warehouse.finish_run(con, run_id, "failed", text)
        except Exception as record_exc:  # the log line below still tells the story
            log.error("could not record the failure of %s in runs: %s", job, record_exc)

    # -- running jobs -------------------------------------------------------------------------------
    def _run_job(self, name: str, body: Callable[[], None]) -> bool:
        """Run one job in its turn; log and count a failure instead of raising. True if it went well."""
        if self.stop.is_set():
            return True
        with self._idle:
            self._running += 1
        try:
            while not self._turn.acquire(timeout=0.2):
                if self.stop.is_set():
                    return True
            try:
                if self.stop.is_set():
                    return True
                log.info("%s: starting", name)
                body()
                return True
            except Exception as exc:
                self.failures += 1
                log.error("%s failed: %s", name, redact(str(exc)) or type(exc).__name__)
                if not is_user_error(exc) and not isinstance(exc, JobFailed):
                    # The traceback of an unexpected error goes to the log file only.
                    log.error("%s: traceback", name, exc_info=True, extra={FILE_ONLY: True})
                return False
            finally:
                self._turn.release()
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def wait_idle(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0)

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        """Signal handler: finish the page being written, then leave. A second signal leaves at once."""
        name = signal.Signals(signum).name
        if self.stop.is_set():
            log.warning("%s again: exiting now", name)
            _hard_exit(130)
        log.warning("%s received: stopping after the current page (at most %.0fs)", name,
                    self.config.settings.schedule.shutdown_grace_seconds)
        self.stop.set()
        timer = threading.Timer(self.config.settings.schedule.shutdown_grace_seconds, self._grace_over)
        timer.daemon = True
        timer.start()

    def _grace_over(self) -> None:
        log.warning("a job did not stop within %.0fs; exiting anyway (its run is marked interrupted "
                    "on the next start and collection resumes from the last committed page)",
                    self.config.settings.schedule.shutdown_grace_seconds)
        _hard_exit(0)

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    # -- modes --------------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Every job once, in order (for cron and CI); exit 1 if any failed."""
        self._install_signal_handlers()
        for platform in self.platforms:
            self.collect_job(platform)
        self.export_job()
        return 1 if self.failures else 0

    def build_scheduler(self):
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        schedule = self.config.settings.schedule
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=len(self.platforms) + 1)},
        )
        # A job never overlaps itself; late runs still happen (no grace limit); missed runs coalesce.
        once_at_a_time = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
        now = datetime.now(UTC)
        for platform in self.platforms:
            seconds = self.config.source_settings(platform).interval_minutes * 60
            jitter = min(schedule.jitter_seconds, seconds / 2) or None
            scheduler.add_job(self.collect_job, IntervalTrigger(seconds=seconds, jitter=jitter, timezone=UTC),
                              args=[platform], id=f"collect-{platform}", name=f"collect {platform}",
                              next_run_time=now, **once_at_a_time)  # right away on start, then on the interval
        scheduler.add_job(self.export_job, CronTrigger.from_crontab(schedule.export_cron, timezone=UTC),
                          id="export", name="weekly export", **once_at_a_time)

        def skipped(event) -> None:
            log.warning("%s is still running; this run is skipped (jobs never overlap themselves)",
                        scheduler.get_job(event.job_id).name if scheduler.get_job(event.job_id) else event.job_id)

        scheduler.add_listener(skipped, EVENT_JOB_MAX_INSTANCES)
        # APScheduler logs its own line for the same event; ours above says it once, in our words.
        _silence_apscheduler_skips()
        return scheduler

    def run_forever(self) -> int:
        scheduler = self.build_scheduler()
        self._install_signal_handlers()
        scheduler.start()
        for job in scheduler.get_jobs():
            log.info("scheduled %s: %s, next at %s", job.name, job.trigger,
                     job.next_run_time.isoformat(timespec="seconds"))
        while not self.stop.wait(0.5):
            pass
        scheduler.shutdown(wait=False)
        self.wait_idle()
        log.info("daemon stopped cleanly")
        return 0


class _DropSkipWarnings(logging.Filter):
    """APScheduler's "Execution of job ... skipped: maximum number of running instances reached"."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Execution of job") or "skipped" not in str(record.msg)


def _silence_apscheduler_skips() -> None:
    scheduler_log = logging.getLogger("apscheduler.scheduler")
    if not any(isinstance(f, _DropSkipWarnings) for f in scheduler_log.filters):
        scheduler_log.addFilter(_DropSkipWarnings())


class JobFailed(Exception):
    """A job ended in failure that is already recorded (e.g. a collection run with status failed)."""


def _hard_exit(code: int) -> None:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_daemon(config: Config, once: bool, console: Console | None = None) -> int:
    """Take the daemon lock, then run the scheduler (or every job once)."""
    with DaemonLock(config.warehouse_path):
        daemon = Daemon(config, console)
        log.info("leakwatch %s on %s (log file %s)", "run --once" if once else "daemon",
                 config.warehouse_path, config.log_path)
        return daemon.run_once() if once else daemon.run_forever()
