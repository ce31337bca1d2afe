"""Test data for trends and report tests: posts, a model with metrics and labels, written straight
into a real DuckDB warehouse through the warehouse's own functions (no classifier needed)."""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb

import warehouse
from warehouse.records import Post

TARGETS = ["openai", "artists"]
MODEL = "test-model"
# rows = true label, columns = predicted, order favor, against, none (the evaluate format).
CONFUSION = {
    "openai": [[40, 5, 15], [4, 70, 16], [6, 14, 130]],
    "artists": [[60, 6, 14], [3, 30, 7], [10, 8, 112]],
}


def metrics(confusion: dict[str, list[list[int]]] = CONFUSION) -> dict:
    out = {}
    for target, matrix in confusion.items():
        n = sum(map(sum, matrix))
        out[target] = {"macro_f1": 0.7, "accuracy": sum(matrix[i][i] for i in range(3)) / n, "n": n,
                       "labels": ["favor", "against", "none"], "confusion": matrix, "data": "test set"}
    return out


def new_warehouse(
    path: Path, model_metrics: dict | None = None, model: str | None = MODEL
) -> duckdb.DuckDBPyConnection:
    con = warehouse.open_writer(path)
    warehouse.configure(con, TARGETS, model)
    if model:
        con.execute(
            "INSERT INTO models (model_id, backend, created_at, metrics) VALUES (?, 'test', now(), ?)",
            [model, None if model_metrics is None else json.dumps(model_metrics)],
        )
    return con


def add_post(
    con: duckdb.DuckDBPyConnection,
    platform: str,
    post_id: str,
    created_at: datetime,
    labels: dict[str, str],
    author: str | None = "someone",
    model: str = MODEL,
    likes: int = 0,
    text: str = "a post about sora",
) -> None:
    post = Post(platform=platform, post_id=post_id, kind="post" if platform == "bluesky" else "submission",
                created_at=created_at, text=text, author_id=author, author_handle=author,
                like_count=likes if platform == "bluesky" else None,
                score=likes if platform == "reddit" else None,
                url=f"https://example.org/{post_id}")
    warehouse.upsert_posts(con, [post])
    for target, label in labels.items():
        con.execute("INSERT INTO labels VALUES (?, ?, ?, ?, ?, 0.5, 0.3, 0.2, 'h', now())",
                    [platform, post_id, target, model, label])


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def demo_like(
    con: duckdb.DuckDBPyConnection, seed: int = 7, start: date = date(2024, 11, 18), days: int = 30, scale: int = 1
) -> int:
    """A month of plausible discourse around the leak: spikes on 11-26 and 12-09, stance drifting."""
    rng = random.Random(seed)
    posts = []
    labels = []
    count = 0
    for offset in range(days):
        day = start + timedelta(days=offset)
        spike = 8 if day == date(2024, 11, 26) else 4 if day == date(2024, 12, 9) else 1
        after_leak = day >= date(2024, 11, 26)
        for platform, base in (("reddit", 6 * scale), ("bluesky", 4 * scale)):
            if platform == "bluesky" and offset in (3, 4):  # an outage: no Bluesky posts on two days
                continue
            for _ in range(int(base * spike * rng.uniform(0.5, 1.5))):
                count += 1
                pid = f"{platform[0]}{count}"
                author = f"user{rng.randint(1, 60)}"
                created = datetime(day.year, day.month, day.day, rng.randint(0, 23), rng.randint(0, 59), tzinfo=UTC)
                likes = int(rng.paretovariate(1.2) * 3)
                posts.append(Post(platform=platform, post_id=pid, kind="post", created_at=created,
                                  text=f"post {pid} about the sora leak", author_id=author, author_handle=author,
                                  # engagement where each platform has it: Reddit's score, Bluesky's likes
                                  score=likes if platform == "reddit" else None,
                                  like_count=likes if platform == "bluesky" else None,
                                  url=f"https://example.org/{pid}"))
                p_against = 0.45 if after_leak else 0.25
                p_favor_artists = 0.5 if after_leak else 0.3
                o = rng.random()
                openai = "against" if o < p_against else "favor" if o < p_against + 0.2 else "none"
                a = rng.random()
                artists = "favor" if a < p_favor_artists else "against" if a < p_favor_artists + 0.1 else "none"
                labels += [(platform, pid, "openai", openai), (platform, pid, "artists", artists)]
    warehouse.upsert_posts(con, posts)
    con.executemany(f"INSERT INTO labels VALUES (?, ?, ?, '{MODEL}', ?, 0.5, 0.3, 0.2, 'h', now())", labels)
    return count
