"""A small OpenAI-compatible Chat Completions server on 127.0.0.1 for the LLM backend's tests.

Answers are computed from the prompt: the targets come from the system prompt's target list, the
post from between <<< and >>> in the user message; for target t the label is `favor` if the post
says "pro-t", `against` if it says "anti-t", else `none`. Markers in a post trigger faults:
[malformed] (every try), [malformed-once], [refuse], [badlabel], [400], and on the first try only: [429]
(with Retry-After), [500], [slow] (answers after `slow_seconds`), [drop] (closes the connection
without answering). Server-wide switches: json_schema / logprobs support, a fixed status for every
request, a delay per answer. Run it alone with `python tests/llm_server.py PORT` (for the kill test).
"""

from __future__ import annotations

import json
import math
import re
import socket
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LABELS = ("favor", "against", "none")
PROBS = (0.7, 0.2, 0.1)  # the chosen label, then the other two in LABELS order


def post_of(body: dict[str, Any]) -> str:
    user = [m["content"] for m in body.get("messages", []) if m.get("role") == "user"][-1]
    match = re.search(r"<<<\n(.*)\n>>>", user, flags=re.DOTALL)
    return match.group(1) if match else user


def targets_of(body: dict[str, Any]) -> list[str]:
    system = "\n".join(m["content"] for m in body.get("messages", []) if m.get("role") == "system")
    return re.findall(r"^- `([a-z][a-z0-9_]*)`:", system, flags=re.MULTILINE)


def label_for(post: str, target: str) -> str:
    text = post.lower()
    if f"pro-{target}" in text:
        return "favor"
    if f"anti-{target}" in text:
        return "against"
    return "none"


def tokens_of(content: str) -> list[str]:
    return re.findall(r"\s+|\w+|[^\w\s]", content)


class LlmServer:
    def __init__(self, json_schema: bool = True, logprobs: bool = True, reject_logprobs: bool = False,
                 retry_after: str = "1", slow_seconds: float = 3.0, delay: float = 0.0,
                 status_for_all: int | None = None, port: int = 0, host: str = "127.0.0.1"):
        self.json_schema, self.logprobs, self.reject_logprobs = json_schema, logprobs, reject_logprobs
        self.retry_after, self.slow_seconds, self.delay = retry_after, slow_seconds, delay
        self.status_for_all = status_for_all
        self.requests: list[dict[str, Any]] = []  # every request body, in arrival order
        self.auth_headers: list[str] = []
        self.tries: Counter[str] = Counter()  # per post text
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.handle(self, body)

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self) -> LlmServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def posts_asked(self) -> list[str]:
        with self.lock:
            return [post_of(b) for b in self.requests]

    # -- answering -----------------------------------------------------------------------------

    def _send(self, handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            handler.send_response(status)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, message: str, **headers: str) -> None:
        self._send(handler, status, {"error": {"message": message, "type": "test", "code": status}}, headers)

    def handle(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        post = post_of(body)
        with self.lock:
            self.requests.append(body)
            self.auth_headers.append(handler.headers.get("authorization", ""))
            self.tries[post] += 1
            first = self.tries[post] == 1
        if self.status_for_all is not None:
            key = handler.headers.get("authorization", "").removeprefix("Bearer ")
            return self._error(handler, self.status_for_all, f"Incorrect API key provided: {key}")
        fmt = (body.get("response_format") or {}).get("type")
        if fmt == "json_schema" and not self.json_schema:
            return self._error(handler, 400, "response_format json_schema is not supported")
        if body.get("logprobs") and self.reject_logprobs:
            return self._error(handler, 400, "logprobs are not supported")
        if "[400]" in post:
            return self._error(handler, 400, "this post is too long for the context window")
        if first and "[429]" in post:
            return self._error(handler, 429, "slow down", **{"retry-after": self.retry_after})
        if first and "[500]" in post:
            return self._error(handler, 500, "the test server is having a moment")
        if first and "[drop]" in post:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return None
        if first and "[slow]" in post:
            time.sleep(self.slow_seconds)
        if self.delay:
            time.sleep(self.delay)
        targets = targets_of(body)
        refusal = None
        if "[malformed]" in post or (first and "[malformed-once]" in post):
            content = '{"' + targets[0] + '": {"label": "fav'  # cut off mid-answer
        elif "[refuse]" in post:
            content, refusal = None, "I can't help with that."
        else:
            answer = {t: {"label": "maybe" if "[badlabel]" in post else label_for(post, t),
                          "reason": f"the post's wording about {t}"} for t in targets}
            content = json.dumps(answer)
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": content, "refusal": refusal}}
        if content and body.get("logprobs") and self.logprobs:
            choice["logprobs"] = {"content": self._logprobs(content, body.get("top_logprobs") or 1), "refusal": None}
        prompt_tokens = sum(len(m.get("content") or "") for m in body.get("messages", [])) // 4
        completion_tokens = len(tokens_of(content or "x"))
        self._send(handler, 200, {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"), "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })
        return None

    def _logprobs(self, content: str, top: int) -> list[dict[str, Any]]:
        out = []
        for token in tokens_of(content):
            if token in LABELS:
                others = [label for label in LABELS if label != token]
                ranked = [token, *others]
                alternatives = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())}
                                for t, p in zip(ranked, PROBS, strict=True)][:top]
                out.append({"token": token, "logprob": math.log(PROBS[0]), "bytes": list(token.encode()),
                            "top_logprobs": alternatives})
            else:
                out.append({"token": token, "logprob": 0.0, "bytes": list(token.encode()),
                            "top_logprobs": [{"token": token, "logprob": 0.0, "bytes": list(token.encode())}]})
        return out


if __name__ == "__main__":  # a server in its own process, e.g. for a test that kills the client
    server = LlmServer(port=int(sys.argv[1]), delay=float(sys.argv[2]) if len(sys.argv) > 2 else 0.0).start()
    print(server.url, flush=True)
    server.thread.join()
