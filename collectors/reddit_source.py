"""Reddit as a source: its settings, secrets, collector factory and what others show of it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from pydantic import Field, field_validator

from .base import Collector
from .registry import DemoPass, DemoSession, Source
from .settings import SourceSettings, no_blank_entries

SECRETS = ("REDDIT_CLIENT_ID", "REDDIT_CLIENT_SECRET", "REDDIT_USER_AGENT")


class RedditSettings(SourceSettings):
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "interval_minutes": 60, "retries": 3, "backoff_seconds": 2, "max_rate_limit_wait_seconds": 600,
    }

    subreddits: list[str] = Field(min_length=1)
    # API endpoints; the demo and tests point these at the local replay server.
    oauth_url: str = Field("https://oauth.reddit.com", pattern=r"^https?://")
    reddit_url: str = Field("https://www.reddit.com", pattern=r"^https?://")
    # Submissions per search request (Reddit serves at most 100).
    page_size: int = Field(100, ge=1, le=100)
    # Reddit stops every listing near this many items; a scan ending there is recorded as a cap hit.
    listing_cap: int = Field(1000, ge=1)
    # `more` links resolved per thread (one request each); 0 keeps only the first answer's comments.
    replace_more_limit: int = Field(32, ge=0)
    # Threads younger than this are refetched on later passes (new comments, edits, deletions); 0 = never.
    refresh_days: float = Field(3, ge=0, le=365)
    # Incremental passes read this far below the last checkpoint: Reddit lists same-second posts in
    # no id order and its search index adds some posts late. Posts already stored cost nothing.
    overlap_minutes: float = Field(60, ge=0, le=7 * 24 * 60)
    # Seconds to wait for an answer before prawcore retries (then `retries` more attempts of ours).
    timeout_seconds: float = Field(16, gt=0, le=600)

    @field_validator("subreddits")
    @classmethod
    def _no_blank_subreddits(cls, value: list[str]) -> list[str]:
        return no_blank_entries(value)


def build(settings: RedditSettings, secrets: Mapping[str, str], *, since: datetime | None = None,
          until: datetime | None = None, clock: Callable[[], datetime] | None = None) -> Collector:
    from .reddit import RedditCollector, RedditOptions, make_reddit

    options = RedditOptions(
        queries=tuple(settings.queries),
        subreddits=tuple(settings.subreddits),
        page_size=settings.page_size,
        listing_cap=settings.listing_cap,
        replace_more_limit=settings.replace_more_limit,
        refresh_days=settings.refresh_days,
        overlap_minutes=settings.overlap_minutes,
        timeout_seconds=settings.timeout_seconds,
        retries=settings.retries,
        backoff_seconds=settings.backoff_seconds,
        max_wait_seconds=settings.max_rate_limit_wait_seconds,
        oauth_url=settings.oauth_url,
        reddit_url=settings.reddit_url,
    )
    reddit = make_reddit(options, secrets["REDDIT_CLIENT_ID"], secrets["REDDIT_CLIENT_SECRET"],
                         secrets["REDDIT_USER_AGENT"])
    return RedditCollector(reddit, options, since, until, clock)


def resumes_mid_listing(cursor: str | None) -> bool:
    """A Reddit cursor also lists recent threads; only its `resume` part means a scan stopped midway."""
    try:
        return bool(json.loads(cursor or "{}").get("resume"))
    except (ValueError, AttributeError):
        return False


def describe_queries(settings: RedditSettings) -> dict[str, Any]:
    return {"queries": list(settings.queries), "subreddits": list(settings.subreddits)}


@contextmanager
def demo(settings: RedditSettings) -> Iterator[DemoSession]:
    """The sample corpus from the Reddit replay server, with real praw, in three passes on its clock."""
    from .replay.corpus import load_sample_corpus
    from .replay.reddit_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RedditReplayServer

    secrets = {"REDDIT_CLIENT_ID": DEFAULT_CLIENT_ID, "REDDIT_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
               "REDDIT_USER_AGENT": "leakwatch-demo/0.1 (offline replay)"}
    with RedditReplayServer(load_sample_corpus()) as server:
        # The sample spans five weeks: refresh every thread in it, so later passes see its edits.
        local = settings.model_copy(update={"oauth_url": server.url, "reddit_url": server.url, "refresh_days": 40})

        def passes() -> Iterator[DemoPass]:
            # The day after the leak, a week later, the end of the sample: each pass reads only what
            # is newer than its checkpoints and refetches the recent threads.
            for when in (datetime(2024, 11, 27, tzinfo=UTC), datetime(2024, 12, 3, tzinfo=UTC), server.now):
                server.now = when
                yield DemoPass(local, secrets, {"clock": lambda: server.now}, f"as of {when:%Y-%m-%d}: ",
                               clock=lambda: server.now)

        yield DemoSession("[bold]Reddit[/bold]: collecting from a local replay of the Reddit API "
                          "(praw, app-only OAuth)", passes())


SOURCE = Source(
    name="reddit",
    display_name="Reddit",
    settings_model=RedditSettings,
    build=build,
    secrets=SECRETS,
    kinds=("submission", "comment"),
    launched=date(2005, 6, 23),  # reddit.com went online in June 2005
    color="#d9480f",
    # Reddit's net score plus comments.
    engagement_sql="coalesce(p.score, 0) + coalesce(p.reply_count, 0)",
    engagement_text="score + comments",
    post_url_sql="p.url",  # Reddit's url is the permalink, the post's own address
    community_label="subreddit",
    community_prefix="r/",
    resumes_mid_listing=resumes_mid_listing,
    describe_queries=describe_queries,
    example_settings={"queries": ["sora leak"], "subreddits": ["all"]},
    demo=demo,
)
