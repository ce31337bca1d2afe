"""A tiny forum API on 127.0.0.1: GET /v1/me (token check) and GET /v1/search (newest first, paged)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

TOKEN = "forum-test-token"
PAGE_SIZE = 2


@dataclass(frozen=True)
class Thread:
    id: str
    created: datetime
    author: str
    text: str
    likes: int = 0


class ForumReplay:
    def __init__(self, threads: list[Thread]):
        self.threads = threads
        self.requests: list[str] = []
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                replay.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"error": "bad token"})
                url = urlparse(self.path)
                if url.path == "/v1/me":
                    return self._send(200, {"name": "leakwatch-test"})
                if url.path == "/v1/search":
                    args = {k: v[0] for k, v in parse_qs(url.query).items()}
                    return self._send(200, replay.search(args.get("q", ""), int(args.get("offset", 0))))
                self._send(404, {"error": "no such endpoint"})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def search(self, query: str, offset: int) -> dict:
        words = query.lower().split()
        hits = sorted((t for t in self.threads if all(w in t.text.lower() for w in words)),
                      key=lambda t: (t.created, t.id), reverse=True)
        page = hits[offset:offset + PAGE_SIZE]
        more = offset + PAGE_SIZE < len(hits)
        return {"threads": [{"id": t.id, "created": t.created.isoformat(), "author": t.author, "text": t.text,
                             "likes": t.likes} for t in page],
                "next_offset": offset + PAGE_SIZE if more else None}

    def __enter__(self) -> ForumReplay:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
