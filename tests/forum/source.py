"""The forum as a leakwatch source: settings, collector and the registry entry."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

from collectors.base import AuthError, CollectorError
from collectors.registry import Source
from collectors.settings import SourceSettings
from warehouse.records import Checkpoint, Page, Post

NAME = "forum"


class ForumSettings(SourceSettings):
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "interval_minutes": 20, "retries": 0, "backoff_seconds": 0, "max_rate_limit_wait_seconds": 0,
    }
    base_url: str


class ForumCollector:
    platform = NAME

    def __init__(self, settings: ForumSettings, token: str):
        self.settings = settings
        self.token = token

    def _get(self, path: str, **params: Any) -> dict:
        url = f"{self.settings.base_url}{path}" + (f"?{urlencode(params)}" if params else "")
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                raise AuthError("forum: the token was refused; check FORUM_TOKEN") from None
            raise CollectorError(f"forum: HTTP {exc.code} from {path}") from None

    def query_keys(self) -> list[str]:
        return [f"forum:{q}" for q in self.settings.queries]

    def authenticate(self) -> None:
        self._get("/v1/me")

    def pages(self, checkpoints: Mapping[str, Checkpoint]) -> Iterator[Page]:
        """Newest first per query, down to the checkpoint; the last page of a query moves it."""
        for query, key in zip(self.settings.queries, self.query_keys(), strict=True):
            known = checkpoints.get(key)
            floor = known.newest_created_at if known else None
            offset, newest = 0, None
            while True:
                answer = self._get("/v1/search", q=query, offset=offset)
                listed = [self._post(t, query) for t in answer["threads"]]
                posts = [p for p in listed if floor is None or p.created_at > floor]
                newest = newest or (posts[0] if posts else None)
                last = len(posts) < len(listed) or answer["next_offset"] is None
                checkpoint = Checkpoint(NAME, key, newest.created_at, newest.post_id) if last and newest else None
                yield Page(NAME, key, posts, checkpoint)
                if last:
                    break
                offset = answer["next_offset"]

    @staticmethod
    def _post(thread: dict, query: str) -> Post:
        return Post(platform=NAME, post_id=f"forum:{thread['id']}", kind="thread",
                    created_at=datetime.fromisoformat(thread["created"]), text=thread["text"],
                    author_id=thread["author"], author_handle=thread["author"], like_count=thread["likes"],
                    matched_queries=(query,), raw=thread)


def build(settings: ForumSettings, secrets: Mapping[str, str], *, since=None, until=None) -> ForumCollector:
    return ForumCollector(settings, secrets["FORUM_TOKEN"])


SOURCE = Source(
    name=NAME,
    display_name="Forum",
    settings_model=ForumSettings,
    build=build,
    secrets=("FORUM_TOKEN",),
    kinds=("thread",),
    color="#2f9e44",
    engagement_sql="coalesce(p.like_count, 0)",
    engagement_text="likes",
    example_settings={"queries": ["sora leak"], "base_url": "http://127.0.0.1:9"},
)
