"""`leakwatch serve`: the local web app where people code posts and see agreement and validation.

Starlette + Jinja2 (autoescape on) run by uvicorn. Safety, because post texts are untrusted and the
app writes to the warehouse:
- every post field is rendered as escaped text; links are shown as links only when they are http(s)
  (a Bluesky at:// URI becomes its bsky.app address), anything else as plain text; a Content Security
  Policy allows only the app's own script file, so even a missed escape could not run a script;
- state-changing requests need the per-browser CSRF token (cookie + form field or header) and, when
  the browser sends one, an Origin (or Referer) of this very host;
- it binds 127.0.0.1 by default and then accepts only loopback Host headers (no DNS rebinding); any
  other address needs $LEAKWATCH_SERVE_TOKEN, which the app asks for once (login form -> cookie).

The app never holds the warehouse open between requests, so the daemon can write. When the file is
locked, pages answer "warehouse busy, retrying" and retry; an annotation is acknowledged only after
its transaction committed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import jinja2
from markupsafe import Markup, escape
from rich.console import Console
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

import warehouse
from warehouse import annotations as store

from .config import Config

TOKEN_ENV = "LEAKWATCH_SERVE_TOKEN"
HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
CSRF_COOKIE, CODER_COOKIE, AUTH_COOKIE = "lw_csrf", "lw_coder", "lw_auth"
# Short lock waits: the page tells the coder and retries rather than hanging for the default 15 s.
WAIT_SECONDS = 1.0
# Keys per target, in the configured order: favor, against, none.
TARGET_KEYS = ("123", "qwe", "456", "rty", "789")
_CODER_NAME = re.compile(r"^[\w .@-]{1,40}$")
_AT_URI = re.compile(r"^at://(did:[a-z]+:[A-Za-z0-9._:%-]+)/app\.bsky\.feed\.post/([A-Za-z0-9._~:-]+)$")
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class ServeError(warehouse.WarehouseError):
    """The app cannot start as asked (a public address without a token)."""


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ------------------------------------------------------------------------------- rendering helpers

def safe_link(url: str | None) -> str | None:
    """`url` if it is an absolute http(s) address, else None (then the page shows it as text)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


def original_link(platform: str, post_id: str, url: str | None) -> str | None:
    """Where the post lives: bsky.app for an at:// post URI, the stored permalink otherwise."""
    match = _AT_URI.match(post_id)
    if match:
        return f"https://bsky.app/profile/{quote(match.group(1), safe=':')}/post/{quote(match.group(2))}"
    return safe_link(url)


def render_guideline(text: str) -> Markup:
    """Headings, paragraphs, bullet lists, **bold** and `code` of a Markdown file; every character is
    escaped first, so nothing in the file can become markup of its own."""
    blocks: list[tuple[str, list[str]]] = []  # (kind, lines): h1..h4, p, li
    for raw in text.splitlines():
        line = str(escape(raw.strip()))
        line = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", line)
        line = re.sub(r"`(.+?)`", r"<code>\1</code>", line)
        heading, bullet = re.match(r"^(#{1,4}) (.*)$", line), re.match(r"^[-*] (.*)$", line)
        if not line:
            blocks.append(("", []))
        elif heading:
            blocks.append((f"h{len(heading.group(1)) + 1}", [heading.group(2)]))
        elif bullet:
            blocks.append(("li", [bullet.group(1)]))
        elif blocks and blocks[-1][0] in ("p", "li"):
            blocks[-1][1].append(line)  # a continuation line joins its paragraph or list item
        else:
            blocks.append(("p", [line]))
    html, in_list = [], False
    for kind, lines in blocks:
        if kind != "li" and in_list:
            html.append("</ul>")
            in_list = False
        if kind == "li" and not in_list:
            html.append("<ul>")
            in_list = True
        if kind:
            html.append(f"<{kind}>{' '.join(lines)}</{kind}>")
    if in_list:
        html.append("</ul>")
    return Markup("\n".join(html))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


# ------------------------------------------------------------------------------- the app

