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

import heapq
import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
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
COMMENT_LIMIT = 500  # comments asked per thread answer (Reddit's most for an app)
_FULLNAME = re.compile(r"^t[13]_[0-9a-z]+$")
_T = TypeVar("_T")


class MalformedItem(ValueError):
    """An item in an API answer lacks a field we need or has one of the wrong type."""


class MalformedAnswer(CollectorError):
    """A whole answer is not what the endpoint sends (not a listing, not a thread)."""


# -- normalization (pure: no HTTP, no praw) -------------------------------------------------------

REMOVED, DELETED = "[removed]", "[deleted]"
REDDIT_LAUNCH = datetime(2005, 6, 1, tzinfo=UTC)  # nothing on Reddit is older
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of our clock a real created_utc may be
# quality_flags of odd but storable times: kept as sent, never used for checkpoints or stopping.
CREATED_IN_FUTURE = "created_at_in_future"
CREATED_BEFORE_REDDIT = "created_at_before_reddit"
TIME_FLAGS = frozenset((CREATED_IN_FUTURE, CREATED_BEFORE_REDDIT))


def created_time(data: Mapping[str, Any]) -> datetime:
    """created_utc as a UTC datetime; MalformedItem when it is no time at all (NaN, inf, 1e12...)."""
    created = data.get("created_utc")
    if isinstance(created, bool) or not isinstance(created, int | float):
        raise MalformedItem(f"created_utc is {created!r}, not a timestamp")
    try:
        return datetime.fromtimestamp(created, UTC)
    except (OverflowError, ValueError, OSError):  # NaN, inf, or past year 9999 (1e12: milliseconds?)
        raise MalformedItem(f"created_utc is {created!r}, not a representable time") from None


def normalize(data: Mapping[str, Any], matched_queries: tuple[str, ...] = (), now: datetime | None = None) -> Post:
    """One submission (`t3_`) or comment (`t1_`) as Reddit's API sent it → a `Post`.

    `now` is when the answer was received: a creation time past it (plus a little skew) is kept
    but flagged. Raises MalformedItem (with the item's name) when a field we cannot do without is
    missing or unreadable: the fullname, the creation time, the text or a submission's title.
    """
    name = data.get("name")
    if not isinstance(name, str) or not _FULLNAME.match(name):
        raise MalformedItem(f"item without a valid fullname: {str(name)[:80]!r}")
    try:
        created_at = created_time(data)
    except MalformedItem as exc:
        raise MalformedItem(f"{name}: {exc}") from None
    flags: tuple[str, ...] = ()
    if created_at > (now or datetime.now(UTC)) + CLOCK_SKEW:
        flags = (CREATED_IN_FUTURE,)
    elif created_at < REDDIT_LAUNCH:
        flags = (CREATED_BEFORE_REDDIT,)
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
    # An author of "[deleted]" is a deleted account: the post itself may well still be there.
    author = author if isinstance(author, str) and author not in (REMOVED, DELETED) else None
    # The text is gone upstream when it reads "[removed]" (a moderator, the author still shown) or
    # "[deleted]" with the author gone too. Someone may literally write "[deleted]": author kept.
    gone = text == REMOVED or (text == DELETED and author is None)
    deleted = gone or bool(data.get("removed_by_category"))
    subreddit = _str_or_none(data.get("subreddit"))
    link_id = None if is_submission else _str_or_none(data.get("link_id"))
    score = data.get("score")
    num_comments = data.get("num_comments") if is_submission else None
    raw = dict(data)
    raw.pop("replies", None)  # the comment's subtree: its comments are stored as posts of their own
    return Post(
        platform=PLATFORM,
        post_id=name,
        kind="submission" if is_submission else "comment",
        created_at=created_at,
        text=None if gone else text,  # a marker is never stored as the post's words
        thread_id=link_id,
        parent_id=None if is_submission else _str_or_none(data.get("parent_id")),
        community=subreddit,
        author_id=author,
        author_handle=author,
        title=title,
        url=_url(data.get("permalink"), subreddit, name, link_id),
        score=score if isinstance(score, int) and not isinstance(score, bool) else None,
        reply_count=num_comments if isinstance(num_comments, int) and not isinstance(num_comments, bool) else None,
        edited=bool(data.get("edited")),
        deleted=deleted,
        matched_queries=tuple(matched_queries),
        quality_flags=flags,
        raw=raw,
    )


