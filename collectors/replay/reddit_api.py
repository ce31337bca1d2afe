"""A local Reddit API that speaks the wire format praw uses, serving a corpus on a settable clock.

Endpoints (as Reddit serves them to an app-only OAuth client):

- ``POST /api/v1/access_token`` (HTTP basic auth, ``grant_type=client_credentials``) → bearer token
- ``GET /r/{sub}/search`` (``q``, ``sort=new``, ``restrict_sr``, ``limit`` ≤ 100, ``after``) → Listing
- ``GET /comments/{id}`` → ``[Listing(submission), Listing(comment tree)]`` with ``more`` stubs
- ``POST /api/morechildren`` (``children``, ``link_id``) → ``{"json": {"data": {"things": [...]}}}``
- ``GET /comments/{id}/_/{comment}`` → the branch below one comment ("continue this thread")

Real shapes beyond the corpus's fields (galleries, polls, flair, awards, odd timestamps, a missing
permalink...) are set per item with ``extra_fields``; ``indexed_at`` delays when search finds an
item; ``listing_rank`` reorders same-second items; ``max_depth`` turns deeper replies into
"continue this thread" stubs. See ``reddit_shapes.py``.

Only items created at or before ``server.now`` exist; edits and deletions are applied as of ``now``,
so a test advances the clock between passes to make new posts, edits, score changes and
deletions appear. Fault switches come from the base `ReplayServer`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .corpus import CorpusItem, matches
from .server import ReplayServer, Request, Response

DEFAULT_CLIENT_ID = "leakwatch-demo"
DEFAULT_CLIENT_SECRET = "leakwatch-demo-secret"

_UNAUTHORIZED = {"message": "Unauthorized", "error": 401}
DROP = object()  # an `extra_fields` value that removes the field from the item's JSON


def _slug(title: str) -> str:
    words = re.findall(r"[a-z0-9]+", title.lower())[:10]
    return "_".join(words) or "post"


def _key(item: CorpusItem) -> tuple[float, int]:
    """Newest-first order: creation time, then the base36 id as a number (ids grow with time)."""
    return (item.created_at.timestamp(), int(item.id, 36))


def _user_id(name: str) -> str:
    return "t2_" + base64.b32encode(hashlib.sha256(name.encode()).digest()).decode().lower()[:8]


def _sub_id(name: str) -> str:
    return "t5_" + base64.b32encode(hashlib.sha256(name.lower().encode()).digest()).decode().lower()[:6]


class RedditReplayServer(ReplayServer):
    """Reddit's OAuth, search, comments and morechildren endpoints over a corpus."""

    def __init__(
        self,
        items: Iterable[CorpusItem],
        now: datetime | None = None,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        listing_cap: int = 1000,
        comment_limit: int = 200,
        morechildren_limit: int = 100,
        score_ramp_hours: float = 48.0,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.listing_cap = listing_cap  # Reddit stops every listing near 1000 items
        self.comment_limit = comment_limit  # comments per /comments answer; the rest become `more`
        self.morechildren_limit = morechildren_limit  # comments per /api/morechildren answer
        self.score_ramp_hours = score_ramp_hours  # scores grow to their final value over this time
        self.malformed_ids: set[str] = set()  # items served with a broken created_utc
        self.banned_subreddits: set[str] = set()  # searching these redirects, as Reddit does
        self.extra_fields: dict[str, dict[str, Any]] = {}  # item id → fields set on its JSON (DROP removes)
        self.indexed_at: dict[str, datetime] = {}  # item id → when search starts finding it (late indexing)
        self.listing_rank: dict[str, int] = {}  # item id → its place among same-second items (else its id)
        self.max_depth: int | None = None  # replies this deep become "continue this thread" stubs
        self.tokens: set[str] = set()
        self._index_lock = threading.Lock()
        self._submissions: dict[str, CorpusItem] = {}
        self._comments: dict[str, CorpusItem] = {}
        self._children: dict[str, list[CorpusItem]] = {}
        self._search_cache: dict[tuple[Any, ...], list[CorpusItem]] = {}
        self.add_items(items)
        latest = max((i.created_at for i in self._all_items()), default=datetime.now(UTC))
        self.now = now or latest

        self.route("POST", "/api/v1/access_token", self._access_token)
        self.route_pattern("GET", r"/r/(?P<sub>[^/]+)/search(?:\.json)?/?", self._search)
        self.route_pattern("GET", r"/comments/(?P<id>[a-z0-9]+)(?:/[^/]*)?/?", self._comments_page)
        self.route_pattern("GET", r"/comments/(?P<id>[a-z0-9]+)/[^/]*/(?P<comment>[a-z0-9]+)/?", self._comments_page)
        self.route_pattern("POST", r"/api/morechildren(?:\.json)?/?", self._morechildren)
        self.route_pattern("GET", r"/api/morechildren(?:\.json)?/?", self._morechildren)

    # -- the corpus ----------------------------------------------------------------------------
    def add_items(self, items: Iterable[CorpusItem]) -> None:
        with self._index_lock:
            for item in items:
                if item.platform != "reddit":
                    continue
                if item.kind == "submission":
                    self._submissions[item.id] = item
                else:
                    self._comments[item.id] = item
                    self._children.setdefault(item.parent_id or "", []).append(item)
            for siblings in self._children.values():
                siblings.sort(key=_key)
            self._search_cache.clear()

    def _all_items(self) -> Iterable[CorpusItem]:
        yield from self._submissions.values()
        yield from self._comments.values()

    def expire_tokens(self) -> None:
        """Every issued token stops working: the next API call gets a 401."""
        with self._lock:
            self.tokens.clear()

    # -- endpoints -----------------------------------------------------------------------------
    def _access_token(self, request: Request) -> Response:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("authorization", "") != f"Basic {expected}":
            return Response(401, _UNAUTHORIZED)
        if request.form().get("grant_type") != "client_credentials":
            return Response(200, {"error": "unsupported_grant_type"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.tokens.add(token)
        return Response(200, {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"})

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token in self.tokens

    def _search(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(401, _UNAUTHORIZED, {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
        now = self.now
        sub = request.path_args["sub"]
        if sub.lower() in {s.lower() for s in self.banned_subreddits}:
            return Response(302, {}, {"Location": f"/subreddits/search?q={sub}"})
        restrict = (request.arg("restrict_sr") or "").lower() in ("1", "on", "true")
        query = request.arg("q") or ""
        results = self._search_results(sub if restrict else "all", query, now)
        limit = max(1, min(100, int(request.arg("limit") or 25)))
        start = 0
        after = request.arg("after")
        if after:
            anchor = self._submissions.get(after.removeprefix("t3_"))
            if anchor is None:
                start = len(results)
            else:  # results are newest first; continue strictly below the anchor
                keys = [tuple(-k for k in self._order(i)) for i in results]
                start = bisect_right(keys, tuple(-k for k in self._order(anchor)))
        page = results[start : start + limit]
        more = start + limit < len(results)
        children = [{"kind": "t3", "data": self._submission_data(i, now)} for i in page]
        return Response(200, _listing(children, after=f"t3_{page[-1].id}" if page and more else None))

    def _search_results(self, sub: str, query: str, now: datetime) -> list[CorpusItem]:
        cache_key = (sub.lower(), query, now)
        with self._index_lock:
            cached = self._search_cache.get(cache_key)
            if cached is not None:
                return cached
            wanted = None if sub.lower() == "all" else {s.lower() for s in sub.split("+")}
            hits = [
                i for i in self._submissions.values()
                if i.visible(now) and (wanted is None or (i.community or "").lower() in wanted)
                and self.indexed_at.get(i.id, i.created_at) <= now and matches(query, i, now)
            ]
            hits.sort(key=self._order, reverse=True)
            hits = hits[: self.listing_cap]
            if len(self._search_cache) > 256:
                self._search_cache.clear()
            self._search_cache[cache_key] = hits
            return hits

    def _order(self, item: CorpusItem) -> tuple[float, int]:
        """Listing order: creation time, then the id, unless `listing_rank` places the item."""
        rank = self.listing_rank.get(item.id)
        return _key(item) if rank is None else (item.created_at.timestamp(), rank)

    def _comments_page(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(401, _UNAUTHORIZED, {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
        now = self.now
        submission = self._submissions.get(request.path_args["id"])
        if submission is None or not submission.visible(now):
            return Response(404, {"message": "Not Found", "error": 404})
        limit = min(self.comment_limit, int(request.arg("limit") or self.comment_limit))
        focus = request.path_args.get("comment")
        if focus:  # one comment and the branch below it, as Reddit serves "continue this thread"
            comment = self._comments.get(focus)
            if comment is None or comment.root_id != submission.id or not comment.visible(now):
                return Response(404, {"message": "Not Found", "error": 404})
            things = self._render([comment], limit, now, nested=True, focus=True)
        else:
            things = self._render(self._visible_children(submission.id, now), limit, now, nested=True)
        return Response(200, [
            _listing([{"kind": "t3", "data": self._submission_data(submission, now)}]),
            _listing(things),
        ])

    def _morechildren(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(401, _UNAUTHORIZED, {"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
        args = request.form() if request.method == "POST" else {k: v[0] for k, v in request.query.items()}
        now = self.now
        wanted = [c.strip() for c in (args.get("children") or "").split(",") if c.strip()]
        link = (args.get("link_id") or "").removeprefix("t3_")
        roots = [
            self._comments[c] for c in wanted
            if c in self._comments and self._comments[c].root_id == link and self._comments[c].visible(now)
        ]
        things = self._render(roots, self.morechildren_limit, now, nested=False)
        return Response(200, {"json": {"errors": [], "data": {"things": things}}})

    # -- rendering -----------------------------------------------------------------------------
    def _visible_children(self, parent_id: str, now: datetime) -> list[CorpusItem]:
        return [c for c in self._children.get(parent_id, ()) if c.visible(now)]

    def _render(self, roots: list[CorpusItem], budget: int, now: datetime, nested: bool,
                focus: bool = False) -> list[dict[str, Any]]:
        """Comments depth first until `budget` runs out; what is left becomes `more` stubs.

        A stub lists the left-over direct children of one parent whose own comment was sent,
        as Reddit does, so a client can always attach what morechildren returns.
        """
        flat: list[dict[str, Any]] = []
        leftovers: dict[str, list[CorpusItem]] = {}
        remaining = budget

        def visit(item: CorpusItem, depth: int) -> dict[str, Any] | None:
            nonlocal remaining
            if remaining <= 0:
                leftovers.setdefault(self._parent_fullname(item), []).append(item)
                return None
            remaining -= 1
            thing = {"kind": "t1", "data": self._comment_data(item, now, depth)}
            flat.append(thing)
            children = self._visible_children(item.id, now)
            if children and self.max_depth is not None and depth + 1 >= self.max_depth:
                stub = _continue_stub(thing["data"]["name"], depth + 1)  # the rest of the branch is a link
                if nested:
                    thing["data"]["replies"] = _listing([stub])
                else:
                    flat.append(stub)
                return thing
            replies = [r for r in (visit(child, depth + 1) for child in children) if r]
            if nested:
                stub = self._more_stub(thing["data"]["name"], leftovers, depth + 1, now)
                if stub:
                    replies.append(stub)
                thing["data"]["replies"] = _listing(replies) if replies else ""
            return thing

        top = [t for t in (visit(root, 0 if focus else self._depth(root)) for root in roots) if t]
        if nested:
            stubs = [self._more_stub(parent, leftovers, 0, now) for parent in list(leftovers)]
            return top + [s for s in stubs if s]
        stubs = [self._more_stub(parent, leftovers, 0, now) for parent in list(leftovers)]
        return flat + [s for s in stubs if s]

    def _more_stub(self, parent: str, leftovers: dict[str, list[CorpusItem]], depth: int,
                   now: datetime) -> dict[str, Any] | None:
        items = leftovers.pop(parent, None)
        if not items:
            return None
        count = sum(1 + self._descendants(i.id, now) for i in items)
        return {"kind": "more", "data": {
            "count": count, "name": f"t1_{items[0].id}", "id": items[0].id, "parent_id": parent,
            "depth": depth, "children": [i.id for i in items],
        }}

    def _descendants(self, item_id: str, now: datetime) -> int:
        return sum(1 + self._descendants(c.id, now) for c in self._visible_children(item_id, now))

    def _depth(self, item: CorpusItem) -> int:
        depth = 0
        while item.parent_id in self._comments:
            item = self._comments[item.parent_id]
            depth += 1
        return depth

    def _parent_fullname(self, item: CorpusItem) -> str:
        prefix = "t1_" if item.parent_id in self._comments else "t3_"
        return prefix + (item.parent_id or "")

    def _score(self, item: CorpusItem, now: datetime) -> int:
        """Votes arrive over the first hours of a post's life."""
        hours = (now - item.created_at).total_seconds() / 3600
        share = 1.0 if self.score_ramp_hours <= 0 else min(1.0, max(0.0, hours / self.score_ramp_hours))
        return round(item.score * share) if item.score > 1 else item.score

    def _common(self, item: CorpusItem, now: datetime) -> dict[str, Any]:
        deleted = item.is_deleted(now)
        edited = item.edited_at(now)
        created = item.created_at.timestamp()
        data: dict[str, Any] = {
            "id": item.id,
            "author": "[deleted]" if deleted else item.author,
            "subreddit": item.community,
            "subreddit_id": _sub_id(item.community or ""),
            "subreddit_name_prefixed": f"r/{item.community}",
            "subreddit_type": "public",
            "created_utc": created,
            "created": created,
            "score": self._score(item, now),
            "ups": max(0, self._score(item, now)),
            "downs": 0,
            "edited": edited.timestamp() if edited and not deleted else False,
            "stickied": False,
            "distinguished": None,
            "gilded": 0,
            "archived": False,
            "locked": False,
        }
        if not deleted:
            data["author_fullname"] = _user_id(item.author)
        if item.id in self.malformed_ids:
            data["created_utc"] = "not-a-timestamp"
        return data

    def _gone_text(self, item: CorpusItem) -> str:
        return "[removed]" if item.removed else "[deleted]"

    def _submission_data(self, item: CorpusItem, now: datetime) -> dict[str, Any]:
        permalink = f"/r/{item.community}/comments/{item.id}/{_slug(item.title or '')}/"
        deleted = item.is_deleted(now)
        comments = self._descendants(item.id, now)
        data = self._common(item, now)
        data.update({
            "name": f"t3_{item.id}",
            "title": item.title or "",
            "selftext": self._gone_text(item) if deleted else item.text_at(now),
            "selftext_html": None,
            "is_self": item.url is None,
            "url": item.url or f"https://www.reddit.com{permalink}",
            "domain": f"self.{item.community}" if item.url is None else re.sub(r"^https?://([^/]+).*", r"\1",
                                                                                 item.url),
            "permalink": permalink,
            "num_comments": comments,
            "upvote_ratio": 0.9,
            "over_18": False,
            "spoiler": False,
            "link_flair_text": None,
            "thumbnail": "self" if item.url is None else "default",
            "is_video": False,
            "removed_by_category": ("moderator" if item.removed else "deleted") if deleted else None,
        })
        return self._extra(item, data)

    def _comment_data(self, item: CorpusItem, now: datetime, depth: int) -> dict[str, Any]:
        root = self._submissions.get(item.root_id or "")
        slug = _slug(root.title or "") if root else "post"
        deleted = item.is_deleted(now)
        data = self._common(item, now)
        data.update({
            "name": f"t1_{item.id}",
            "parent_id": self._parent_fullname(item),
            "link_id": f"t3_{item.root_id}",
            "body": self._gone_text(item) if deleted else item.text_at(now),
            "body_html": None,
            "permalink": f"/r/{item.community}/comments/{item.root_id}/{slug}/{item.id}/",
            "depth": depth,
            "is_submitter": bool(root and root.author == item.author),
            "score_hidden": False,
            "collapsed": False,
            "controversiality": 0,
            "replies": "",
        })
        return self._extra(item, data)

    def _extra(self, item: CorpusItem, data: dict[str, Any]) -> dict[str, Any]:
        for name, value in self.extra_fields.get(item.id, {}).items():
            if value is DROP:
                data.pop(name, None)
            else:
                data[name] = value
        return data


def _continue_stub(parent: str, depth: int) -> dict[str, Any]:
    """Reddit's "continue this thread" link: a `more` with no children, count 0 and id "_"."""
    return {"kind": "more", "data": {"count": 0, "name": "t1__", "id": "_", "parent_id": parent, "depth": depth,
                                     "children": []}}


def _listing(children: list[dict[str, Any]], after: str | None = None) -> dict[str, Any]:
    return {"kind": "Listing", "data": {
        "after": after, "before": None, "dist": len(children), "modhash": "", "geo_filter": "",
        "children": children,
    }}
