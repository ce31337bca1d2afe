"""Bluesky collector: `app.bsky.feed.searchPosts` through the atproto SDK, incremental and resumable.

Each query is searched newest first (`sort=latest`) inside time windows `[since, until)`:
- the first pass covers `[start_date, now)`, later passes `[newest seen, now)` (since is inclusive,
  so a pass with nothing new costs one request per query);
- every page is handed over with a checkpoint that records the newest post seen and the part of
  the window still to fetch, so a killed pass resumes with no gap and no duplicate;
- when a window's paging stops at the search result cap, the rest of the window is fetched as a
  new window ending at the oldest post seen (time slicing), so a long backfill stays complete.

Sessions: the SDK logs in with the app password and refreshes the access token on its own shortly
before the JWT's `exp`. A token the server still refuses (400 ExpiredToken) is refreshed here through
the SDK's refreshSession; if that fails too, a new session is created.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from atproto import Client
from atproto_client import models
from atproto_client.exceptions import (
    BadRequestError,
    LoginRequiredError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    RequestException,
    UnauthorizedError,
)
from atproto_client.request import Request as XrpcRequest

from warehouse.records import Checkpoint, Page, Post

from .base import AuthError, CollectorError
from .bluesky_normalize import InvalidItem, normalize_post, parse_time
from .retry import RetryPolicy, backoff_delay, rate_limit_wait

log = logging.getLogger(__name__)

PLATFORM = "bluesky"
EPSILON = timedelta(microseconds=1)  # `until` is exclusive: the oldest post seen + ε keeps it in the window
MAX_REVISIT_CHECKS = 200  # getPostThread calls per query and pass to tell deletions from edits
_TOKEN_ERRORS = {"ExpiredToken", "InvalidToken", "AuthMissing", "AuthRequired"}


# (since) -> stored posts created since then: (post id, created_at, matched queries)
KnownPosts = Callable[[datetime], list[tuple[str, datetime, list[str]]]]


def query_key(query: str) -> str:
    return f"bsky:{query}"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class Window:
    since: datetime
    until: datetime | None  # None: up to now


@dataclass
class Plan:
    """What one query still has to fetch in this pass; serialized into the checkpoint after each page."""

    windows: list[Window]
    newest: datetime | None = None
    newest_id: str | None = None

    def saw(self, post: Post) -> None:
        if self.newest is None or (post.created_at, post.post_id) > (self.newest, self.newest_id or ""):
            self.newest, self.newest_id = post.created_at, post.post_id

    def checkpoint(self, key: str) -> Checkpoint:
        cursor = None
        if self.windows:
            cursor = json.dumps({"v": 1, "windows": [
                [_iso(w.since), _iso(w.until) if w.until else None] for w in self.windows]})
        return Checkpoint(PLATFORM, key, newest_created_at=self.newest, newest_id=self.newest_id, cursor=cursor)


def _pending_windows(checkpoint: Checkpoint | None) -> list[Window]:
    """The unfinished windows an interrupted pass left in its checkpoint."""
    if checkpoint is None or not checkpoint.cursor:
        return []
    try:
        state = json.loads(checkpoint.cursor)
        return [Window(parse_time(s), parse_time(u) if u else None) for s, u in state["windows"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CollectorError(f"checkpoint for {checkpoint.query_key!r} is unreadable ({exc}); "
                             "delete it from the checkpoints table to start that query over") from None


@dataclass
class BlueskyOptions:
    service_url: str
    queries: list[str]
    start: datetime
    page_size: int = 100
    result_cap: int = 10000
    fetch_threads: bool = True
    thread_depth: int = 10
    revisit: timedelta = timedelta(0)
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class BlueskyCollector:
    platform = PLATFORM

    def __init__(self, options: BlueskyOptions, handle: str, app_password: str, *,
                 since: datetime | None = None, until: datetime | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self._handle = handle
        self._password = app_password
        self.since, self.until = since, until
        self._sleep = sleep
        self._rng = random.Random()
        self._rate_limit_waits = 0  # since the last page was handed over
        self._known: KnownPosts | None = None
        self.client = Client(base_url=options.service_url, request=XrpcRequest(timeout=options.timeout))

    def use_known_posts(self, lookup: KnownPosts) -> None:
        """What the warehouse holds (id, created_at, matched queries since a time), for revisits."""
        self._known = lookup

    def query_keys(self) -> list[str]:
        return [query_key(q) for q in self.options.queries]

    # -- session ---------------------------------------------------------------------------------
    def authenticate(self) -> None:
        self._with_retries("createSession", self._login)

    def _login(self) -> None:
        try:
            # No profile lookup: collection needs only the session.
            self.client.login(self._handle, self._password, fetch_bsky_profile=False)
        except (UnauthorizedError, BadRequestError) as exc:
            # The handle stays out of the message: it ends up in runs.error and logs.
            raise AuthError(f"Bluesky rejected the login ({exc}); check BLUESKY_HANDLE and "
                            "BLUESKY_APP_PASSWORD (an app password, not the account password)") from None

    def _recover_session(self) -> None:
        """The server refused the access token: refresh it through the SDK, else log in again."""
        try:
            # The SDK's own refreshSession + session update (atproto 0.0.73 has no public name for it;
            # its proactive refresh only looks at the JWT's exp, not at the server's answer).
            self.client._refresh_and_set_session()
            log.info("bluesky: session refreshed after the server refused the access token")
        except (BadRequestError, UnauthorizedError, LoginRequiredError) as exc:
            log.info("bluesky: session refresh failed (%s); logging in again", exc)
            self._login()

    # -- requests --------------------------------------------------------------------------------
    def _query(self, nsid: str, params: Any) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            # The raw query still goes through the SDK's session handling and error mapping; the
            # items are validated one by one so that one bad post does not cost its page.
            response = self.client.invoke_query(nsid, params=params)
            if not isinstance(response.content, dict):
                raise ValueError(f"{nsid} answered with something other than a JSON object")
            return response.content

        return self._with_retries(nsid, call)

    def _with_retries(self, what: str, call: Callable[[], Any]) -> Any:
        policy = self.options.retry
        failures = waits = recoveries = 0
        recover = False
        while True:
            try:
                if recover:
                    self._recover_session()
                    recover = False
                return call()
            except RateLimitExceededError as exc:
                wait = rate_limit_wait(exc.response.headers if exc.response else {}, default=policy.base_delay)
                waits += 1
                if wait > policy.max_rate_limit_wait or waits > policy.max_rate_limit_waits:
                    raise CollectorError(f"Bluesky rate limit on {what}: asked to wait {wait:.0f} s "
                                         f"(limit {policy.max_rate_limit_wait:.0f} s, {waits} waits)") from None
                log.info("bluesky: rate limited on %s; waiting %.1f s", what, wait)
                self._rate_limit_waits += 1
                self._sleep(wait)
            except (BadRequestError, UnauthorizedError) as exc:
                if _is_token_error(exc) and what != "createSession" and recoveries < 3:
                    recoveries += 1
                    recover = True
                    continue
                raise _Refused(what, exc) from None
            except (NetworkError, RequestException, ValueError, httpx.HTTPError) as exc:
                status = exc.response.status_code if isinstance(exc, RequestErrorBase) and exc.response else None
                if status is not None and status < 500 and status not in (409, 413):
                    raise _Refused(what, exc) from None
                failures += 1
                reason = _describe(exc)
                if failures >= policy.attempts:
                    raise CollectorError(f"Bluesky {what} kept failing after {failures} tries: {reason}") from None
                delay = backoff_delay(failures, policy, self._rng)
                log.info("bluesky: %s failed (%s); retry %d in %.1f s", what, reason, failures, delay)
                self._sleep(delay)

    # -- collection ------------------------------------------------------------------------------
    def pages(self, checkpoints: Mapping[str, Checkpoint]) -> Iterator[Page]:
        for query in self.options.queries:
            yield from self._query_pages(query, checkpoints.get(query_key(query)))

    def _plan(self, checkpoint: Checkpoint | None) -> tuple[Plan, bool, datetime | None]:
        """The windows for this pass, whether its checkpoint is saved, and where a revisit starts."""
        newest = checkpoint.newest_created_at if checkpoint else None
        newest_id = checkpoint.newest_id if checkpoint else None
        if self.until is not None:  # a bounded one-off backfill: the incremental checkpoint stays as it is
            since = self.since or self.options.start
            return Plan([Window(since, self.until)], newest, newest_id), False, None
        revisit = newest - self.options.revisit if newest and self.options.revisit and not self.since else None
        since = self.since or revisit or newest or self.options.start
        return Plan([Window(since, None), *_pending_windows(checkpoint)], newest, newest_id), True, revisit

    def _query_pages(self, query: str, checkpoint: Checkpoint | None) -> Iterator[Page]:
        key = query_key(query)
        plan, track, revisit_since = self._plan(checkpoint)
        returned: set[str] = set()  # every URI the searches answered with, valid or not
        seen_id = checkpoint.newest_id if checkpoint else None  # the one post a new pass sees again
        while plan.windows:
            window = plan.windows[0]
            # The bounds stay fixed while the cursor pages through them; `window.until` moves down
            # with each page only as the resume point saved in the checkpoint.
            since, until = window.since, window.until
            cursor: str | None = None
            fetched = 0  # results of this slice of the window, for the cap
            oldest: datetime | None = None
            while True:
                params = models.AppBskyFeedSearchPosts.Params(
                    q=query, sort="latest", limit=self.options.page_size, cursor=cursor,
                    since=_iso(since), until=_iso(until) if until else None)
                body = self._query("app.bsky.feed.searchPosts", params)
                views = body.get("posts") if isinstance(body.get("posts"), list) else []
                returned.update(v["uri"] for v in views if isinstance(v, dict) and isinstance(v.get("uri"), str))
                fetched += len(views)
                posts, skipped = self._normalize_all(views, (query,))
                for post in posts:
                    plan.saw(post)
                    oldest = post.created_at if oldest is None else min(oldest, post.created_at)
                if self.options.fetch_threads:
                    replies, invalid_replies = self._threads(posts, seen_id)
                    posts += replies
                    skipped += invalid_replies
                cursor = body.get("cursor") if isinstance(body.get("cursor"), str) else None
                cap_hit = False
                if cursor and views:
                    if oldest is not None:  # resume point: what is still older than this page
                        window.until = oldest + EPSILON
                else:
                    hits_total = body.get("hitsTotal")
                    more = isinstance(hits_total, int) and hits_total > fetched
                    cap_hit = bool(views) and (fetched >= self.options.result_cap or more)
                    if cap_hit and oldest is not None and (until is None or oldest + EPSILON < until):
                        log.info("bluesky: %r reached the search cap after %d results; slicing before %s",
                                 query, fetched, _iso(oldest))
                        window.until = oldest + EPSILON  # same window, older part
                    else:
                        if cap_hit:
                            log.warning("bluesky: %r: more than %d results share %s; some cannot be listed",
                                        query, fetched, _iso(oldest) if oldest else "one instant")
                        plan.windows.pop(0)
                yield Page(PLATFORM, key, _dedupe(posts), plan.checkpoint(key) if track else None,
                           skipped=skipped, rate_limit_waits=self._take_waits(), cap_hit=cap_hit)
                if not cursor or not views:
                    break
        if revisit_since is not None and self._known is not None:
            changed = self._revisit(query, revisit_since, returned)
            if changed:
                yield Page(PLATFORM, key, changed, plan.checkpoint(key) if track else None,
                           rate_limit_waits=self._take_waits())

    def _revisit(self, query: str, since: datetime, returned: set[str]) -> list[Post]:
        """Stored posts of this query in the revisited hours that the search no longer returns:
        deleted upstream (recorded as deletions) or edited so they no longer match (stored as edited)."""
        assert self._known is not None
        missing = [(uri, created) for uri, created, queries in self._known(since)
                   if query in (queries or ()) and uri not in returned]
        if len(missing) > MAX_REVISIT_CHECKS:
            log.warning("bluesky: %r: %d stored posts vanished from the search; checking the newest %d",
                        query, len(missing), MAX_REVISIT_CHECKS)
            missing = missing[-MAX_REVISIT_CHECKS:]
        changed: list[Post] = []
        for uri, created in missing:
            params = models.AppBskyFeedGetPostThread.Params(uri=uri, depth=0, parent_height=0)
            try:
                body = self._query("app.bsky.feed.getPostThread", params)
            except _Refused as exc:
                if exc.error != "NotFound":
                    raise
                body = {"thread": {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri, "notFound": True}}
            thread = body.get("thread") if isinstance(body.get("thread"), dict) else {}
            if thread.get("$type") == "app.bsky.feed.defs#notFoundPost":
                # The warehouse keeps the last text it saw and records the deletion as a version.
                changed.append(Post(PLATFORM, uri, "post", created, "", deleted=True))
            elif thread.get("$type") == "app.bsky.feed.defs#threadViewPost":
                try:
                    changed.append(normalize_post(thread.get("post") or {}))
                except InvalidItem as exc:
                    log.warning("bluesky: skipped an invalid revisited post: %s", exc)
        return changed

    def _take_waits(self) -> int:
        waits, self._rate_limit_waits = self._rate_limit_waits, 0
        return waits

    def _normalize_all(self, views: list[Any], queries: tuple[str, ...]) -> tuple[list[Post], int]:
        posts, skipped = [], 0
        for view in views:
            try:
                if not isinstance(view, dict):
                    raise InvalidItem(f"not a JSON object: {str(view)[:80]}")
                posts.append(normalize_post(view, queries))
            except InvalidItem as exc:
                skipped += 1
                log.warning("bluesky: skipped an invalid post: %s", exc)
        return posts, skipped

    # -- threads ---------------------------------------------------------------------------------
    def _threads(self, posts: list[Post], seen_id: str | None) -> tuple[list[Post], int]:
        """Replies under the matched posts that have any; returns them and how many were invalid."""
        replies: list[Post] = []
        invalid = [0]
        for post in posts:
            if not post.reply_count or post.post_id == seen_id:
                continue  # no replies, or the checkpoint's own post, whose thread the last pass fetched
            params = models.AppBskyFeedGetPostThread.Params(uri=post.post_id, depth=self.options.thread_depth,
                                                            parent_height=0)
            try:
                body = self._query("app.bsky.feed.getPostThread", params)
            except _Refused as exc:
                if exc.error == "NotFound":  # deleted between the search and now
                    continue
                raise
            _walk_thread(body.get("thread"), replies, invalid, top=True)
        return replies, invalid[0]


def _walk_thread(node: Any, out: list[Post], invalid: list[int], top: bool = False) -> None:
    """Collect the replies of a threadViewPost tree; notFoundPost and blockedPost nodes hold nothing to store."""
    if not isinstance(node, dict):
        invalid[0] += 1
        return
    kind = node.get("$type")
    if kind in ("app.bsky.feed.defs#notFoundPost", "app.bsky.feed.defs#blockedPost"):
        return  # deleted or blocked upstream: nothing to store, and its replies are not served
    if kind != "app.bsky.feed.defs#threadViewPost":
        invalid[0] += 1
        return
    if not top:  # the top is the matched post itself, already stored from the search
        try:
            out.append(normalize_post(node.get("post") or {}))
        except InvalidItem as exc:
            invalid[0] += 1
            log.warning("bluesky: skipped an invalid reply: %s", exc)
    for reply in node.get("replies") or []:
        _walk_thread(reply, out, invalid)


class _Refused(CollectorError):
    """The server refused a request in a way retrying cannot fix (400, 401, 404...)."""

    def __init__(self, what: str, exc: RequestErrorBase) -> None:
        content = exc.response.content if exc.response else None
        self.error = getattr(content, "error", None)
        super().__init__(f"Bluesky refused {what}: {exc}")


def _is_token_error(exc: RequestErrorBase) -> bool:
    content = exc.response.content if exc.response else None
    return getattr(content, "error", None) in _TOKEN_ERRORS


def _describe(exc: Exception) -> str:
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        return str(exc)
    cause = exc.__cause__ or exc.__context__
    name = type(cause or exc).__name__
    text = str(cause or exc) or name
    return text if text.startswith(name) else f"{name}: {text}"


def _dedupe(posts: list[Post]) -> list[Post]:
    """One copy per post; a post that came both from the search and from a thread keeps its matched query."""
    by_id: dict[str, Post] = {}
    for post in posts:
        known = by_id.get(post.post_id)
        if known is None or (post.matched_queries and not known.matched_queries):
            by_id[post.post_id] = post
    return list(by_id.values())
