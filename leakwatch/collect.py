"""One incremental collection pass for one platform: pages in, committed as they arrive."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

import warehouse
from collectors.base import Collector, CollectorError

from .config import Config, ConfigError

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


def make_collector(config: Config, platform: str, since: datetime | None, until: datetime | None) -> Collector:
    """The configured collector for `platform`; raises ConfigError for a missing secret."""
    if platform == "reddit":
        from collectors.reddit import RedditCollector

        return RedditCollector.from_config(config, since=since, until=until)
    if platform == "bluesky":
        from collectors.bluesky import BlueskyCollector

        return BlueskyCollector.from_config(config, since=since, until=until)
    raise ConfigError(f"unknown platform {platform!r}; expected reddit or bluesky")


def run_collection(
    config: Config,
    collector: Collector,
    console: Console | None = None,
) -> RunSummary:
    """Authenticate, then stream pages into the warehouse; the run row records the outcome."""
    collector.authenticate()  # before opening the warehouse: rejected credentials write nothing
    platform = collector.platform
    with warehouse.writing(config.warehouse_path) as con:
        abandoned = warehouse.close_abandoned_runs(con, platform)
        if abandoned:
            log.warning("%s: %d earlier run(s) had been interrupted; resuming from checkpoints",
                        platform, abandoned)
        checkpoints = warehouse.get_checkpoints(con, platform)
        if hasattr(collector, "use_known_posts"):
            # Collectors that revisit recent posts (to notice edits and deletions) ask what is stored.
            collector.use_known_posts(lambda since: _known_posts(con, platform, since))
        summary = RunSummary(warehouse.start_run(con, platform, collector.query_keys()), platform, "running")
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console or Console(stderr=True), transient=True,
                      disable=console is None) as progress:
            task = progress.add_task(f"{platform}: starting", total=None)
            try:
                for page in collector.pages(checkpoints):
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
            except CollectorError as exc:
                summary.status, summary.error = "failed", str(exc)
                # Waits spent on the request that finally failed belong to no committed page.
                waits = int(getattr(exc, "rate_limit_waits", 0) or 0)
                if waits:
                    warehouse.add_to_run(con, summary.run_id, rate_limit_waits=waits)
                    summary.rate_limit_waits += waits
            except (KeyboardInterrupt, SystemExit):
                warehouse.finish_run(con, summary.run_id, "interrupted", "stopped by the user")
                raise
            except Exception as exc:
                warehouse.finish_run(con, summary.run_id, "failed", f"{type(exc).__name__}: {exc}")
                raise
            else:
                summary.status = "ok"
        warehouse.finish_run(con, summary.run_id, summary.status, summary.error)
    return summary


def _known_posts(con, platform: str, since: datetime) -> list[tuple[str, datetime, list[str]]]:
    """Stored, not yet deleted posts created since `since`: id, created_at, matched queries."""
    return con.execute(
        "SELECT post_id, created_at, matched_queries FROM posts "
        "WHERE platform = ? AND created_at >= ? AND NOT deleted ORDER BY created_at",
        [platform, since],
    ).fetchall()