class CodingApp:
    """The request handlers, sharing one config and one lock around warehouse access (DuckDB refuses
    a read-only and a read-write connection to one file in one process at the same time)."""

    def __init__(self, config: Config, token: str | None, loopback: bool):
        self.config = config
        self.token = token
        self.loopback = loopback
        self.lock = threading.Lock()
        # Autoescape on for every template: post texts are untrusted.
        self.templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                                                autoescape=True))
        self.templates.env.globals.update(when=_when)
        from analysis.validation import GUIDELINE_PATH, guideline_version

        self.guideline_html = render_guideline(GUIDELINE_PATH.read_text(encoding="utf-8"))
        self.guideline_version = guideline_version()

    # -- warehouse access with short waits, in a worker thread so a lock wait never stalls the server
    def _read(self, work: Callable[[Any], Any]) -> Any:
        with self.lock, warehouse.reading(self.config.warehouse_path, WAIT_SECONDS) as con:
            return work(con)

    def _write(self, work: Callable[[Any], Any]) -> Any:
        with self.lock, warehouse.writing(self.config.warehouse_path, WAIT_SECONDS) as con:
            return work(con)

    async def read(self, work: Callable[[Any], Any]) -> Any:
        return await run_in_threadpool(self._read, work)

    async def write(self, work: Callable[[Any], Any]) -> Any:
        return await run_in_threadpool(self._write, work)

    # -- per-browser state
    @staticmethod
    def coder(request: Request) -> str | None:
        name = unquote(request.cookies.get(CODER_COOKIE, ""))
        return name if _CODER_NAME.match(name) else None

    @staticmethod
    def csrf_token(request: Request) -> str:
        token = request.cookies.get(CSRF_COOKIE)
        if not token or not re.fullmatch(r"[A-Za-z0-9_-]{32,64}", token):
            token = request.state.new_csrf = secrets.token_urlsafe(32)
        return token

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
        context.update(csrf=self.csrf_token(request), coder=self.coder(request), message=context.get("message"))
        return self.templates.TemplateResponse(request, name, context, status_code=status_code)

    def busy(self, request: Request) -> Response:
        return self.page(request, "busy.html", 503)

    # -- checks on state-changing requests
    def same_origin(self, request: Request) -> bool:
        """An Origin (else Referer) header, when present, must name this host."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if not origin:
            return True  # old clients send neither; the token still has to match
        if origin == "null":
            return False
        return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()

    async def checked_form(self, request: Request) -> dict[str, str] | Response:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        sent = values.get("csrf") or request.headers.get("x-csrf-token", "")
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not self.same_origin(request):
            return self.refuse(request, "cross-site request refused (Origin does not match this app)")
        if not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
            return self.refuse(request, "request refused: missing or wrong CSRF token (reload the page)")
        return values

    def refuse(self, request: Request, reason: str) -> Response:
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": reason}, status_code=403)
        return self.page(request, "message.html", 403, message=reason)

    def authorised(self, request: Request) -> bool:
        if self.token is None:
            return True
        expected = hashlib.sha256(self.token.encode()).hexdigest()
        return hmac.compare_digest(request.cookies.get(AUTH_COOKIE, ""), expected)

    # -- pages
    async def index(self, request: Request) -> Response:
        def load(con: Any) -> Any:
            samples = store.list_samples(con)
            name = self.coder(request)
            return [(s, store.progress(con, s.sample_id, name or "")) for s in samples]

        try:
            samples = await self.read(load)
        except warehouse.WarehouseBusyError:
            return self.busy(request)
        return self.page(request, "index.html", samples=samples, next=request.query_params.get("next", ""))

    async def set_coder(self, request: Request) -> Response:
        form = await self.checked_form(request)
        if isinstance(form, Response):
            return form
        name = form.get("coder", "").strip()
        if not _CODER_NAME.match(name):
            return self.page(request, "message.html", 400,
                             message="a coder name is 1 to 40 letters, digits, spaces or . _ @ -")
        target = form.get("next", "")
        response = RedirectResponse(target if target.startswith("/code/") else "/", status_code=303)
        response.set_cookie(CODER_COOKIE, quote(name), max_age=365 * 86400, httponly=True, samesite="strict")
        return response

    async def draw(self, request: Request) -> Response:
        form = await self.checked_form(request)
        if isinstance(form, Response):
            return form
        from .annotate import draw_sample
        from .cli import _parse_day

        try:
            size = int(form.get("size", "0"))
            seed = int(form["seed"]) if form.get("seed") else None
            kind = form.get("kind", "random")
            if kind not in store.SAMPLE_KINDS:
                raise ValueError(f"kind {kind!r}")
            since = _parse_day(form.get("since") or None, "since")
            until = _parse_day(form.get("until") or None, "until")
        except Exception as exc:  # a bad field is one message on the page
            return self.page(request, "message.html", 400, message=f"cannot draw that sample: {exc}")
        try:
            def locked_draw() -> tuple[int, int, int]:
                with self.lock:
                    return draw_sample(self.config, kind, size, since, until, seed, None)

            sample_id, drawn, doubles = await run_in_threadpool(locked_draw)
        except warehouse.WarehouseBusyError:
            return self.busy(request)
        except warehouse.WarehouseError as exc:
            return self.page(request, "message.html", 400, message=str(exc))
        return RedirectResponse(f"/code/{sample_id}", status_code=303)

    async def code(self, request: Request) -> Response:
        sample_id = int(request.path_params["sample_id"])
        name = self.coder(request)
        if name is None:
            return RedirectResponse(f"/?next=/code/{sample_id}", status_code=303)
        params = request.query_params

        def load(con: Any) -> dict[str, Any]:
            sample = store.get_sample(con, sample_id)
            if params.get("at", "").isdigit():
                position: int | None = int(params["at"])
            else:
                after = int(params["after"]) if params.get("after", "").isdigit() else 0
                position = store.next_position(con, sample_id, name, after)
            post = store.sample_post(con, sample_id, position) if position else None
            mine: dict[str, str] = {}
            if post is not None:
                for row in store.latest_annotations(con, sample_id):
                    if row["post_id"] == post.post_id and row["platform"] == post.platform and row["annotator"] == name:
                        mine[row["target"]] = row["label"]
            return {"sample": sample, "post": post, "mine": mine, "progress": store.progress(con, sample_id, name),
                    "last": store.last_coded_position(con, sample_id, name), "targets": warehouse.get_targets(con)}

        try:
            data = await self.read(load)
        except warehouse.WarehouseBusyError:
            return self.busy(request)
        except warehouse.WarehouseError as exc:
            return self.page(request, "message.html", 404, message=str(exc))
        if data["post"] is None:
            return self.page(request, "done.html", **data)
        post = data["post"]
        targets = data["targets"]
        keys = {key: [t, label] for t, row in zip(targets, TARGET_KEYS, strict=False)
                for key, label in zip(row, ("favor", "against", "none"), strict=True)}
        return self.page(
            request, "code.html", **data, keys=keys, target_keys=dict(zip(targets, TARGET_KEYS, strict=False)),
            link=original_link(post.platform, post.post_id, post.url), guideline=self.guideline_html,
            message=params.get("saved") and "saved")

    async def annotate(self, request: Request) -> Response:
        sample_id = int(request.path_params["sample_id"])
        wants_json = "application/json" in request.headers.get("accept", "")
        form = await self.checked_form(request)
        if isinstance(form, Response):
            return form
        name = self.coder(request)

        def fail(message: str, status: int = 400) -> Response:
            if wants_json:
                return JSONResponse({"error": message}, status_code=status)
            return self.page(request, "message.html", status, message=message)

        if name is None:
            return fail("choose a coder name first (front page)")
        try:
            position = int(form.get("position", ""))
        except ValueError:
            return fail("the form has no post position")
        unsure = form.get("unsure") in ("1", "on", "true")

        def save(con: Any) -> int:
            post = store.sample_post(con, sample_id, position)
            if post is None or post.post_id != form.get("post_id"):
                raise store.AnnotationError("this post is not at that place in the sample (reload the page)")
            rows = []
            for target in warehouse.get_targets(con):
                label = form.get(f"label_{target}", "")
                if label not in ("favor", "against", "none"):
                    if not unsure:
                        raise store.AnnotationError(f"choose a label for {target}, or mark the post unsure (u)")
                    label = "unsure"
                rows.append(store.Annotation(post.platform, post.post_id, target, label, name, sample_id,
                                             self.guideline_version))
            return store.store_annotations(con, rows)

        try:
            stored = await self.write(save)
        except warehouse.WarehouseBusyError:
            if wants_json:
                return JSONResponse({"busy": True, "message": "warehouse busy, retrying"}, status_code=503)
            return self.page(request, "message.html", 503,
                             message="warehouse busy (the collector is writing): nothing was saved yet; "
                                     "go back and submit again")
        except warehouse.WarehouseError as exc:
            return fail(str(exc))
        next_url = f"/code/{sample_id}?after={position}&saved=1"
        if wants_json:
            return JSONResponse({"saved": stored, "next": next_url})
        return RedirectResponse(next_url, status_code=303)

    async def validate(self, request: Request) -> Response:
        from analysis.validation import validation_report

        try:
            report = await self.read(lambda con: validation_report(con, warehouse.get_targets(con)))
        except warehouse.WarehouseBusyError:
            return self.busy(request)
        return self.page(request, "validate.html", report=report)

    async def login(self, request: Request) -> Response:
        if request.method == "GET":
            return self.page(request, "login.html", next=request.query_params.get("next", "/"))
        form = await self.checked_form(request)
        if isinstance(form, Response):
            return form
        if self.token is None or not hmac.compare_digest(form.get("token", "").encode(), self.token.encode()):
            return self.page(request, "login.html", 403, message="wrong token", next=form.get("next", "/"))
        target = form.get("next", "/")
        response = RedirectResponse(target if target.startswith("/") and not target.startswith("//") else "/", 303)
        response.set_cookie(AUTH_COOKIE, hashlib.sha256(self.token.encode()).hexdigest(), httponly=True,
                            samesite="strict")
        return response

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("app.js", "app.css"):
            return Response("not found", status_code=404)
        return FileResponse(TEMPLATES / name, media_type="text/javascript" if name.endswith(".js") else "text/css")


def create_app(config: Config, host: str = "127.0.0.1", token: str | None = None) -> Starlette:
    """The ASGI app; a non-loopback `host` requires a token."""
    loopback = is_loopback(host)
    if not loopback and not token:
        raise ServeError(f"listening on {host} makes the app reachable from other machines: set {TOKEN_ENV} "
                         "to a long random secret first (the app then asks for it)")
    app = CodingApp(config, token, loopback)
    routes = [
        Route("/", app.index), Route("/coder", app.set_coder, methods=["POST"]),
        Route("/samples", app.draw, methods=["POST"]),
        Route("/code/{sample_id:int}", app.code), Route("/code/{sample_id:int}", app.annotate, methods=["POST"]),
        Route("/validate", app.validate), Route("/login", app.login, methods=["GET", "POST"]),
        Route("/static/{name}", app.static),
    ]
    async def guard(request: Request, call_next: Callable) -> Response:
        public = request.url.path == "/login" or request.url.path.startswith("/static/")
        if not public and not app.authorised(request):
            if request.method == "GET":
                response: Response = RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
            else:
                response = JSONResponse({"error": "log in first"}, status_code=401)
        else:
            response = await call_next(request)
        new_token = getattr(request.state, "new_csrf", None)
        if new_token:
            response.set_cookie(CSRF_COOKIE, new_token, httponly=True, samesite="strict")
        response.headers.update(SECURITY_HEADERS)
        return response

    middleware = []
    if loopback:  # only loopback Host headers: a DNS-rebinding page cannot talk to the app
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]", "::1"]))
    middleware.append(Middleware(BaseHTTPMiddleware, dispatch=guard))
    starlette = Starlette(routes=routes, middleware=middleware)
    return starlette


def run_server(config: Config, host: str, port: int, console: Console) -> int:
    import uvicorn

    app = create_app(config, host, os.environ.get(TOKEN_ENV) or None)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"leakwatch serve: coding app on http://{shown}:{port}/ for {config.warehouse_path} "
                  "(Ctrl-C stops)", soft_wrap=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
