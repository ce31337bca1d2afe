"""A Bluesky XRPC replay server on 127.0.0.1, serving the Bluesky items of a corpus.

It speaks the four XRPC methods the collector uses, in the real wire format, so the real atproto
client can be pointed at it through `Client(base_url=...)`:

- `com.atproto.server.createSession` / `refreshSession`: app-password login; access JWTs carry a
  real `exp` claim (the SDK refreshes on its own 15 minutes before it), refresh JWTs rotate.
- `app.bsky.feed.searchPosts`: newest first by `sortAt` (the earlier of createdAt and indexedAt,
  as the lexicon says), `since` (inclusive) / `until` (exclusive) on sortAt too, `limit` up to 100,
  an offset `cursor`, and a result cap after which no cursor is given, as upstream. Hidden hits
  (`hidden_ids`) still count in offsets and `hitsTotal`, so pages come back shorter than `limit`
  with a cursor, as real answers do; `send_hits_total = False` leaves hitsTotal out.
- `app.bsky.feed.getPostThread`: threadViewPost trees with notFoundPost / blockedPost nodes.

The corpus is seen through a settable clock, `now`: only items indexed by then are served, with
their edits and deletions as of then, so tests move the clock between collection passes. An item
counts as indexed when it was created, unless `indexed_at` (or its shape) says otherwise. Real
record shapes (embeds, facets, labels, odd createdAt strings, broken text...) come from `shapes`:
see `bluesky_shapes.py`.
Faults (429, 5xx, slow, truncated) come from the shared `ReplayServer`; the Bluesky-specific ones
are switches here: access tokens that expire after a number of calls (400 ExpiredToken, as a PDS
answers), revoked refresh tokens, unusable items (no author DID), blocked and hidden items, thread
lookups that fail.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from .bluesky_shapes import DROP, INVALID_UTF8_MARK, LONE_SURROGATE_MARK, Shape
from .corpus import CorpusItem, did_for, format_time, matches
from .server import Fault, ReplayServer, Request, Response

DEMO_HANDLE = "leakwatch-demo.bsky.social"
DEMO_APP_PASSWORD = "demo-app-pass-word"  # not a secret: only the replay server accepts it

SEARCH_DEFAULT_LIMIT = 25
SEARCH_MAX_LIMIT = 100
THREAD_DEFAULT_DEPTH = 6
THREAD_DEFAULT_PARENT_HEIGHT = 80
INDEX_DELAY = timedelta(seconds=2)  # how long after createdAt the AppView indexes a post


def post_uri(item: CorpusItem) -> str:
    return f"at://{did_for(item.author)}/app.bsky.feed.post/{item.id}"


def _error(status: int, error: str, message: str) -> Response:
    return Response(status, {"error": error, "message": message})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _parse_bound(value: str) -> datetime:
    """A since/until value: an ISO datetime (UTC if no zone) or a bare date, as the lexicon allows."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"invalid datetime {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class BlueskyReplay:
    """The replay server plus the corpus, the clock, the sessions and the Bluesky fault switches."""

    def __init__(
        self,
        items: Iterable[CorpusItem],
        *,
        now: datetime | None = None,
        handle: str = DEMO_HANDLE,
        app_password: str = DEMO_APP_PASSWORD,
        access_ttl: float = 7200.0,
        result_cap: int | None = None,
        server: ReplayServer | None = None,
        shapes: dict[str, Shape] | None = None,
    ) -> None:
        self.items = sorted((i for i in items if i.platform == "bluesky"), key=lambda i: (i.created_at, i.id))
        self.by_id = {item.id: item for item in self.items}
        self.replies: dict[str, list[CorpusItem]] = defaultdict(list)
        self.quotes: dict[str, list[CorpusItem]] = defaultdict(list)
        for item in self.items:
            if item.parent_id:
                self.replies[item.parent_id].append(item)
            if item.quote_of:
                self.quotes[item.quote_of].append(item)
        # The clock the corpus is seen through; by default everything has happened.
        self.now = now or (self.items[-1].created_at + timedelta(days=1) if self.items else datetime.now(UTC))
        self.handle = handle
        self.app_password = app_password
        self.did = did_for(handle)
        self.access_ttl = access_ttl  # seconds of wall-clock time, in the JWT's exp claim
        self.result_cap = result_cap  # searchPosts gives no cursor past this many results
        self.tokens_expire_after: int | None = None  # calls an access token is good for (None: no limit)
        self.invalid_ids: set[str] = set()  # items rendered without their author's DID: to be skipped
        self.blocked_ids: set[str] = set()  # items shown as blockedPost in threads
        self.hidden_ids: set[str] = set()  # hits the search counts but does not show (takedowns, blocks)
        self.failing_thread_ids: set[str] = set()  # getPostThread answers 500 for these
        self.send_hits_total = True
        self.shapes: dict[str, Shape] = dict(shapes or {})  # real record shapes, by item id
        # When the AppView indexed an item (default: when it was created); a shape's indexed_at wins.
        self.indexed_at: dict[str, datetime] = {i: sh.indexed_at for i, sh in self.shapes.items() if sh.indexed_at}
        # Called with the number of each searchPosts call before it is answered: tests use it to
        # change the world at an exact point of a run (expire tokens, queue faults, hold the answer).
        self.on_search: Callable[[int], None] | None = None
        self._search_calls = 0
        self.server = server or ReplayServer()
        self._lock = threading.Lock()
        self._access: dict[str, dict[str, Any]] = {}  # token -> {"exp": epoch, "calls": n}
        self._refresh: set[str] = set()
        self.sessions_created = 0
        self.sessions_refreshed = 0
        for nsid, method, handler in (
            ("com.atproto.server.createSession", "POST", self._create_session),
            ("com.atproto.server.refreshSession", "POST", self._refresh_session),
            ("app.bsky.feed.searchPosts", "GET", self._authed(self._search_posts)),
            ("app.bsky.feed.getPostThread", "GET", self._authed(self._get_post_thread)),
        ):
            self.server.route(method, f"/xrpc/{nsid}", self._guarded(handler))

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> BlueskyReplay:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    # The shared server's fault switches and request log, for tests and the demo.
    def add_fault(self, fault: Fault) -> None:
        self.server.add_fault(fault)

    def clear_faults(self) -> None:
        self.server.clear_faults()

    def requests_to(self, path_prefix: str) -> list[Request]:
        return self.server.requests_to(path_prefix)

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def __enter__(self) -> BlueskyReplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- switches --------------------------------------------------------------------------------
    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far stops working (a refresh then fails; a new login works)."""
        with self._lock:
            self._refresh.clear()

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is refused from now on with 400 ExpiredToken."""
        with self._lock:
            for token in self._access.values():
                token["exp"] = 0

    def indexed(self, item: CorpusItem) -> datetime:
        """When the AppView indexed the item."""
        return self.indexed_at.get(item.id) or item.created_at + INDEX_DELAY

    def in_index(self, item: CorpusItem) -> bool:
        """Whether the item is served at `now` (deleted or not)."""
        when = self.indexed_at.get(item.id)
        return when <= self.now if when is not None else item.visible(self.now)

    def sort_at(self, item: CorpusItem) -> datetime:
        """What searchPosts sorts and filters on: the earlier of createdAt and indexedAt."""
        return min(item.created_at, self.indexed(item))

    def searchable(self, query: str) -> list[CorpusItem]:
        """What searchPosts finds for `query` at `now`, newest sortAt first (for tests to compare with)."""
        now = self.now
        hits = [i for i in self.items if self.in_index(i) and matches(query, i, now)]
        return sorted(hits, key=lambda i: (self.sort_at(i), i.id), reverse=True)

    # -- sessions --------------------------------------------------------------------------------
    def _jwt(self, scope: str, ttl: float) -> str:
        issued = int(time.time())
        header = {"typ": "at+jwt" if scope != "com.atproto.refresh" else "refresh+jwt", "alg": "HS256"}
        payload = {"scope": scope, "sub": self.did, "iat": issued, "exp": int(issued + ttl),
                   "aud": "did:web:replay.invalid", "jti": uuid.uuid4().hex}
        signature = hashlib.sha256(json.dumps(payload).encode()).digest()
        return ".".join(_b64url(part) for part in (json.dumps(header).encode(), json.dumps(payload).encode(),
                                                  signature))

    def _new_session(self) -> dict[str, Any]:
        access = self._jwt("com.atproto.appPass", self.access_ttl)
        refresh = self._jwt("com.atproto.refresh", 90 * 86400)
        with self._lock:
            self._access[access] = {"exp": time.time() + self.access_ttl, "calls": 0}
            self._refresh.add(refresh)
        return {"accessJwt": access, "refreshJwt": refresh, "handle": self.handle, "did": self.did,
                "active": True}

    def _create_session(self, request: Request) -> Response:
        try:
            body = request.json()
        except ValueError:
            return _error(400, "InvalidRequest", "Request body is not JSON")
        identifier, password = body.get("identifier"), body.get("password")
        if not isinstance(identifier, str) or not isinstance(password, str):
            return _error(400, "InvalidRequest", 'Input must have the properties "identifier" and "password"')
        if identifier.lower() not in (self.handle.lower(), self.did) or password != self.app_password:
            return _error(401, "AuthenticationRequired", "Invalid identifier or password")
        self.sessions_created += 1
        return Response(200, self._new_session())

    def _refresh_session(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            known = token in self._refresh
            self._refresh.discard(token)  # refresh tokens rotate: each works once
        if not known:
            return _error(400, "ExpiredToken", "Token has been revoked")
        self.sessions_refreshed += 1
        return Response(200, self._new_session())

    def _authed(self, handler: Any) -> Any:
        def check(request: Request) -> Response:
            token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not token:
                return _error(401, "AuthMissing", "Authentication Required")
            with self._lock:
                state = self._access.get(token)
                if state is not None:
                    state["calls"] += 1
                    over_budget = self.tokens_expire_after is not None and state["calls"] > self.tokens_expire_after
                    expired = over_budget or time.time() >= state["exp"]
            if state is None:
                return _error(400, "InvalidToken", "Token could not be verified")
            if expired:
                return _error(400, "ExpiredToken", "Token has expired")
            return handler(request)

        return check

    @staticmethod
    def _guarded(handler: Any) -> Any:
        def run(request: Request) -> Response:
            try:
                return handler(request)
            except ValueError as exc:  # a malformed parameter
                return _error(400, "InvalidRequest", str(exc))

        return run

    # -- rendering -------------------------------------------------------------------------------
    def _cid(self, item: CorpusItem) -> str:
        digest = hashlib.sha256(f"{item.id}\n{item.text_at(self.now)}".encode()).digest()
        return "bafyrei" + base64.b32encode(digest).decode("ascii").lower().rstrip("=")[:52]

    def _ref(self, item_id: str) -> dict[str, str]:
        item = self.by_id[item_id]
        return {"uri": post_uri(item), "cid": self._cid(item)}

    def _author(self, item: CorpusItem) -> dict[str, Any]:
        name = item.author.split(".")[0].replace("-", " ").title()
        return {"$type": "app.bsky.actor.defs#profileViewBasic", "did": did_for(item.author),
                "handle": item.author, "displayName": name, "labels": []}

    def _alive(self, item: CorpusItem) -> bool:
        return self.in_index(item) and not item.is_deleted(self.now)

    def record(self, item: CorpusItem) -> dict[str, Any]:
        record: dict[str, Any] = {"$type": "app.bsky.feed.post", "text": item.text_at(self.now),
                                  "createdAt": format_time(item.created_at), "langs": [item.lang]}
        if item.parent_id and item.parent_id in self.by_id:
            root = item.root_id if item.root_id in self.by_id else item.parent_id
            record["reply"] = {"root": self._ref(root), "parent": self._ref(item.parent_id)}
        if item.quote_of and item.quote_of in self.by_id:
            record["embed"] = {"$type": "app.bsky.embed.record", "record": self._ref(item.quote_of)}
        elif item.url:
            record["embed"] = {"$type": "app.bsky.embed.external",
                               "external": {"uri": item.url, "title": "", "description": ""}}
        shape = self.shapes.get(item.id)
        if shape is not None:
            if shape.created_at is not None:
                record["createdAt"] = shape.created_at
            record = _merge(record, shape.record)
        return record

    def _embed_view(self, item: CorpusItem) -> dict[str, Any] | None:
        if item.quote_of and item.quote_of in self.by_id:
            quoted = self.by_id[item.quote_of]
            if not self._alive(quoted):
                inner: dict[str, Any] = {"$type": "app.bsky.embed.record#viewNotFound",
                                         "uri": post_uri(quoted), "notFound": True}
            else:
                inner = {"$type": "app.bsky.embed.record#viewRecord", "uri": post_uri(quoted),
                         "cid": self._cid(quoted), "author": self._author(quoted), "value": self.record(quoted),
                         "indexedAt": self._indexed_at(quoted)}
            return {"$type": "app.bsky.embed.record#view", "record": inner}
        if item.url:
            return {"$type": "app.bsky.embed.external#view",
                    "external": {"uri": item.url, "title": "", "description": ""}}
        return None

    def _indexed_at(self, item: CorpusItem) -> str:
        return format_time(self.indexed(item))

    def post_view(self, item: CorpusItem) -> dict[str, Any]:
        view: dict[str, Any] = {
            "$type": "app.bsky.feed.defs#postView",
            "uri": post_uri(item),
            "cid": self._cid(item),
            "author": self._author(item),
            "record": self.record(item),
            "replyCount": sum(1 for r in self.replies.get(item.id, ()) if self._alive(r)),
            "repostCount": item.reposts,
            "likeCount": item.score,
            "quoteCount": sum(1 for q in self.quotes.get(item.id, ()) if self._alive(q)),
            "indexedAt": self._indexed_at(item),
            "labels": [],
        }
        embed = self._embed_view(item)
        if embed:
            view["embed"] = embed
        if item.id in self.invalid_ids:
            view["author"] = {"handle": item.author}  # no DID: a post nobody can attribute
        shape = self.shapes.get(item.id)
        if shape is not None:
            view = _merge(view, shape.view)
        assert self.in_index(item)
        return view

    # -- searchPosts -----------------------------------------------------------------------------
    def _search_posts(self, request: Request) -> Response:
        with self._lock:
            self._search_calls += 1
            number = self._search_calls
        if self.on_search is not None:
            self.on_search(number)
        query = request.arg("q")
        if not query:
            return _error(400, "InvalidRequest", 'Error: Params must have the property "q"')
        limit = int(request.arg("limit") or SEARCH_DEFAULT_LIMIT)
        if not 1 <= limit <= SEARCH_MAX_LIMIT:
            return _error(400, "InvalidRequest", f"Error: limit must be between 1 and {SEARCH_MAX_LIMIT}")
        since, until = request.arg("since"), request.arg("until")
        low = _parse_bound(since) if since else None
        high = _parse_bound(until) if until else None
        cursor = request.arg("cursor")
        if cursor is not None and not cursor.isdigit():
            return _error(400, "InvalidRequest", "Error: malformed cursor")
        offset = int(cursor or 0)
        hits = [i for i in self.searchable(query)
                if (low is None or self.sort_at(i) >= low) and (high is None or self.sort_at(i) < high)]
        cap = self.result_cap if self.result_cap is not None else len(hits)
        end = min(offset + limit, cap, len(hits))
        body: dict[str, Any] = {"posts": [self.post_view(i) for i in hits[offset:end] if i.id not in self.hidden_ids]}
        if self.send_hits_total:
            body["hitsTotal"] = len(hits)
        if end < min(cap, len(hits)):
            body["cursor"] = str(end)
        return _encoded(body)

    # -- getPostThread ---------------------------------------------------------------------------
    def _find(self, uri: str) -> CorpusItem | None:
        parts = uri.removeprefix("at://").split("/")
        if len(parts) != 3 or parts[1] != "app.bsky.feed.post":
            raise ValueError(f"Error: uri must be an at:// post URI, got {uri!r}")
        item = self.by_id.get(parts[2])
        if item is None or did_for(item.author) != parts[0] or not self._alive(item):
            return None
        return item

    def _thread_node(self, item: CorpusItem, depth: int) -> dict[str, Any]:
        if item.id in self.blocked_ids:
            return {"$type": "app.bsky.feed.defs#blockedPost", "uri": post_uri(item), "blocked": True,
                    "author": {"$type": "app.bsky.feed.defs#blockedAuthor", "did": did_for(item.author)}}
        node: dict[str, Any] = {"$type": "app.bsky.feed.defs#threadViewPost", "post": self.post_view(item)}
        if depth > 0:
            replies = []
            for reply in self.replies.get(item.id, ()):
                if not self.in_index(reply):
                    continue
                if reply.is_deleted(self.now):
                    # A deleted reply shows as notFoundPost only while replies hang from it.
                    if any(self.in_index(r) for r in self.replies.get(reply.id, ())):
                        replies.append({"$type": "app.bsky.feed.defs#notFoundPost", "uri": post_uri(reply),
                                        "notFound": True})
                    continue
                replies.append(self._thread_node(reply, depth - 1))
            node["replies"] = replies
        return node

    def _get_post_thread(self, request: Request) -> Response:
        uri = request.arg("uri")
        if not uri:
            return _error(400, "InvalidRequest", 'Error: Params must have the property "uri"')
        depth = int(request.arg("depth") or THREAD_DEFAULT_DEPTH)
        height = int(request.arg("parentHeight") or THREAD_DEFAULT_PARENT_HEIGHT)
        item = self._find(uri)
        if item is None:
            return _error(400, "NotFound", f"Post not found: {uri}")
        if item.id in self.failing_thread_ids:
            return _error(500, "InternalServerError", "Internal Server Error")
        thread = self._thread_node(item, depth)
        node, current = thread, item
        for _ in range(height):
            parent = self.by_id.get(current.parent_id or "")
            if parent is None:
                break
            if not self._alive(parent):
                node["parent"] = {"$type": "app.bsky.feed.defs#notFoundPost", "uri": post_uri(parent),
                                  "notFound": True}
                break
            node["parent"] = {"$type": "app.bsky.feed.defs#threadViewPost", "post": self.post_view(parent)}
            node, current = node["parent"], parent
        return _encoded({"thread": thread})


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` on top; a change of DROP removes the key."""
    if not changes:
        return base
    merged = dict(base)
    for key, value in changes.items():
        if value is DROP:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _encoded(body: dict[str, Any]) -> Response:
    """The JSON answer as bytes; text marks become the broken bytes real answers carry (see bluesky_shapes)."""
    data = json.dumps(body).encode()  # ASCII: the marks appear as their \u escapes
    if b"\\ue00" in data:
        data = data.replace(INVALID_UTF8_MARK, b"\xff").replace(LONE_SURROGATE_MARK, b"\\ud800")
    return Response(200, data)
