"""Helpers for the Bluesky tests: small corpora with known times, a replay server with its config file,
the CLI, the DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from collectors.replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE, BlueskyReplay, post_uri
from collectors.replay.bluesky_shapes import Shape
from collectors.replay.corpus import CorpusItem, make_tid

T0 = datetime(2024, 11, 26, 12, 0, tzinfo=UTC)


def item(n: int, when: datetime, text: str = "The sora leak, again", *, kind: str = "post",
         parent: CorpusItem | None = None, quote_of: CorpusItem | None = None, author: str | None = None,
         likes: int = 3, **extra) -> CorpusItem:
    """One Bluesky item; `n` makes the record key unique and time-ordered with `when`."""
    micros = int(when.timestamp() * 1_000_000) + n % 1000
    return CorpusItem(
        platform="bluesky", id=make_tid(micros, n % 1024), kind=kind,
        author=author or f"user{n % 7}.bsky.social", community=None, title=None, text=text, url=None,
        created_at=when, parent_id=parent.id if parent else None,
        root_id=(parent.root_id or parent.id) if parent else None,
        quote_of=quote_of.id if quote_of else None, lang="en", score=likes, reposts=1, **extra)


def posts_every(count: int, start: datetime = T0, step: timedelta = timedelta(minutes=1),
                text: str = "The sora leak, again", first: int = 0) -> list[CorpusItem]:
    return [item(first + i, start + i * step, f"{text} #{first + i}") for i in range(count)]


def uris(items: list[CorpusItem]) -> set[str]:
    return {post_uri(i) for i in items}


def write_config(tmp_path: Path, server: BlueskyReplay, *, queries: tuple[str, ...] = ("sora leak",),
                 **bluesky: object) -> Path:
    settings = {"service_url": server.url, "start_date": "2024-11-01", "fetch_threads": False,
                "backoff_seconds": 0.01, "timeout_seconds": 5, **bluesky}
    lines = [f"{key} = {_toml(value)}" for key, value in settings.items()]
    quoted = ", ".join(_toml(q) for q in queries)
    text = f"""data_dir = "data"

[reddit]
enabled = false
queries = ["sora leak"]
subreddits = ["all"]

[bluesky]
queries = [{quoted}]
{chr(10).join(lines)}

[stance]
[[stance.targets]]
name = "openai"
description = "OpenAI"
"""
    path = tmp_path / "leakwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def cli_env(handle: str = DEMO_HANDLE, password: str | None = DEMO_APP_PASSWORD) -> dict[str, str]:
    # Keep the suite's quick-demo-model and model-cache settings (conftest), so a demo run neither
    # trains the full model nor writes into the user's cache.
    keep = ("LEAKWATCH_DEMO_QUICK_MODEL", "LEAKWATCH_CACHE_DIR")
    env = {k: v for k, v in os.environ.items()
           if k in keep or not k.startswith(("BLUESKY_", "LEAKWATCH_"))}
    env["BLUESKY_HANDLE"] = handle
    if password is not None:
        env["BLUESKY_APP_PASSWORD"] = password
    return env


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leakwatch", "--config", str(config), *args],
                          capture_output=True, text=True, env=env or cli_env(), timeout=timeout)


def collect(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(config, "collect", "--platform", "bluesky", *args, env=env)


def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "leakwatch.duckdb"


def query(tmp_path: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(db_path(tmp_path)), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def stored_ids(tmp_path: Path) -> set[str]:
    return {row[0] for row in query(tmp_path, "SELECT post_id FROM posts WHERE platform = 'bluesky'")}


def checkpoint_state(tmp_path: Path, key: str = "bsky:sora leak") -> dict:
    """The JSON state a Bluesky checkpoint keeps (pending windows, owed threads, last revisit...)."""
    import json

    [(cursor,)] = query(tmp_path, "SELECT cursor FROM checkpoints WHERE query_key = ?", [key])
    return json.loads(cursor) if cursor else {}


def last_run(tmp_path: Path) -> dict:
    cols = ["status", "pages", "fetched", "inserted", "updated", "skipped", "rate_limit_waits", "caps_hit", "error"]
    row = query(tmp_path, f"SELECT {', '.join(cols)} FROM runs ORDER BY run_id DESC LIMIT 1")[0]
    return dict(zip(cols, row, strict=True))


SEARCH = "/xrpc/app.bsky.feed.searchPosts"
THREAD = "/xrpc/app.bsky.feed.getPostThread"


@contextmanager
def serving(tmp_path: Path, corpus: list[CorpusItem], *, now: datetime | None = None,
            shapes: dict[str, Shape] | None = None, result_cap: int | None = None,
            **settings: object) -> Iterator[tuple[BlueskyReplay, Path]]:
    """A replay server holding `corpus` and a config file (`settings` as in write_config) that uses it."""
    with BlueskyReplay(corpus, now=now, shapes=shapes, result_cap=result_cap) as server:
        yield server, write_config(tmp_path, server, **settings)
