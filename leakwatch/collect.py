"""One incremental collection pass for one platform: pages in, committed as they arrive."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import filelock
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import warehouse
from collectors import registry
from collectors.base import Collector, CollectorError

from .config import Config
from .errors import CollectionBusyError, ConfigError

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: int
    platform: str
    status: str  # ok | failed | interrupted
    pages: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    rate_limit_waits: int = 0
    caps_hit: int = 0
    error: str | None = None

    def line(self) -> str:
        text = (f"{self.platform}: run {self.run_id} {self.status}: {self.pages} pages, "
                f"{self.fetched} fetched, {self.inserted} new, {self.updated} updated, "
                f"{self.skipped} skipped, {self.rate_limit_waits} rate-limit waits, "
                f"{self.caps_hit} caps hit")
        return text + (f" — {self.error}" if self.error else "")


def make_collector(config: Config, platform: str, since: datetime | None = None, until: datetime | None = None,
                   **options: Any) -> Collector:
    """The configured collector for `platform`, its secrets read from the environment (ConfigError
    naming the variable when one is missing); `options` go to the source's factory (e.g. a clock)."""
    source = registry.get(platform)
    secrets = {name: os.environ.get(name, "").strip() for name in source.secrets}
    missing = [name for name, value in secrets.items() if not value]
    if missing:  # every missing variable at once, not one per attempt
        names = ", ".join(missing)
        raise ConfigError(f"{platform}: environment variable{'s' if len(missing) > 1 else ''} {names} "
                          f"{'are' if len(missing) > 1 else 'is'} not set; export "
                          f"{'them' if len(missing) > 1 else 'it'} before collecting")
    return registry.build(platform, config.source_settings(platform), secrets, since, until, **options)


@contextmanager
def collecting(warehouse_path: Path, platform: str) -> Iterator[None]:
    """One collection per platform and warehouse at a time, whichever process runs it.

    Without it, a manual `collect` would take the daemon's live run for one left behind by a killed
    process and mark it interrupted. An OS file lock: the OS frees it when the holder dies.
    """
    lock_path = warehouse_path.with_name(f"{warehouse_path.name}.{platform}.collect.lock")
    info_path = lock_path.with_suffix(".pid")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        try:
            holder = info_path.read_text(encoding="utf-8").strip()
        except OSError:
            holder = "another process"
        raise CollectionBusyError(
            f"a {platform} collection ({holder}) is already running on {warehouse_path}; "
            "wait for it to finish (its pages show up in `leakwatch status` as they commit)"
        ) from None
    try:
        info_path.write_text(f"pid {os.getpid()}\n", encoding="utf-8")
        yield
    finally:
        info_path.unlink(missing_ok=True)
        lock.release()


def run_collection(
    config: Config,
    collector: Collector,
    console: Console | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RunSummary:
    """One pass, refused (CollectionBusyError) while another process collects the same platform."""
    with collecting(config.warehouse_path, collector.platform):
        return _run_collection(config, collector, console, stop, clock)


def _run_collection(
    config: Config,
    collector: Collector,
    console: Console | None,
    stop: threading.Event | None,
    clock: Callable[[], datetime] | None,
) -> RunSummary:
    """Authenticate, then stream pages into the warehouse; the run row records the outcome (at
    `clock`'s times when given: the demo's replayed collections keep their own dates).

    The write connection is opened per page and closed right after, so `leakwatch sql` and other
    readers get in between pages while a long pass runs. When `stop` is set, the pass ends after
    the page being written (status interrupted); the next pass resumes from the checkpoints.
    """
    collector.authenticate()  # before opening the warehouse: rejected credentials write nothing
    platform = collector.platform
    path = config.warehouse_path
    with warehouse.writing(path) as con:
        launched = registry.earliest_launch()
        if launched is not None:  # the plausible post dates start at the earliest source's launch
            warehouse.set_plausible_since(con, launched)
        abandoned = warehouse.close_abandoned_runs(con, platform)
        if abandoned:
            log.warning("%s: %d earlier run(s) had been interrupted; resuming from checkpoints",
                        platform, abandoned)
        checkpoints = warehouse.get_checkpoints(con, platform)
        if hasattr(collector, "use_known_posts"):
            # Collectors that revisit recent posts (to notice edits and deletions) ask what is stored.
            collector.use_known_posts(lambda since: _known_posts(path, platform, since))
        summary = RunSummary(warehouse.start_run(con, platform, collector.query_keys(),
                                                 clock() if clock else None), platform, "running")
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                  console=console or Console(stderr=True), transient=True,
                  disable=console is None or not console.is_terminal) as progress:
        task = progress.add_task(f"{platform}: starting", total=None)
        try:
            for page in collector.pages(checkpoints):
                with warehouse.writing(path) as con:
                    result = warehouse.commit_page(con, summary.run_id, page)
                summary.pages += 1
                summary.fetched += len(page.posts)
                summary.inserted += result.inserted
                summary.updated += result.updated
                summary.skipped += page.skipped
                summary.rate_limit_waits += page.rate_limit_waits
                summary.caps_hit += int(page.cap_hit)
                progress.update(task, description=(
                    f"{platform}: {summary.pages} pages, {summary.fetched} posts "
                    f"({summary.inserted} new) — {page.query_key}"))
                if stop is not None and stop.is_set():
                    summary.status = "interrupted"
                    summary.error = "stopped by a shutdown request; the next run resumes from the checkpoints"
                    break
        except CollectorError as exc:
            summary.status, summary.error = "failed", str(exc)
            # Waits spent on the request that finally failed belong to no committed page.
            waits = int(getattr(exc, "rate_limit_waits", 0) or 0)
            if waits:
                _add_waits(path, summary.run_id, waits)
                summary.rate_limit_waits += waits
        except (KeyboardInterrupt, SystemExit):
            _finish(path, summary.run_id, "interrupted", "stopped by the user", clock)
            raise
        except Exception as exc:
            _finish(path, summary.run_id, "failed", f"{type(exc).__name__}: {exc}", clock)
            exc.leakwatch_run_id = summary.run_id  # type: ignore[attr-defined]  (already on a run row)
            raise
        if summary.status == "running":
            summary.status = "ok"
    _finish(path, summary.run_id, summary.status, summary.error, clock)
    return summary


def _finish(path, run_id: int, status: str, error: str | None,
            clock: Callable[[], datetime] | None = None) -> None:
    """Close the run row; if even that cannot be written, the next pass marks it interrupted."""
    try:
        with warehouse.writing(path) as con:
            warehouse.finish_run(con, run_id, status, error, clock() if clock else None)
    except warehouse.WarehouseError as exc:
        log.error("could not record the end of run %d (%s): %s", run_id, status, exc)


def _add_waits(path, run_id: int, waits: int) -> None:
    try:
        with warehouse.writing(path) as con:
            warehouse.add_to_run(con, run_id, rate_limit_waits=waits)
    except warehouse.WarehouseError as exc:
        log.error("could not count %d rate-limit waits on run %d: %s", waits, run_id, exc)


def _known_posts(path, platform: str, since: datetime) -> list[tuple[str, datetime, list[str]]]:
    """Stored, not yet deleted posts created since `since`: id, created_at, matched queries.

    A short connection of its own: the pass holds none between pages.
    """
    with warehouse.writing(path) as con:
        return warehouse.known_posts(con, platform, since)
