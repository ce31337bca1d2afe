"""A small threaded HTTP server on 127.0.0.1 with switchable faults, the base of both replay APIs.

Platform servers register routes; tests and the demo queue faults (429 with Retry-After, 5xx,
slow answers, truncated JSON, 401, a 400 whose body was cut short) that hit the next matching requests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = ("429", "5xx", "slow", "truncated", "401", "400-truncated")


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    path_args: dict[str, str] = field(default_factory=dict)  # named groups of a pattern route

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        return json.loads(self.body or b"{}")

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Response:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] | None = None


@dataclass
class Fault:
    kind: str  # one of FAULT_KINDS
    path_prefix: str = ""  # only requests whose path starts with this
    times: int = 1  # how many matching requests it hits
    retry_after: float = 1.0  # seconds, for 429
    status: int = 503  # for 5xx
    delay: float = 0.0  # seconds, for slow
    after: int = 0  # let this many matching requests through untouched first

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; expected one of {FAULT_KINDS}")


Handler = Callable[[Request], Response]


class _QuietHTTPServer(ThreadingHTTPServer):
    """Says nothing when a client hangs up first (e.g. it timed out on a slow answer)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ReplayServer:
    """Routes plus faults, served on an ephemeral loopback port in a background thread."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.pattern_routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.faults: list[Fault] = []
        self.requests: list[Request] = []  # every request received, for tests to inspect
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- set-up -------------------------------------------------------------------------------
    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method.upper(), path)] = handler

    def route_pattern(self, method: str, pattern: str, handler: Handler) -> None:
        """A route whose path matches a regular expression; named groups land in `path_args`."""
        self.pattern_routes.append((method.upper(), re.compile(pattern), handler))

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def requests_to(self, path_prefix: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: don't stall on ACKs

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server._dispatch(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                server._dispatch(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ------------------------------------------------------------------------------
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if path.startswith(fault.path_prefix):
                    if fault.after > 0:
                        fault.after -= 1
                        continue
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def _find_handler(self, method: str, request: Request) -> Handler | None:
        handler = self.routes.get((method, request.path))
        if handler is not None:
            return handler
        for route_method, pattern, candidate in self.pattern_routes:
            match = pattern.fullmatch(request.path)
            if route_method == method and match:
                request.path_args = match.groupdict()
                return candidate
        return None

    def _dispatch(self, http: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("Content-Length") or 0)
        request = Request(
            method=method,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in http.headers.items()},
            body=http.rfile.read(length) if length else b"",
        )
        with self._lock:
            self.requests.append(request)
        fault = self._take_fault(request.path)
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault and fault.kind == "429":
            response = Response(429, {"error": "RateLimitExceeded", "message": "Too many requests"},
                                {"Retry-After": str(int(fault.retry_after)),
                                 "ratelimit-remaining": "0",
                                 "ratelimit-reset": str(int(time.time() + fault.retry_after))})
        elif fault and fault.kind == "5xx":
            response = Response(fault.status, {"error": "InternalServerError", "message": "upstream failed"})
        elif fault and fault.kind == "400-truncated":  # a 400 whose body was cut off on the way
            response = Response(400, {"message": "Bad Request", "error": 400, "reason": "BAD_REQUEST"})
        elif fault and fault.kind == "401":
            response = Response(401, {"error": "ExpiredToken", "message": "Token has expired"})
        elif fault and fault.kind == "400-truncated":  # an error answer cut short on the way
            response = Response(400, b'{"error": "InvalidRequ')
        else:
            handler = self._find_handler(method, request)
            if handler is None:
                response = Response(404, {"error": "NotFound", "message": f"no route {method} {request.path}"})
            else:
                response = handler(request)
        body = response.body if isinstance(response.body, bytes) else json.dumps(response.body).encode()
        if fault and fault.kind in ("truncated", "400-truncated"):
            body = body[: max(1, len(body) // 2)]
        http.send_response(response.status)
        http.send_header("Content-Type", "application/json; charset=utf-8")
        http.send_header("Content-Length", str(len(body)))
        for name, value in (response.headers or {}).items():
            http.send_header(name, value)
        http.end_headers()
        http.wfile.write(body)
