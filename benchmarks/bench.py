"""Speed measurements for leakwatch's targets. Prints figures; asserts nothing about time.

    python benchmarks/bench.py                 # every benchmark
    python benchmarks/bench.py --only upsert   # one of them

Each benchmark is a function registered in BENCHMARKS that returns a dict of named figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import warehouse  # noqa: E402
from warehouse.records import Post  # noqa: E402

BENCHMARKS: dict[str, Callable[[], dict[str, float]]] = {}


def benchmark(name: str):
    def register(fn: Callable[[], dict[str, float]]) -> Callable[[], dict[str, float]]:
        BENCHMARKS[name] = fn
        return fn

    return register


def _synthetic_posts(n: int, seed: int = 0) -> list[Post]:
    """Reddit-shaped posts with realistic text lengths; half submissions, half comments."""
    rng = random.Random(seed)
    words = ("sora openai artists leak unpaid art washing testers video model hugging face "
             "access protest company pay jobs secrecy release demo clip").split()
    start = datetime(2024, 11, 26, tzinfo=UTC)
    posts = []
    for i in range(n):
        submission = i % 2 == 0
        text = " ".join(rng.choices(words, k=rng.randint(8, 60)))
        posts.append(Post(
            platform="reddit",
            post_id=f"t3_{i:x}" if submission else f"t1_{i:x}",
            kind="submission" if submission else "comment",
            created_at=start + timedelta(seconds=rng.randint(0, 35 * 86400)),
            text=text,
            title=text[:80] if submission else None,
            thread_id=None if submission else f"t3_{i - 1:x}",
            parent_id=None if submission else f"t3_{i - 1:x}",
            community=rng.choice(["OpenAI", "aiwars", "ArtistHate", "vfx"]),
            author_id=f"user{rng.randint(0, n // 20)}",
            author_handle=f"user{rng.randint(0, n // 20)}",
            score=rng.randint(-5, 500),
            reply_count=rng.randint(0, 50),
            matched_queries=("sora leak",),
            raw={"id": f"{i:x}", "score": 1},
        ))
    return posts


@benchmark("upsert")
def bench_upsert(n: int = 100_000) -> dict[str, float]:
    """Posts upserted per second into a DuckDB file: first insert, then the same posts again."""
    posts = _synthetic_posts(n)
    with tempfile.TemporaryDirectory() as tmp:
        con = warehouse.open_writer(Path(tmp) / "bench.duckdb")
        t0 = time.perf_counter()
        first = warehouse.upsert_posts(con, posts)
        t1 = time.perf_counter()
        again = warehouse.upsert_posts(con, posts)
        t2 = time.perf_counter()
        # A refresh where every post's score moved and one in ten was edited.
        refreshed = [replace(p, score=(p.score or 0) + 1, text=p.text + " (edited)" if i % 10 == 0 else p.text)
                     for i, p in enumerate(posts)]
        t3 = time.perf_counter()
        changed = warehouse.upsert_posts(con, refreshed)
        t4 = time.perf_counter()
        con.close()
    if not (first.inserted == n and again.inserted == again.updated == 0 and changed.updated == n):
        raise RuntimeError(f"upsert benchmark did not upsert as expected: {first} {again} {changed}")
    return {
        "posts": n,
        "first_insert_posts_per_s": round(n / (t1 - t0)),
        "reinsert_posts_per_s": round(n / (t2 - t1)),
        "refresh_all_scores_10pct_edited_posts_per_s": round(n / (t4 - t3)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append",
                        help="run just this benchmark (repeatable)")
    args = parser.parse_args()
    for name in args.only or list(BENCHMARKS):
        started = time.perf_counter()
        figures = BENCHMARKS[name]()
        figures["wall_seconds"] = round(time.perf_counter() - started, 1)
        print(json.dumps({"benchmark": name, **figures}), flush=True)


if __name__ == "__main__":
    main()
