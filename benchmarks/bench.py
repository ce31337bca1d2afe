"""Speed measurements for leakwatch's targets. Prints figures; asserts nothing about time.

    python benchmarks/bench.py                 # every benchmark
    python benchmarks/bench.py --only upsert   # one of them

Each benchmark is a function registered in BENCHMARKS that returns a dict of named figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
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


@benchmark("reddit")
def bench_reddit_collect(n: int = 100_000) -> dict[str, float]:
    """Reddit collection end to end (praw → loopback HTTP → normalize → DuckDB) on a generated corpus
    of `n` items (~55% Reddit): a first pass over the default queries and subreddits, then a pass
    with nothing new. Also pure normalization speed."""
    import os
    from collections import Counter

    from collectors.reddit import RedditCollector, api_fields, normalize
    from collectors.replay.corpus import REDDIT_DEFAULT_QUERIES, SUBREDDITS, generate_corpus
    from collectors.replay.reddit_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RedditReplayServer
    from leakwatch.collect import run_collection
    from leakwatch.config import load_config

    t0 = time.perf_counter()
    items = generate_corpus(n, seed=7)
    generated = time.perf_counter() - t0
    os.environ.update(REDDIT_CLIENT_ID=DEFAULT_CLIENT_ID, REDDIT_CLIENT_SECRET=DEFAULT_CLIENT_SECRET,
                      REDDIT_USER_AGENT="leakwatch-bench/0.1")
    with tempfile.TemporaryDirectory() as tmp, RedditReplayServer(items) as server:
        config_path = Path(tmp) / "leakwatch.toml"
        config_path.write_text(
            'data_dir = "data"\n[reddit]\n'
            f"queries = {json.dumps(list(REDDIT_DEFAULT_QUERIES))}\n"
            f"subreddits = {json.dumps(['all', *SUBREDDITS])}\n"
            f'oauth_url = "{server.url}"\nreddit_url = "{server.url}"\nrefresh_days = 0\n'
            '[bluesky]\nqueries = ["x"]\n[stance]\n[[stance.targets]]\nname = "openai"\ndescription = "OpenAI"\n',
            encoding="utf-8")
        config = load_config(config_path)
        t1 = time.perf_counter()
        first = run_collection(config, RedditCollector.from_config(config, clock=lambda: server.now))
        t2 = time.perf_counter()
        requests = len(server.requests)
        second = run_collection(config, RedditCollector.from_config(config, clock=lambda: server.now))
        t3 = time.perf_counter()
        if first.status != "ok" or second.inserted or second.updated:
            raise RuntimeError(f"reddit benchmark did not collect as expected: {first} {second}")
        # Normalization alone, on the API fields praw built for one big thread.
        threads = Counter(i.root_id for i in items if i.platform == "reddit" and i.kind == "comment")
        biggest = threads.most_common(1)[0][0]
        reddit = RedditCollector.from_config(config).reddit
        submission = reddit.submission(id=biggest)
        submission.comments.replace_more(limit=None)
        fields = [api_fields(c) for c in submission.comments.list()] * 50
        t4 = time.perf_counter()
        for data in fields:
            normalize(data, ("sora leak",))
        t5 = time.perf_counter()
    return {
        "corpus_items": n,
        "corpus_reddit_items": sum(1 for i in items if i.platform == "reddit"),
        "generate_s": round(generated, 1),
        "first_pass_posts": first.inserted,
        "first_pass_requests": requests,
        "first_pass_s": round(t2 - t1, 1),
        "first_pass_posts_per_s": round(first.inserted / (t2 - t1)),
        "first_pass_caps_hit": first.caps_hit,
        "second_pass_s": round(t3 - t2, 2),
        "normalize_items_per_s": round(len(fields) / (t5 - t4)),
    }


def _generate_labelled_posts(con, n: int, model: str = "bench-model") -> None:
    """n posts over 20 weeks on two platforms, 50k authors, labels for two targets; all in SQL."""
    warehouse.configure(con, ["openai", "artists"], model)
    con.execute("INSERT INTO models (model_id, backend, created_at) VALUES (?, 'bench', now())", [model])
    con.execute(
        """
        INSERT INTO posts (platform, post_id, kind, author_id, text, created_at, first_seen_at, last_seen_at,
                           like_count, matched_queries, content_hash)
        SELECT CASE WHEN hash(i, 1) % 3 = 0 THEN 'bluesky' ELSE 'reddit' END,
               'p' || i, 'post', 'u' || (hash(i, 2) % 50000), 'text ' || i,
               TIMESTAMPTZ '2024-11-01 00:00:00+00' + to_seconds(CAST(hash(i, 3) % (140 * 86400) AS BIGINT)),
               now(), now(), hash(i, 4) % 100, ['sora'], 'h'
        FROM range(?) t(i)""",
        [n],
    )
    con.execute(
        """
        INSERT INTO labels
        SELECT platform, post_id, target, ?,
               ['favor', 'against', 'none'][CAST(hash(post_id, target) % 3 AS INTEGER) + 1],
               0.3, 0.3, 0.4, 'h', now()
        FROM posts, (VALUES ('openai'), ('artists')) v(target)""",
        [model],
    )


@benchmark("stance_weekly")
def bench_stance_weekly(n: int = 1_000_000, repeats: int = 5) -> dict[str, float]:
    """`SELECT * FROM stance_weekly` over 1,000,000 labelled posts, read-only (target: under 1 s)."""
    figures: dict[str, float] = {"posts": n, "labels": 2 * n}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        con = warehouse.open_writer(path)
        t0 = time.perf_counter()
        _generate_labelled_posts(con, n)
        con.execute("CHECKPOINT")
        figures["generate_seconds"] = round(time.perf_counter() - t0, 1)
        con.close()
        with warehouse.reading(path) as reader:
            for view in ("stance_weekly", "stance_weekly_authors", "stance_daily"):
                times = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    rows = reader.execute(f"SELECT * FROM {view}").fetchall()
                    times.append(time.perf_counter() - start)
                figures[f"{view}_rows"] = len(rows)
                figures[f"{view}_median_seconds"] = round(statistics.median(times), 3)
                figures[f"{view}_best_seconds"] = round(min(times), 3)
    return figures


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
