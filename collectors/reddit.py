"""Reddit collection with praw: search each query in each subreddit, newest first, with comment trees.

One checkpoint per subreddit and query (`r/OpenAI:sora leak`). Its `newest_*` columns hold the
newest submission of the last *finished* scan, where the next pass stops; its `cursor` holds the
scan in progress (the listing's `after`, the pending high-water mark) so a killed run resumes where
its last committed page ended, plus the recent threads that later passes refresh for new comments,
edits, score changes and deletions.

prawcore already retries 5xx answers and timeouts (twice, with a short randomised sleep) and
refreshes an expired token; this module adds a bounded backoff only where prawcore gives up, and
waits out a 429 (prawcore raises it at once) for as long as its Retry-After asks.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from warehouse.records import Checkpoint, Page, Post

from .base import AuthError, CollectorError
from .retry import RetryPolicy, backoff_delay

if TYPE_CHECKING:
    import praw

log = logging.getLogger(__name__)

PLATFORM = "reddit"
REFRESH_KEY = "reddit:refresh"  # the query key of thread-refresh pages (no checkpoint of its own)
PERMALINK_BASE = "https://www.reddit.com"
GONE_MARKERS = ("[deleted]", "[removed]")
_FULLNAME = re.compile(r"^t[13]_[0-9a-z]+$")
_T = TypeVar("_T")


class MalformedItem(ValueError):
    """An item in an API answer lacks a field we need or has one of the wrong type."""


# -- normalization (pure: no HTTP, no praw) -------------------------------------------------------

def normalize(data: Mapping[str, Any], matched_queries: tuple[str, ...] = ()) -> Post:
    """One submission (`t3_`) or comment (`t1_`) as Reddit's API describes it → a `Post`."""
    name = data.get("name")
    if not isinstance(name, str) or not _FULLNAME.match(name):
        raise MalformedItem(f"item without a valid fullname: {name!r}")
    created = data.get("created_utc")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise MalformedItem(f"{name}: created_utc is {created!r}, not a timestamp")
    is_submission = name.startswith("t3_")
    text = data.get("selftext" if is_submission else "body")
    if text is None and is_submission:
        text = ""
    if not isinstance(text, str):
        raise MalformedItem(f"{name}: {'selftext' if is_submission else 'body'} is not text")
    title = data.get("title") if is_submission else None
    if is_submission and not isinstance(title, str):
        raise MalformedItem(f"{name}: title is not text")
    author = data.get("author")
    author = author if isinstance(author, str) and author not in GONE_MARKERS else None
    # Author deletion shows as author+text "[deleted]"; moderator removal as "[removed]" text and,
    # on submissions, removed_by_category. Either way the text is gone upstream.
    deleted = bool(data.get("removed_by_category")) or (text in GONE_MARKERS and author is None)
    permalink = data.get("permalink")
    score = data.get("score")
    num_comments = data.get("num_comments") if is_submission else None
    return Post(
        platform=PLATFORM,
        post_id=name,
        kind="submission" if is_submission else "comment",
        created_at=datetime.fromtimestamp(float(created), UTC),
        text=text,
        thread_id=None if is_submission else _str_or_none(data.get("link_id")),
        parent_id=None if is_submission else _str_or_none(data.get("parent_id")),
        community=_str_or_none(data.get("subreddit")),
        author_id=author,
        author_handle=author,
        title=title,
        url=f"{PERMALINK_BASE}{permalink}" if isinstance(permalink, str) and permalink else None,
        score=score if isinstance(score, int) and not isinstance(score, bool) else None,
        reply_count=num_comments if isinstance(num_comments, int) else None,
        edited=bool(data.get("edited")),
        deleted=deleted,
        matched_queries=tuple(matched_queries),
        raw=dict(data),
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def api_fields(thing: Any) -> dict[str, Any]:
    """The JSON fields praw received for a Submission or Comment, with its objects turned back
    into the names Reddit sent (author, subreddit); praw's own bookkeeping is left out."""
    fields: dict[str, Any] = {}
    for name, value in vars(thing).items():
        if name.startswith("_") or name in ("comment_limit", "comment_sort", "submission"):
            continue
        if name == "author":
            value = getattr(value, "name", None) or "[deleted]"
        elif name == "subreddit":
            value = str(value)
        if isinstance(value, str | int | float | bool | list | dict) or value is None:
            fields[name] = value
    return fields


def _item_key(data: Mapping[str, Any]) -> tuple[float, int]:
    """Newest-first order of a listing: creation time, then the base36 id (ids grow with time)."""
    return (float(data["created_utc"]), int(str(data["name"]).split("_", 1)[1], 36))


# -- options and checkpoint state -----------------------------------------------------------------

@dataclass(frozen=True)
class RedditOptions:
    queries: tuple[str, ...]
    subreddits: tuple[str, ...]
    page_size: int = 100
    listing_cap: int = 1000
    replace_more_limit: int = 32
    refresh_days: float = 3.0
    timeout_seconds: float = 16.0
    retries: int = 3
    backoff_seconds: float = 2.0
    max_wait_seconds: float = 600.0
    max_rate_limit_waits: int = 10
    oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"


@dataclass
class _Scan:
    """A listing walk: where it is, where it stops, and the newest item it has seen so far."""

    after: str | None = None
    floor: tuple[float, int] | None = None  # stop at items at or below this (the last high-water)
    since: float | None = None  # stop at items created before this
    until: float | None = None  # skip items created after this
    pending: list[Any] | None = None  # [created_ts, fullname] of the newest item seen
    seen: int = 0  # listing positions consumed, to tell when the listing cap ended it

    def to_json(self) -> dict[str, Any]:
        return {"after": self.after, "floor": list(self.floor) if self.floor else None, "since": self.since,
                "until": self.until, "pending": self.pending, "seen": self.seen}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> _Scan:
        floor = data.get("floor")
        return cls(after=data.get("after"), floor=(float(floor[0]), int(floor[1])) if floor else None,
                   since=data.get("since"), until=data.get("until"), pending=data.get("pending"),
                   seen=int(data.get("seen") or 0))


@dataclass
class _QueryState:
    key: str
    query: str
    newest_at: datetime | None = None
    newest_id: str | None = None
    resume: _Scan | None = None
    recent: dict[str, float] = field(default_factory=dict)  # thread fullname → created timestamp

    @property
    def high(self) -> tuple[float, int] | None:
        if self.newest_at is None or not self.newest_id:
            return None
        return (self.newest_at.timestamp(), int(self.newest_id.split("_", 1)[1], 36))

    @classmethod
    def load(cls, key: str, query: str, checkpoint: Checkpoint | None) -> _QueryState:
        state = cls(key, query)
        if checkpoint is None:
            return state
        state.newest_at, state.newest_id = checkpoint.newest_created_at, checkpoint.newest_id
        if checkpoint.cursor:
            try:
                cursor = json.loads(checkpoint.cursor)
                state.resume = _Scan.from_json(cursor["resume"]) if cursor.get("resume") else None
                state.recent = {str(k): float(v) for k, v in (cursor.get("recent") or {}).items()}
            except (ValueError, TypeError, KeyError, IndexError):
                log.warning("reddit: unreadable cursor for %s; starting that query afresh", key)
        return state

    def checkpoint(self) -> Checkpoint:
        cursor = {"resume": self.resume.to_json() if self.resume else None, "recent": self.recent}
        return Checkpoint(PLATFORM, self.key, newest_created_at=self.newest_at, newest_id=self.newest_id,
                          cursor=json.dumps(cursor, separators=(",", ":")))


# -- the collector ----------------------------------------------------------------------------------

class RedditCollector:
    """Pages of submissions with their comment trees, then pages of refreshed recent threads."""

    platform = PLATFORM

    def __init__(
        self,
        reddit: praw.Reddit,
        options: RedditOptions,
        since: datetime | None = None,
        until: datetime | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.reddit = reddit
        self.options = options
        self.since = since
        self.until = until
        self.clock = clock or (lambda: datetime.now(UTC))
        self._waits = 0  # rate-limit waits not yet reported on a page
        self._skipped = 0  # malformed comments dropped from threads, not yet reported on a page
        self._fetched_threads: set[str] = set()

    # -- protocol --------------------------------------------------------------------------------
    def query_keys(self) -> list[str]:
        return [query_key(sub, q) for sub in self.options.subreddits for q in self.options.queries]

    def authenticate(self) -> None:
        """Fetch an app-only token now, so rejected credentials stop the run before any write."""
        self._call("the OAuth token request", self.reddit.auth.scopes)

    def pages(self, checkpoints: Mapping[str, Checkpoint]) -> Iterator[Page]:
        states = []
        for sub in self.options.subreddits:
            for query in self.options.queries:
                key = query_key(sub, query)
                state = _QueryState.load(key, query, checkpoints.get(key))
                states.append(state)
                if state.resume is not None:
                    log.info("reddit: %s resumes an interrupted scan after %s", key, state.resume.after)
                    yield from self._walk(sub, state, state.resume)
                yield from self._walk(sub, state, self._new_scan(state))
        yield from self._refresh(states)

    # -- query scans -------------------------------------------------------------------------------
    def _new_scan(self, state: _QueryState) -> _Scan:
        if self.since is not None or self.until is not None:  # a bounded backfill ignores the high-water
            return _Scan(since=self.since.timestamp() if self.since else None,
                         until=self.until.timestamp() if self.until else None)
        return _Scan(floor=state.high)

    def _walk(self, sub: str, state: _QueryState, scan: _Scan) -> Iterator[Page]:
        from prawcore.exceptions import Forbidden, NotFound, Redirect

        path = f"r/{sub}/search/"
        params: dict[str, str | int] = {"q": state.query, "sort": "new", "t": "all", "type": "link",
                                        "limit": self.options.page_size, "include_over_18": "on"}
        if sub.lower() != "all":
            params["restrict_sr"] = "on"
        while True:
            if scan.after:
                params["after"] = scan.after
            try:
                listing = self._call(f"the search {state.key!r}", lambda: self.reddit.get(path, params=dict(params)))
            except (Redirect, NotFound, Forbidden):
                # Reddit answers a search in a banned, private or missing subreddit this way.
                log.warning("reddit: r/%s cannot be searched (private, banned or missing); skipped %s",
                            sub, state.key)
                return
            children = list(getattr(listing, "children", []) or [])
            posts: list[Post] = []
            skipped, stopped = 0, False
            for submission in children:
                scan.seen += 1
                try:
                    fields = api_fields(submission)
                    key = _item_key(fields)
                    listed = normalize(fields, (state.query,))
                except (MalformedItem, KeyError, ValueError, TypeError) as exc:
                    skipped += 1
                    log.warning("reddit: skipped a malformed item in %s: %s", state.key, exc)
                    continue
                if scan.floor is not None and key <= scan.floor:
                    stopped = True  # reached what the last finished scan already saw
                    break
                if scan.since is not None and key[0] < scan.since:
                    stopped = True
                    break
                if scan.until is not None and key[0] > scan.until:
                    continue
                if scan.pending is None or key > (float(scan.pending[0]), _id_number(scan.pending[1])):
                    scan.pending = [key[0], listed.post_id]
                posts.extend(self._thread_posts(listed, state))
                state.recent[listed.post_id] = key[0]
            after = getattr(listing, "after", None)
            ended = stopped or not children or not after
            cap_hit = ended and not stopped and scan.seen >= self.options.listing_cap
            if cap_hit:
                log.warning("reddit: %s reached the listing cap (%d items); older matches are out of reach",
                            state.key, scan.seen)
            if ended:
                if scan.pending is not None:
                    pending_key = (float(scan.pending[0]), _id_number(scan.pending[1]))
                    if state.high is None or pending_key > state.high:
                        state.newest_at = datetime.fromtimestamp(pending_key[0], UTC)
                        state.newest_id = scan.pending[1]
                state.resume = None
            else:
                scan.after = after
                state.resume = scan
            self._prune_recent(state)
            yield Page(PLATFORM, state.key, posts, state.checkpoint(), skipped=skipped + self._take_skipped(),
                       rate_limit_waits=self._take_waits(), cap_hit=cap_hit)
            if ended:
                return

    def _thread_posts(self, listed: Post, state: _QueryState) -> list[Post]:
        """The submission and its comment tree, fetched once per run however many queries match it."""
        if listed.post_id in self._fetched_threads:
            return [listed]
        thread = self._fetch_thread(listed.post_id, (state.query,))
        return thread if thread is not None else [listed]

    # -- comment trees -----------------------------------------------------------------------------
    def _fetch_thread(self, fullname: str, queries: tuple[str, ...]) -> list[Post] | None:
        """Submission + every comment (bounded replace_more); None if the thread is gone."""
        from praw.models import Comment
        from prawcore.exceptions import Forbidden, NotFound

        def fetch() -> tuple[dict[str, Any], list[dict[str, Any]], int]:
            submission = self.reddit.submission(id=fullname.split("_", 1)[1])
            submission.comment_sort = "old"
            left = submission.comments.replace_more(limit=self.options.replace_more_limit)
            comments = [api_fields(c) for c in submission.comments.list() if isinstance(c, Comment)]
            return api_fields(submission), comments, sum(m.count for m in left)

        try:
            head, comments, unfetched = self._call(f"the thread {fullname}", fetch)
        except (NotFound, Forbidden):
            log.warning("reddit: thread %s is no longer available", fullname)
            return None
        self._fetched_threads.add(fullname)
        if unfetched:
            log.info("reddit: %s: %d comments left behind `more` links (replace_more_limit=%d)",
                     fullname, unfetched, self.options.replace_more_limit)
        posts = []
        for fields in [head, *comments]:
            try:
                posts.append(normalize(fields, queries))
            except MalformedItem as exc:
                self._skipped += 1
                log.warning("reddit: skipped a malformed item in %s: %s", fullname, exc)
        return posts

    def _refresh(self, states: list[_QueryState]) -> Iterator[Page]:
        """Refetch recent threads not already fetched this run: new comments, edits, deletions."""
        due: dict[str, set[str]] = {}
        for state in states:
            for fullname in state.recent:
                if fullname not in self._fetched_threads:
                    due.setdefault(fullname, set()).add(state.query)
        batch: list[Post] = []
        threads_in_batch = 0
        for fullname, queries in sorted(due.items()):
            thread = self._fetch_thread(fullname, tuple(sorted(queries)))
            batch.extend(thread or [])
            threads_in_batch += 1
            if threads_in_batch >= 10:
                yield Page(PLATFORM, REFRESH_KEY, batch, None, skipped=self._take_skipped(),
                           rate_limit_waits=self._take_waits())
                batch, threads_in_batch = [], 0
        if threads_in_batch:
            yield Page(PLATFORM, REFRESH_KEY, batch, None, skipped=self._take_skipped(),
                       rate_limit_waits=self._take_waits())

    def _prune_recent(self, state: _QueryState) -> None:
        if self.options.refresh_days <= 0:
            state.recent.clear()
            return
        cutoff = (self.clock() - timedelta(days=self.options.refresh_days)).timestamp()
        state.recent = {k: v for k, v in state.recent.items() if v >= cutoff}

    # -- faults ---------------------------------------------------------------------------------------
    def _take_skipped(self) -> int:
        skipped, self._skipped = self._skipped, 0
        return skipped

    def _take_waits(self) -> int:
        waits, self._waits = self._waits, 0
        return waits

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run one idempotent API call: wait out 429s, back off where prawcore's retries gave up."""
        from prawcore.exceptions import (
            BadJSON,
            OAuthException,
            RequestException,
            ResponseException,
            ServerError,
            TooManyRequests,
        )

        failures = waits = 0
        while True:
            try:
                return fn()
            except TooManyRequests as exc:
                wait = _retry_after(exc)
                waits += 1
                if waits > self.options.max_rate_limit_waits or wait > self.options.max_wait_seconds:
                    raise self._error(f"Reddit is still rate-limiting {what} after {waits - 1} waits "
                                      f"(it asks for {wait:.0f}s more); try again later") from None
                self._waits += 1
                log.warning("reddit: rate-limited on %s; waiting %.1fs as Retry-After asks", what, wait)
                time.sleep(wait)
            except OAuthException as exc:
                raise self._auth_error(f"Reddit refused the app-only token ({exc.error})") from None
            except (ServerError, BadJSON, RequestException) as exc:
                failures += 1
                if failures > self.options.retries:
                    raise self._error(f"{what} kept failing after {failures} attempts: {_describe(exc)}") from None
                delay = backoff_delay(failures, RetryPolicy(base_delay=self.options.backoff_seconds))
                log.warning("reddit: %s failed (%s); retrying in %.1fs", what, _describe(exc), delay)
                time.sleep(delay)
            except ResponseException as exc:
                status = exc.response.status_code
                if status in (401, 403) and "access_token" in (exc.response.url or ""):
                    raise self._auth_error(f"Reddit rejected the credentials (HTTP {status} from the token "
                                           "endpoint)") from None
                raise

    def _error(self, message: str) -> CollectorError:
        error = CollectorError(f"reddit: {message}")
        error.rate_limit_waits = self._take_waits()  # type: ignore[attr-defined]
        return error

    def _auth_error(self, message: str) -> AuthError:
        return AuthError(f"reddit: {message}; check REDDIT_CLIENT_ID and REDDIT_CLIENT_SECRET")


def query_key(subreddit: str, query: str) -> str:
    return f"r/{subreddit}:{query}"


def make_reddit(options: RedditOptions, client_id: str, client_secret: str, user_agent: str) -> praw.Reddit:
    """A read-only (app-only OAuth) praw client for the configured endpoints."""
    import praw
    from prawcore.exceptions import InvalidInvocation

    try:
        return praw.Reddit(
            client_id=client_id,
            client_secret=client_secret,
            user_agent=user_agent,
            oauth_url=options.oauth_url,
            reddit_url=options.reddit_url,
            check_for_updates=False,  # no calls home: the only host contacted is the configured one
            check_for_async=False,
            requestor_kwargs={"timeout": options.timeout_seconds},
        )
    except InvalidInvocation as exc:
        raise AuthError(f"REDDIT_USER_AGENT is not usable ({exc}); describe your app, "
                          "e.g. 'leakwatch/0.1 by u/yourname'") from None


def _id_number(fullname: str) -> int:
    return int(fullname.split("_", 1)[1], 36)


def _retry_after(exc: Any) -> float:
    try:
        return max(0.0, float(exc.retry_after))
    except (TypeError, ValueError):
        return 60.0  # no usable Retry-After: Reddit's rate window resets within minutes


def _describe(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        path = re.sub(r"^https?://[^/]+", "", response.url or "").split("?")[0]
        if type(exc).__name__ == "BadJSON":
            return f"unreadable JSON from {path} (truncated answer?)"
        return f"HTTP {response.status_code} from {path}"
    original = getattr(exc, "original_exception", None)
    if original is not None:
        return f"{type(original).__name__}: {str(original).splitlines()[0][:200]}"
    return f"{type(exc).__name__}: {exc}"
