"""Shared helpers of the daemon and export tests: configs in tmp_path, a seeded warehouse, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import warehouse
from warehouse.records import Post

TARGETS = ["openai", "artists"]
MODEL_ID = "test-model-1"


def write_config(tmp_path: Path, extra: str = "", *, reddit_url: str = "http://127.0.0.1:9",
                 bluesky_url: str = "http://127.0.0.1:9", reddit: bool = True, bluesky: bool = True,
                 interval_minutes: float = 60) -> Path:
    path = tmp_path / "leakwatch.toml"
    path.write_text(f"""
data_dir = "data"

[reddit]
enabled = {str(reddit).lower()}
queries = ["sora leak"]
subreddits = ["OpenAI"]
interval_minutes = {interval_minutes}
oauth_url = "{reddit_url}"
reddit_url = "{reddit_url}"

[bluesky]
enabled = {str(bluesky).lower()}
queries = ["sora leak"]
interval_minutes = {interval_minutes}
service_url = "{bluesky_url}"

[stance]
[[stance.targets]]
name = "openai"
description = "OpenAI"
[[stance.targets]]
name = "artists"
description = "the artists"

[schedule]
jitter_seconds = 0
shutdown_grace_seconds = 15
{extra}
""", encoding="utf-8")
    return path


def warehouse_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "leakwatch.duckdb"


def post(post_id: str, created: datetime, text: str = "hello", **fields) -> Post:
    platform = fields.pop("platform", "reddit")
    kind = fields.pop("kind", "submission" if platform == "reddit" else "post")
    return Post(platform=platform, post_id=post_id, kind=kind, created_at=created, text=text,
                matched_queries=("sora leak",), **fields)


def seed(path: Path, posts: list[Post], labels: dict[str, tuple[str, str]] | None = None,
         model_id: str = MODEL_ID) -> None:
    """Posts, and labels {post_id: (openai_label, artists_label)} from `model_id` (made current)."""
    with warehouse.writing(path) as con:
        warehouse.configure(con, TARGETS, model_id)
        warehouse.upsert_posts(con, posts, seen_at=datetime(2024, 12, 20, tzinfo=UTC))
        con.execute("INSERT OR IGNORE INTO models (model_id, backend, created_at) VALUES (?, 'test', now())",
                    [model_id])
        by_id = {p.post_id: p for p in posts}
        for post_id, pair in (labels or {}).items():
            p = by_id[post_id]
            for target, label in zip(TARGETS, pair, strict=True):
                probs = {"favor": 0.1, "against": 0.1, "none": 0.1}
                probs[label] = 0.8
                con.execute(
                    "INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'h', ?)",
                    [p.platform, p.post_id, target, model_id, label, probs["favor"], probs["against"],
                     probs["none"], datetime(2024, 12, 21, tzinfo=UTC)],
                )


def cli(config: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120,
        check: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "leakwatch", "--config", str(config), *args],
                            capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, result.stderr
    return result


def spawn(config: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "leakwatch", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