def _url(permalink: Any, subreddit: str | None, name: str, link_id: str | None) -> str | None:
    """The permalink Reddit sent, else one built from the ids (older answers and some endpoints
    send comments without one; Reddit resolves any slug, so "_" stands in for the title's)."""
    if isinstance(permalink, str) and permalink.startswith("/"):
        return f"{PERMALINK_BASE}{permalink}"
    if subreddit is None:
        return None
    short = name.split("_", 1)[1]
    if name.startswith("t3_"):
        return f"{PERMALINK_BASE}/r/{subreddit}/comments/{short}/"
    if link_id is None or not _FULLNAME.match(link_id):
        return None
    return f"{PERMALINK_BASE}/r/{subreddit}/comments/{link_id.split('_', 1)[1]}/_/{short}/"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _item_key(post: Post) -> tuple[float, int]:
    """Newest-first order of a listing: creation time, then the base36 id (ids grow with time)."""
    return (post.created_at.timestamp(), _id_number(post.post_id))


# -- options and checkpoint state -----------------------------------------------------------------

@dataclass(frozen=True)
class RedditOptions:
    queries: tuple[str, ...]
    subreddits: tuple[str, ...]
    page_size: int = 100
    listing_cap: int = 1000
    replace_more_limit: int = 32
    refresh_days: float = 3.0
    overlap_minutes: float = 60.0
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
    floor: tuple[float, int] | None = None  # the last high-water: stop an overlap below it
    since: float | None = None  # stop at items created before this
    until: float | None = None  # skip items created after this
    pending: list[Any] | None = None  # [created_ts, fullname] of the newest item seen
    seen: int = 0  # listing positions consumed, to tell when the listing cap ended it

    @property
    def incremental(self) -> bool:
        """Not a bounded backfill: posts already stored for the query are passed over."""
        return self.since is None and self.until is None

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
    sub: str = ""

    @property
    def high(self) -> tuple[float, int] | None:
        if self.newest_at is None or not self.newest_id:
            return None
        return (self.newest_at.timestamp(), int(self.newest_id.split("_", 1)[1], 36))

    @classmethod
    def load(cls, sub: str, query: str, checkpoint: Checkpoint | None, now: datetime) -> _QueryState:
        key = query_key(sub, query)
        state = cls(key, query, sub=sub)
        if checkpoint is None:
            return state
        state.newest_at, state.newest_id = checkpoint.newest_created_at, checkpoint.newest_id
        if state.newest_at is not None and state.newest_at > now + CLOCK_SKEW:
            # Written from a bad created_utc by an older leakwatch: it would hide every real post.
            log.warning("reddit: the checkpoint of %s is in the future (%s); scanning that query afresh",
                        key, state.newest_at.isoformat())
            state.newest_at = state.newest_id = None
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
        self._skipped = 0  # skipped items not yet reported on a page
        self._skipped_ids: set[str] = set()  # each skipped item counts once per run
        self._threads: dict[str, list[Post]] = {}  # threads fetched this run, by submission fullname
        self._states: list[_QueryState] = []
        self._known: dict[str, frozenset[str]] = {}  # stored post → the queries it matched
        self._known_source: Callable[[datetime], list[tuple[str, datetime, list[str]]]] | None = None
        self._stub_seq = 0

    # -- protocol --------------------------------------------------------------------------------
    def query_keys(self) -> list[str]:
        return [query_key(sub, q) for sub in self.options.subreddits for q in self.options.queries]

    def authenticate(self) -> None:
        """Fetch an app-only token now, so rejected credentials stop the run before any write."""
        self._call("the OAuth token request", self.reddit.auth.scopes)

    def use_known_posts(self, known: Callable[[datetime], list[tuple[str, datetime, list[str]]]]) -> None:
        """The driver's view of what is stored: (post_id, created_at, matched_queries) since a time."""
        self._known_source = known

    def pages(self, checkpoints: Mapping[str, Checkpoint]) -> Iterator[Page]:
        now = self.clock()
        states = []
        for sub in self.options.subreddits:
            for query in self.options.queries:
                states.append(_QueryState.load(sub, query, checkpoints.get(query_key(sub, query)), now))
        self._states = states
        self._load_known(states, now)
        for state in states:
            sub = state.sub
            if state.resume is not None:
                log.info("reddit: %s resumes an interrupted scan after %s", state.key, state.resume.after)
                yield from self._walk(sub, state, state.resume)
            yield from self._walk(sub, state, self._new_scan(state))
        yield from self._refresh(states)

    def _load_known(self, states: list[_QueryState], now: datetime) -> None:
        """Which stored posts each query already matched, over the overlap and refresh windows."""
        if self._known_source is None:
            return
        overlap = timedelta(minutes=self.options.overlap_minutes)
        since = now - timedelta(days=self.options.refresh_days)
        for state in states:
            if state.newest_at is not None:
                since = min(since, state.newest_at - overlap)
        self._known = {post_id: frozenset(queries) for post_id, _, queries in self._known_source(since)}

    # -- query scans -------------------------------------------------------------------------------
    def _new_scan(self, state: _QueryState) -> _Scan:
        if self.since is not None or self.until is not None:  # a bounded backfill ignores the high-water
            return _Scan(since=self.since.timestamp() if self.since else None,
                         until=self.until.timestamp() if self.until else None)
        return _Scan(floor=state.high)

    def _walk(self, sub: str, state: _QueryState, scan: _Scan) -> Iterator[Page]:
        """One listing, newest first, page by page; each page with its threads and the checkpoint.

        An incremental scan reads on past the last high-water for `overlap_minutes` (same-second
        posts come in no id order; the search index adds some posts late) and passes over what
        this query already stored. Only creation times in Reddit's plausible range (not ahead of
        the request, not before Reddit) decide where a scan stops or what the checkpoint says.
        """
        from prawcore.exceptions import Forbidden, NotFound, Redirect

        path = f"r/{sub}/search/"
        params: dict[str, str | int] = {"q": state.query, "sort": "new", "t": "all", "type": "link",
                                        "limit": self.options.page_size, "include_over_18": "on"}
        if sub.lower() != "all":
            params["restrict_sr"] = "on"
        overlap = self.options.overlap_minutes * 60
        while True:
            if scan.after:
                params["after"] = scan.after
            try:
                answer = self._request(f"the search {state.key!r}", "GET", path, params=dict(params))
            except (Redirect, NotFound, Forbidden):
                # Reddit answers a search in a banned, private or missing subreddit this way.
                log.warning("reddit: r/%s cannot be searched (private, banned or missing); skipped %s",
                            sub, state.key)
                return
            now = self.clock()
            children, after = _listing(answer, f"the search {state.key!r}")
            posts: list[Post] = []
            stopped = False
            for child in children:
                scan.seen += 1
                data = child.get("data") if isinstance(child, dict) else None
                if not isinstance(data, dict):
                    self._skip(None, f"{state.key}: a listing item that is not an object")
                    continue
                try:
                    listed = normalize(data, (state.query,), now)
                except MalformedItem as exc:
                    self._skip(data.get("name"), f"{state.key}: {exc}")
                    name = data.get("name")
                    if isinstance(name, str) and name.startswith("t3_") and _FULLNAME.match(name):
                        # The submission cannot be stored, but its comments can.
                        posts.extend(self._thread_posts(name, None, state))
                        state.recent.setdefault(name, now.timestamp())
                    continue
                key = _item_key(listed)
                plausible = not TIME_FLAGS.intersection(listed.quality_flags)
                if plausible and scan.floor is not None and key[0] < scan.floor[0] - overlap:
                    stopped = True  # an overlap below what the last finished scan saw
                    break
                if plausible and scan.since is not None and key[0] < scan.since:
                    stopped = True
                    break
                if plausible and scan.until is not None and key[0] > scan.until:
                    continue
                if scan.incremental and state.query in self._known.get(listed.post_id, ()):
                    continue  # stored for this query already; the refresh keeps recent threads current
                if plausible and (scan.pending is None
                                  or key > (float(scan.pending[0]), _id_number(scan.pending[1]))):
                    scan.pending = [key[0], listed.post_id]
                posts.extend(self._thread_posts(listed.post_id, listed, state))
                state.recent[listed.post_id] = min(key[0], now.timestamp())
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
            yield Page(PLATFORM, state.key, posts, state.checkpoint(), skipped=self._take_skipped(),
                       rate_limit_waits=self._take_waits(), cap_hit=cap_hit)
            if ended:
                return

    def _thread_posts(self, fullname: str, listed: Post | None, state: _QueryState) -> list[Post]:
        """The submission and its comment tree, fetched once per run however many queries match it.

        The posts carry every query known to match the thread: this one, those that matched it on
        earlier passes (stored, or in their recent lists) and, when another query of this pass
        fetched it first, the tree is handed over again with the queries merged.
        """
        queries = self._thread_queries(fullname, state.query)
        fetched = self._threads.get(fullname)
        if fetched is None:
            fetched = self._fetch_thread(fullname, queries)
            if fetched is None:  # gone: not asked again this run
                self._threads[fullname] = [listed] if listed is not None else []
                return self._threads[fullname]
            if listed is not None and not any(p.post_id == fullname for p in fetched):
                fetched = [listed, *fetched]  # the thread answer came without its submission
            self._threads[fullname] = fetched
            return fetched
        if all(set(queries) <= set(p.matched_queries) for p in fetched):
            return [listed] if listed is not None else []
        merged = [replace(p, matched_queries=tuple(sorted({*p.matched_queries, *queries}))) for p in fetched]
        self._threads[fullname] = merged
        return merged

    def _thread_queries(self, fullname: str, query: str) -> tuple[str, ...]:
        queries = {query, *self._known.get(fullname, ())}
        queries.update(s.query for s in self._states if fullname in s.recent)
        return tuple(sorted(queries))

    # -- comment trees -----------------------------------------------------------------------------
    def _fetch_thread(self, fullname: str, queries: tuple[str, ...]) -> list[Post] | None:
        """Submission + every comment (bounded `more` expansion); None if the thread is gone.

        The JSON is walked as Reddit sent it, so each comment's `raw` is exactly its JSON. `more`
        stubs are resolved largest first (as praw's replace_more does), at most
        `replace_more_limit` of them: a stub with children through /api/morechildren, a "continue
        this thread" stub (count 0, id "_") through the parent comment's own page; stubs inside
        those answers join the queue.
        """
        from prawcore.exceptions import Forbidden, NotFound

        short = fullname.split("_", 1)[1]
        params = {"sort": "old", "limit": COMMENT_LIMIT}
        try:
            answer = self._request(f"the thread {fullname}", "GET", f"comments/{short}/", params=params)
        except (NotFound, Forbidden):
            log.warning("reddit: thread %s is no longer available", fullname)
            return None
        try:
            if not isinstance(answer, list) or len(answer) < 2:
                raise MalformedAnswer("not a [submission, comments] pair")
            heads, _ = _listing(answer[0], f"the thread {fullname}")
            things, _ = _listing(answer[1], f"the thread {fullname}")
        except MalformedAnswer as exc:  # one odd thread answer costs that thread only
            log.warning("reddit: thread %s: the answer is not a thread (%s); kept the listed post only", fullname, exc)
            return None
        comments: dict[str, dict[str, Any]] = {}
        stubs: list[tuple[int, int, dict[str, Any]]] = []
        self._gather(things, comments, stubs)
        budget = self.options.replace_more_limit
        while stubs and budget > 0:
            _, _, stub = heapq.heappop(stubs)
            budget -= 1
            children = [c for c in stub.get("children") or () if isinstance(c, str)]
            if children:
                data = {"api_type": "json", "children": ",".join(children), "link_id": fullname, "sort": "old"}
                more = self._request(f"more comments of {fullname}", "POST", "api/morechildren/", data=data)
                found = (((more or {}).get("json") or {}).get("data") or {}).get("things") if isinstance(
                    more, dict) else None
                self._gather(found if isinstance(found, list) else [], comments, stubs)
            else:  # "continue this thread": the parent comment's own page holds the rest of the branch
                parent = str(stub.get("parent_id") or "").split("_", 1)[-1]
                if not parent:
                    continue
                deeper = self._request(f"the thread {fullname} below {parent}", "GET",
                                       f"comments/{short}/_/{parent}/", params=params)
                if isinstance(deeper, list) and len(deeper) >= 2:
                    self._gather(_listing(deeper[1], f"the thread {fullname}")[0], comments, stubs)
        unfetched = sum(-negative for negative, _, _ in stubs)
        if stubs:
            log.info("reddit: %s: %d `more` links (%d comments) left unfollowed (replace_more_limit=%d)",
                     fullname, len(stubs), unfetched, self.options.replace_more_limit)
        now = self.clock()
        posts = []
        head = heads[0].get("data") if heads and isinstance(heads[0], dict) else None
        for data in [head, *comments.values()] if isinstance(head, dict) else comments.values():
            try:
                posts.append(normalize(data, queries, now))
            except MalformedItem as exc:
                self._skip(data.get("name"), f"{fullname}: {exc}")
        return posts

    def _gather(self, things: list[Any], comments: dict[str, dict[str, Any]],
                stubs: list[tuple[int, int, dict[str, Any]]]) -> None:
        """Comments of a (nested or flat) answer into `comments`, its `more` stubs onto the heap."""
        stack = list(reversed(things))
        while stack:
            thing = stack.pop()
            data = thing.get("data") if isinstance(thing, dict) else None
            if not isinstance(data, dict):
                self._skip(None, "a comment that is not an object")
                continue
            if thing.get("kind") == "more":
                count = data.get("count")
                count = count if isinstance(count, int) and not isinstance(count, bool) else 0
                self._stub_seq += 1
                heapq.heappush(stubs, (-count, self._stub_seq, data))  # the largest first, as praw does
                continue
            name = data.get("name")
            key = name if isinstance(name, str) else f"#{len(comments)}"
            comments.setdefault(key, data)
            replies = data.get("replies")
            if isinstance(replies, dict):
                children = (replies.get("data") or {}).get("children") if isinstance(replies.get("data"),
                                                                                        dict) else None
                if isinstance(children, list):
                    stack.extend(reversed(children))

    def _refresh(self, states: list[_QueryState]) -> Iterator[Page]:
        """Refetch recent threads not already fetched this run: new comments, edits, deletions."""
        due: dict[str, set[str]] = {}
        for state in states:
            for fullname in state.recent:
                if fullname not in self._threads:
                    due.setdefault(fullname, set()).add(state.query)
        batch: list[Post] = []
        threads_in_batch = 0
        for fullname, queries in sorted(due.items()):
            queries.update(self._known.get(fullname, ()))
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
    def _skip(self, name: Any, reason: str) -> None:
        """Count an item that cannot be stored, once per run however often it is seen, and say why."""
        if isinstance(name, str):
            if name in self._skipped_ids:
                return
            self._skipped_ids.add(name)
        self._skipped += 1
        log.warning("reddit: skipped an item: %s", reason[:300])

    def _request(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON Reddit sent, through praw's own `Reddit.request` (OAuth, rate limits, prawcore's
        retries), without praw's objects: they drop or reshape fields (poll_data, gallery items,
        flair richtext, awards...) that `raw` keeps as sent."""
        return self._call(what, lambda: self.reddit.request(method=method, path=path, **kwargs))

    def _take_skipped(self) -> int:
        skipped, self._skipped = self._skipped, 0
        return skipped

    def _take_waits(self) -> int:
        waits, self._waits = self._waits, 0
        return waits

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        """Run one idempotent API call: wait out 429s, back off where prawcore's retries gave up."""
        from praw.exceptions import RedditAPIException
        from prawcore.exceptions import (
            BadJSON,
            BadRequest,
            OAuthException,
            RequestException,
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
                continue
            except OAuthException as exc:
                raise self._auth_error(f"Reddit refused the app-only token ({exc.error})") from None
            except (ServerError, BadJSON, RequestException) as exc:
                problem = _describe(exc)
            except (BadRequest, RedditAPIException) as exc:
                # praw turns a 400 into RedditAPIException (or re-raises BadRequest). One whose body
                # is not JSON was cut off on the way: retry it. A readable one is a real refusal.
                bad = exc if isinstance(exc, BadRequest) else exc.__cause__
                response = getattr(bad, "response", None)
                if response is None or not _unreadable(response):
                    raise self._error(f"Reddit refused {what}: {str(exc)[:200]}") from None
                problem = "HTTP 400 with an unreadable body (truncated answer?)"
            except Exception as exc:
                status = getattr(getattr(exc, "response", None), "status_code", None)
                url = getattr(getattr(exc, "response", None), "url", None) or ""
                if status in (401, 403) and "access_token" in url:
                    raise self._auth_error(f"Reddit rejected the credentials (HTTP {status} from the token "
                                           "endpoint)") from None
                raise
            failures += 1
            if failures > self.options.retries:
                raise self._error(f"{what} kept failing after {failures} attempts: {problem}") from None
            delay = backoff_delay(failures, RetryPolicy(base_delay=self.options.backoff_seconds))
            log.warning("reddit: %s failed (%s); retrying in %.1fs", what, problem, delay)
            time.sleep(delay)

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


def _unreadable(response: Any) -> bool:
    try:
        response.json()
    except ValueError:
        return True
    return False


def _listing(answer: Any, what: str) -> tuple[list[Any], str | None]:
    """The children and `after` of a Listing; a page that is no listing is a broken answer."""
    data = answer.get("data") if isinstance(answer, dict) else None
    children = data.get("children") if isinstance(data, dict) else None
    if not isinstance(children, list):
        raise MalformedAnswer(f"reddit: {what} answered something that is not a listing")
    after = data.get("after")
    return children, after if isinstance(after, str) and after else None


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
