"""Bluesky collector: `app.bsky.feed.searchPosts` through the atproto SDK, incremental and resumable.

Each query is searched newest first (`sort=latest`) inside time windows `[since, until)`. The server
sorts and filters those windows on `sortAt`, the earlier of createdAt and indexedAt (see the
searchPosts lexicon), so every time this collector keeps is a sortAt too:
- the first pass covers `[start_date, now)`, later passes `[newest sortAt seen - overlap, now)`:
  the overlap catches posts indexed late with an earlier sortAt, and a pass with nothing new still
  costs one request per query (threads of posts seen in the overlap are not fetched again);
- a post whose sortAt is past the request time (+ a small skew) never becomes the checkpoint, so
  one wrong clock cannot make later passes search the future;
- every page is handed over with a checkpoint that records the newest sortAt seen and the part of
  the window still to fetch, so a killed pass resumes with no gap and no duplicate;
- when paging stops because it reached the search result cap, the rest of the window is fetched
  as a new window ending at the oldest sortAt seen (time slicing), so a long backfill stays
  complete. `hitsTotal` plays no part: it can be missing and it counts posts the server hides;
- once a day (configurable) a pass re-searches the last hours and looks up stored posts the search
  no longer returns, so edits and deletions are recorded by default;
- one getPostThread per post per pass; a thread that keeps failing is owed (kept in the
  checkpoint) and retried on a later pass instead of costing the page.

Answers are read as bytes and decoded here (`decode_page`): an invalid UTF-8 sequence or an escaped
lone surrogate is replaced and the post flagged, instead of making the page unreadable.

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
from dataclasses import dataclass, field, replace
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
from atproto_client.models.common import XrpcError
from atproto_client.request import Request as XrpcRequest
from atproto_client.request import Response as XrpcResponse

from warehouse.records import Checkpoint, Page, Post

from .base import AuthError, CollectorError
from .bluesky_normalize import (
    INDEXED_IN_FUTURE,
    TEXT_REPAIRED,
    InvalidItem,
    decode_page,
    normalize_post,
    parse_time,
    scrub,
    sort_at,
)
from .retry import RetryPolicy, backoff_delay, rate_limit_wait

log = logging.getLogger(__name__)

PLATFORM = "bluesky"
EPSILON = timedelta(microseconds=1)  # `until` is exclusive: the oldest post seen + ε keeps it in the window
CLOCK_SKEW = timedelta(minutes=5)  # how far the platform's clock may run ahead of ours
MAX_REVISIT_CHECKS = 200  # getPostThread calls per query and pass to tell deletions from edits
MAX_EMPTY_PAGES = 5  # empty pages that still carry a cursor (all hits hidden) before giving up on a window
MAX_OWED_THREADS = 500  # failed thread fetches remembered for later passes, per query
OWED_THREAD_PASSES = 5  # passes a failing thread is retried on before it is given up (with a warning)
MAX_SEEN = 2000  # posts near the checkpoint whose threads are not fetched again, per query
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
    """What one query still has to fetch in this pass, and what later passes need to know;
    serialized into the checkpoint after each page."""

    windows: list[Window]
    newest: datetime | None = None  # the newest sortAt seen (never past the request time + skew)
    newest_id: str | None = None
    owed: dict[str, int] = field(default_factory=dict)  # thread fetches that failed: uri -> passes tried
    seen: dict[str, tuple[int, datetime]] = field(default_factory=dict)  # uri -> (replyCount, sortAt)
    revisited_at: datetime | None = None

    def saw(self, post: Post, at: datetime) -> None:
        if self.newest is None or (at, post.post_id) > (self.newest, self.newest_id or ""):
            self.newest, self.newest_id = at, post.post_id

    def checkpoint(self, key: str, overlap: timedelta) -> Checkpoint:
        if self.newest is not None:  # only posts a later pass can see again are worth remembering
            floor = self.newest - overlap
            self.seen = {uri: v for uri, v in self.seen.items() if v[1] >= floor}
            if len(self.seen) > MAX_SEEN:
                self.seen = dict(sorted(self.seen.items(), key=lambda kv: kv[1][1])[-MAX_SEEN:])
        state: dict[str, Any] = {"v": 2}
        if self.revisited_at is not None:
            state["revisited_at"] = _iso(self.revisited_at)
        if self.owed:
            state["owed_threads"] = self.owed
        if self.seen:
            state["seen"] = {uri: [count, _iso(at)] for uri, (count, at) in self.seen.items()}
        if self.windows:  # last: `status` spots a pass left mid-backfill by its non-empty windows
            state["windows"] = [[_iso(w.since), _iso(w.until) if w.until else None] for w in self.windows]
        return Checkpoint(PLATFORM, key, newest_created_at=self.newest, newest_id=self.newest_id,
                          cursor=json.dumps(state, separators=(",", ":")))


def _saved_state(checkpoint: Checkpoint | None) -> dict[str, Any]:
    """What an earlier pass left in its checkpoint: unfinished windows, owed threads, seen posts."""
    if checkpoint is None or not checkpoint.cursor:
        return {"windows": []}
    try:
        state = json.loads(checkpoint.cursor)
        return {
            "windows": [Window(parse_time(s), parse_time(u) if u else None) for s, u in state.get("windows", [])],
            "owed": {str(uri): int(n) for uri, n in state.get("owed_threads", {}).items()},
            "seen": {str(uri): (int(n), parse_time(at)) for uri, (n, at) in state.get("seen", {}).items()},
            "revisited_at": parse_time(state["revisited_at"]) if state.get("revisited_at") else None,
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
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
    revisit: timedelta = timedelta(hours=48)  # how far before the checkpoint a revisit re-searches
    revisit_every: timedelta = timedelta(hours=24)  # how often a pass revisits (0: every pass)
    overlap: timedelta = timedelta(minutes=10)  # every pass re-searches this far before the checkpoint
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class _RawGetRequest(XrpcRequest):
    """The SDK's HTTP layer (session headers, error mapping), but GET answers come back as the bytes
    the server sent: the SDK's strict JSON parser refuses a whole page for one invalid code point,
    and the collector repairs such pages instead (POSTs, i.e. sessions, stay the SDK's)."""

    def get(self, *args: Any, **kwargs: Any) -> XrpcResponse:
        response = self._send_request("GET", *args, **kwargs)
        return XrpcResponse(success=True, status_code=response.status_code, content=response.content,
                            headers={k.lower(): v for k, v in response.headers.items()})


class BlueskyCollector:
    platform = PLATFORM

    def __init__(self, options: BlueskyOptions, handle: str, app_password: str, *,
                 since: datetime | None = None, until: datetime | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.options = options
        self._handle = handle
        self._password = app_password
        self.since, self.until = since, until
        self._sleep = sleep
        self._clock = clock  # our time: request times, and when the last revisit was
        self._rng = random.Random()
        self._rate_limit_waits = 0  # since the last page was handed over
        self._known: KnownPosts | None = None
        self.client = Client(base_url=options.service_url, request=_RawGetRequest(timeout=options.timeout))
        self._threads_done: set[str] = set()  # getPostThread calls of this pass: one per post

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
    def _query(self, nsid: str, params: Any) -> tuple[dict[str, Any], bool]:
        """The answer as a dict, and whether it needed repair (its items then need `scrub`)."""

        def call() -> tuple[dict[str, Any], bool]:
            # The raw query still goes through the SDK's session handling and error mapping; the
            # items are read one by one so that one bad post does not cost its page.
            response = self.client.invoke_query(nsid, params=params)
            content = response.content
            if isinstance(content, dict):  # only if a server sent JSON the SDK parsed after all
                return content, False
            if not isinstance(content, bytes | bytearray):
                raise ValueError(f"{nsid} answered with something other than a JSON object")
            return decode_page(bytes(content))

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
            except (BadRequestError, UnauthorizedError, NetworkError, RequestException, ValueError,
                    httpx.HTTPError) as exc:
                status = exc.response.status_code if isinstance(exc, RequestErrorBase) and exc.response else None
                if status is not None and status < 500 and status not in (409, 413):
                    if _is_token_error(exc) and what != "createSession" and recoveries < 3:
                        recoveries += 1
                        recover = True
                        continue
                    if isinstance(exc.response.content, XrpcError):
                        raise _Refused(what, exc) from None
                    # A refusal without a readable error body (cut short on the way): retried like a
                    # broken answer rather than taken as the server's final word.
                failures += 1
                reason = _describe(exc)
                if failures >= policy.attempts:
                    raise _KeptFailing(f"Bluesky {what} kept failing after {failures} tries: {reason}") from None
                delay = backoff_delay(failures, policy, self._rng)
                log.info("bluesky: %s failed (%s); retry %d in %.1f s", what, reason, failures, delay)
                self._sleep(delay)

    # -- collection ------------------------------------------------------------------------------
    def pages(self, checkpoints: Mapping[str, Checkpoint]) -> Iterator[Page]:
        self._threads_done = set()
        for query in self.options.queries:
            yield from self._query_pages(query, checkpoints.get(query_key(query)))

    def _plan(self, checkpoint: Checkpoint | None, started: datetime) -> tuple[Plan, bool, datetime | None]:
        """The windows for this pass, whether its checkpoint is saved, and where a revisit starts."""
        state = _saved_state(checkpoint)
        newest = checkpoint.newest_created_at if checkpoint else None
        newest_id = checkpoint.newest_id if checkpoint else None
        if newest is not None and newest > started + CLOCK_SKEW:
            # Left by an older leakwatch that checkpointed on createdAt: searching from there would
            # miss everything. Starting over costs requests, not data (the upsert makes repeats free).
            log.warning("bluesky: checkpoint of %r lies in the future (%s); searching from the start date again",
                        checkpoint.query_key, _iso(newest))
            newest = newest_id = None
        plan = Plan([], newest, newest_id, owed=state.get("owed", {}), seen=state.get("seen", {}),
                    revisited_at=state.get("revisited_at"))
        if self.until is not None:  # a bounded one-off backfill: the incremental checkpoint stays as it is
            plan.windows = [Window(self.since or self.options.start, self.until)]
            return plan, False, None
        options = self.options
        revisit = None
        if newest is not None and options.revisit and not self.since:
            last = plan.revisited_at
            if last is None or last > started or started - last >= options.revisit_every:
                revisit = newest - options.revisit
        elif newest is None and not self.since:
            plan.revisited_at = started  # a pass from the start date sees everything anyway
        since = self.since or revisit or (newest - options.overlap if newest else options.start)
        plan.windows = [Window(since, None), *state["windows"]]
        return plan, True, revisit

    def _query_pages(self, query: str, checkpoint: Checkpoint | None) -> Iterator[Page]:
        key = query_key(query)
        started = self._clock()
        plan, track, revisit_since = self._plan(checkpoint, started)
        overlap = self.options.overlap

        def page(posts: list[Post], skipped: int = 0, cap_hit: bool = False) -> Page:
            return Page(PLATFORM, key, _dedupe(posts), plan.checkpoint(key, overlap) if track else None,
                        skipped=skipped, rate_limit_waits=self._take_waits(), cap_hit=cap_hit)

        if plan.owed and self.options.fetch_threads:
            replies, invalid = self._owed_threads(plan)
            yield page(replies, invalid)
        returned: set[str] = set()  # every URI the searches answered with, valid or not
        while plan.windows:
            window = plan.windows[0]
            # The bounds stay fixed while the cursor pages through them; `window.until` moves down
            # with each page only as the resume point saved in the checkpoint.
            since, until = window.since, window.until
            cursor: str | None = None
            fetched = 0  # results of this slice of the window, for the cap
            reached = 0  # how far paging got, by the server's offsets when it gives them
            empty_pages = 0
            oldest: datetime | None = None
            while True:
                params = models.AppBskyFeedSearchPosts.Params(
                    q=query, sort="latest", limit=self.options.page_size, cursor=cursor,
                    since=_iso(since), until=_iso(until) if until else None)
                limit = self._clock() + CLOCK_SKEW  # no checkpoint past the request time
                body, dirty = self._query("app.bsky.feed.searchPosts", params)
                views = body.get("posts") if isinstance(body.get("posts"), list) else []
                returned.update(v["uri"] for v in views if isinstance(v, dict) and isinstance(v.get("uri"), str))
                fetched += len(views)
                reached = max(fetched, _offset(cursor) + len(views))
                posts, skipped = self._normalize_all(views, (query,), dirty, limit)
                for post in posts:
                    at = sort_at(post)
                    if at <= limit:
                        plan.saw(post, at)
                    oldest = at if oldest is None else min(oldest, at)
                if self.options.fetch_threads:
                    replies, invalid_replies = self._threads(posts, plan)
                    posts += replies
                    skipped += invalid_replies
                next_cursor = body.get("cursor") if isinstance(body.get("cursor"), str) else None
                if dirty and next_cursor:
                    next_cursor = scrub(next_cursor)[0]
                empty_pages = 0 if views else empty_pages + 1
                # A short or even empty page with a cursor is not the end (the server hides some hits).
                more = next_cursor is not None and next_cursor != cursor and empty_pages < MAX_EMPTY_PAGES
                cap_hit = False
                if more:
                    if oldest is not None:  # resume point: what is still older than this page
                        window.until = oldest + EPSILON
                else:
                    # Only paging that really got to the result cap means more is left in the window.
                    cap_hit = reached >= self.options.result_cap
                    if cap_hit and oldest is not None and (until is None or oldest + EPSILON < until):
                        log.info("bluesky: %r reached the search cap after %d results; slicing before %s",
                                 query, reached, _iso(oldest))
                        window.until = oldest + EPSILON  # same window, older part
                    else:
                        if cap_hit:
                            log.warning("bluesky: %r: more than %d results share %s; some cannot be listed",
                                        query, reached, _iso(oldest) if oldest else "one instant")
                        plan.windows.pop(0)
                yield page(posts, skipped, cap_hit)
                if not more:
                    break
                cursor = next_cursor
        if revisit_since is not None and self._known is not None:
            changed = self._revisit(query, revisit_since, returned)
            plan.revisited_at = started
            yield page(changed)  # also when nothing changed: the checkpoint records the revisit

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
                body, dirty = self._query("app.bsky.feed.getPostThread", params)
            except _Refused as exc:
                if exc.error != "NotFound":
                    raise
                body, dirty = {"thread": {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri}}, False
            except _KeptFailing as exc:
                log.warning("bluesky: could not look up %s during the revisit: %s", uri, exc)
                continue
            thread = body.get("thread") if isinstance(body.get("thread"), dict) else {}
            if thread.get("$type") == "app.bsky.feed.defs#notFoundPost":
                # The warehouse keeps the last text it saw and records the deletion as a version.
                changed.append(Post(PLATFORM, uri, "post", created, "", deleted=True))
            elif thread.get("$type") == "app.bsky.feed.defs#threadViewPost":
                posts, _ = self._normalize_all([thread.get("post")], (), dirty, None)
                changed += posts
        return changed

    def _take_waits(self) -> int:
        waits, self._rate_limit_waits = self._rate_limit_waits, 0
        return waits

    def _normalize_all(self, views: list[Any], queries: tuple[str, ...], dirty: bool,
                       limit: datetime | None) -> tuple[list[Post], int]:
        """Posts from postViews; `dirty`: the answer needed repair, so each view is scrubbed and flagged."""
        posts, skipped = [], 0
        for view in views:
            flags: tuple[str, ...] = ()
            if dirty:
                view, repaired = scrub(view)
                if repaired:
                    flags = (TEXT_REPAIRED,)
                    log.warning("bluesky: replaced invalid text in %s", view.get("uri") if isinstance(view, dict)
                                else "a post")
            try:
                post = normalize_post(view, queries, flags)
            except InvalidItem as exc:
                skipped += 1
                log.warning("bluesky: skipped a post: %s", exc)
                continue
            if limit is not None and post.indexed_at is not None and post.indexed_at > limit:
                post = replace(post, quality_flags=tuple(sorted({*post.quality_flags, INDEXED_IN_FUTURE})))
            posts.append(post)
        return posts, skipped

    # -- threads ---------------------------------------------------------------------------------
    def _threads(self, posts: list[Post], plan: Plan) -> tuple[list[Post], int]:
        """Replies under the matched posts that have any; returns them and how many were invalid.

        A post's thread is fetched once per pass, and not again on a later pass that sees the post
        in the overlap with the same reply count."""
        replies: list[Post] = []
        invalid = [0]
        for post in posts:
            if not post.reply_count:
                continue
            known = plan.seen.get(post.post_id)
            plan.seen[post.post_id] = (post.reply_count, sort_at(post))  # remembered by every query
            if post.post_id in self._threads_done:
                continue
            if known is not None and known[0] == post.reply_count and post.post_id not in plan.owed:
                continue
            self._thread(post.post_id, plan, replies, invalid)
        return replies, invalid[0]

    def _owed_threads(self, plan: Plan) -> tuple[list[Post], int]:
        """Threads whose fetch kept failing on earlier passes, tried again."""
        replies: list[Post] = []
        invalid = [0]
        for uri in list(plan.owed):
            if uri not in self._threads_done:
                self._thread(uri, plan, replies, invalid)
        return replies, invalid[0]

    def _thread(self, uri: str, plan: Plan, replies: list[Post], invalid: list[int]) -> None:
        self._threads_done.add(uri)
        params = models.AppBskyFeedGetPostThread.Params(uri=uri, depth=self.options.thread_depth, parent_height=0)
        try:
            body, dirty = self._query("app.bsky.feed.getPostThread", params)
        except (_Refused, _KeptFailing) as exc:
            if isinstance(exc, _Refused) and exc.error == "NotFound":  # deleted between the search and now
                plan.owed.pop(uri, None)
                return
            tries = plan.owed.get(uri, 0) + 1
            if tries >= OWED_THREAD_PASSES:
                log.warning("bluesky: giving up on the thread of %s after %d passes: %s", uri, tries, exc)
                plan.owed.pop(uri, None)
            elif uri in plan.owed or len(plan.owed) < MAX_OWED_THREADS:
                log.warning("bluesky: thread of %s not fetched (%s); retrying on a later pass", uri, exc)
                plan.owed[uri] = tries
            return
        plan.owed.pop(uri, None)
        _walk_thread(self, body.get("thread"), replies, invalid, dirty, top=True)


def _walk_thread(collector: BlueskyCollector, node: Any, out: list[Post], invalid: list[int], dirty: bool,
                 top: bool = False) -> None:
    """Collect the replies of a threadViewPost tree; notFoundPost and blockedPost nodes hold nothing to store."""
    if not isinstance(node, dict):
        invalid[0] += 1
        return
    kind = node.get("$type")
    if kind in ("app.bsky.feed.defs#notFoundPost", "app.bsky.feed.defs#blockedPost"):
        return  # deleted or blocked upstream: nothing to store, and its replies are not served
    if (kind is not None and kind != "app.bsky.feed.defs#threadViewPost") or not isinstance(node.get("post"), dict):
        invalid[0] += 1
        return
    if not top:  # the top is the matched post itself, already stored from the search
        posts, skipped = collector._normalize_all([node["post"]], (), dirty, None)
        out += posts
        invalid[0] += skipped
    replies = node.get("replies")
    for reply in replies if isinstance(replies, list) else ():
        _walk_thread(collector, reply, out, invalid, dirty)


def _offset(cursor: str | None) -> int:
    """The offset a numeric cursor stands for (searchPosts' are), else 0."""
    return int(cursor) if cursor and cursor.isdigit() and len(cursor) < 12 else 0


class _KeptFailing(CollectorError):
    """A request still failed after every retry (5xx, timeouts, broken answers)."""


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
