"""Bluesky as a source: its settings, secrets, collector factory and what others show of it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from .base import Collector
from .bluesky_normalize import post_web_url
from .registry import DemoPass, DemoSession, Source
from .settings import SourceSettings

SECRETS = ("BLUESKY_HANDLE", "BLUESKY_APP_PASSWORD")


class BlueskySettings(SourceSettings):
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "interval_minutes": 30, "retries": 5, "backoff_seconds": 1.0, "max_rate_limit_wait_seconds": 900,
    }

    # The PDS/entryway that serves createSession and searchPosts; the demo and tests use a replay server.
    service_url: str = "https://bsky.social"
    # The first pass (no checkpoint yet) searches back to this day (UTC).
    start_date: date = date(2024, 11, 20)
    page_size: int = Field(100, ge=1, le=100)  # searchPosts `limit`
    # searchPosts stops paging after a bounded number of results; a window that reaches this many
    # (or whose hitsTotal says more) is sliced by time so a long backfill stays complete.
    search_result_cap: int = Field(10000, ge=1)
    fetch_threads: bool = True  # also store the reply threads of matched posts (getPostThread)
    # A revisit re-searches this many hours before the checkpoint and looks up stored posts the search
    # no longer returns, so edits and deletions are recorded (also new counts and, with fetch_threads,
    # new replies); 0 = never revisit.
    revisit_hours: float = Field(48, ge=0, le=24 * 365)
    # How often a pass revisits; the passes in between fetch only what is new (one request per query
    # when nothing is). 0 = every pass.
    revisit_every_hours: float = Field(24, ge=0, le=24 * 365)
    # Every pass re-searches this far before the newest post seen, for posts the AppView indexed late.
    overlap_minutes: float = Field(10, ge=0, le=7 * 24 * 60)
    thread_depth: int = Field(10, ge=1, le=1000)
    timeout_seconds: float = Field(30, gt=0, le=600)


def build(settings: BlueskySettings, secrets: Mapping[str, str], *, since: datetime | None = None,
          until: datetime | None = None, **options: Any) -> Collector:
    from .bluesky import BlueskyCollector, BlueskyOptions
    from .retry import RetryPolicy

    bluesky = BlueskyOptions(
        service_url=settings.service_url,
        queries=list(settings.queries),
        start=datetime.combine(settings.start_date, datetime.min.time(), UTC),
        page_size=settings.page_size,
        result_cap=settings.search_result_cap,
        fetch_threads=settings.fetch_threads,
        thread_depth=settings.thread_depth,
        revisit=timedelta(hours=settings.revisit_hours),
        revisit_every=timedelta(hours=settings.revisit_every_hours),
        overlap=timedelta(minutes=settings.overlap_minutes),
        timeout=settings.timeout_seconds,
        retry=RetryPolicy(attempts=settings.retries + 1, base_delay=settings.backoff_seconds,
                          max_rate_limit_wait=settings.max_rate_limit_wait_seconds),
    )
    return BlueskyCollector(bluesky, secrets["BLUESKY_HANDLE"], secrets["BLUESKY_APP_PASSWORD"],
                            since=since, until=until, **options)


def resumes_mid_listing(cursor: str | None) -> bool:
    """A Bluesky cursor also keeps owed threads and the last revisit; only pending time windows mean
    a backfill stopped midway."""
    try:
        return bool(json.loads(cursor or "{}").get("windows"))
    except (ValueError, AttributeError):
        return False


@contextmanager
def demo(settings: BlueskySettings) -> Iterator[DemoSession]:
    """The sample corpus's Bluesky posts from the XRPC replay server, with the real atproto client."""
    from .replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE, BlueskyReplay
    from .replay.corpus import load_sample_corpus

    secrets = {"BLUESKY_HANDLE": DEMO_HANDLE, "BLUESKY_APP_PASSWORD": DEMO_APP_PASSWORD}
    with BlueskyReplay(load_sample_corpus()) as server:
        local = settings.model_copy(update={"service_url": server.url})
        yield DemoSession("[bold]Bluesky[/bold]: collecting from a local XRPC replay of Bluesky "
                          "(atproto, app password)", iter([DemoPass(local, secrets, clock=lambda: server.now)]))


# A post's bsky.app address from its at:// URI, as SQL over the posts table (alias p) for the exports'
# post_url; bluesky_normalize.post_web_url is the same in Python (tests check they agree).
POST_WEB_URL_SQL = ("CASE WHEN regexp_matches(p.post_id, '^at://[^/]+/app[.]bsky[.]feed[.]post/[^/]+$') "
                    "THEN 'https://bsky.app/profile/' || split_part(p.post_id, '/', 3) || '/post/' "
                    "|| split_part(p.post_id, '/', 5) END")

SOURCE = Source(
    name="bluesky",
    display_name="Bluesky",
    settings_model=BlueskySettings,
    build=build,
    secrets=SECRETS,
    kinds=("post", "reply", "quote"),
    launched=date(2022, 1, 1),  # a safe bound before the network's first posts (public beta: 2023)
    color="#1c7ed6",
    # Bluesky's likes, reposts, quotes and replies.
    engagement_sql=("coalesce(p.like_count, 0) + coalesce(p.repost_count, 0) + coalesce(p.quote_count, 0) "
                    "+ coalesce(p.reply_count, 0)"),
    engagement_text="likes + reposts + quotes + replies",
    resumes_mid_listing=resumes_mid_listing,
    # A post's `url` is a link it embeds; its own address is built from the at:// URI.
    post_url=lambda post_id, url: post_web_url(post_id),
    post_url_sql=POST_WEB_URL_SQL,
    example_settings={"queries": ["sora leak"]},
    demo=demo,
)
