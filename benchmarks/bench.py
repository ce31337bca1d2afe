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

    from collectors.reddit import normalize
    from collectors.replay.corpus import REDDIT_DEFAULT_QUERIES, SUBREDDITS, generate_corpus
    from collectors.replay.reddit_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RedditReplayServer
    from leakwatch.collect import make_collector, run_collection
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
        first = run_collection(config, make_collector(config, "reddit", clock=lambda: server.now))
        t2 = time.perf_counter()
        requests = len(server.requests)
        second = run_collection(config, make_collector(config, "reddit", clock=lambda: server.now))
        t3 = time.perf_counter()
        if first.status != "ok" or second.inserted or second.updated:
            raise RuntimeError(f"reddit benchmark did not collect as expected: {first} {second}")
        # Normalization alone, on the comment JSON of one big thread as praw receives it.
        threads = Counter(i.root_id for i in items if i.platform == "reddit" and i.kind == "comment")
        biggest = threads.most_common(1)[0][0]
        reddit = make_collector(config, "reddit").reddit
        answer = reddit.request(method="GET", path=f"comments/{biggest}/", params={"sort": "old", "limit": 500})
        fields, stack = [], list(answer[1]["data"]["children"])
        while stack:
            thing = stack.pop()
            if thing["kind"] == "t1":
                fields.append(thing["data"])
                if thing["data"].get("replies"):
                    stack.extend(thing["data"]["replies"]["data"]["children"])
        fields *= 50
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


@benchmark("bluesky")
def bench_bluesky_collect(n: int = 40_000) -> dict[str, float]:
    """Bluesky collection end to end (atproto → loopback HTTP → normalize → DuckDB) on a generated corpus
    of `n` items (~45% Bluesky): a first pass over the default queries with reply threads, then a pass
    with nothing new. Also pure normalization speed on the postViews the server renders."""
    from collectors.bluesky import BlueskyCollector, BlueskyOptions
    from collectors.bluesky_normalize import normalize_post
    from collectors.replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE, BlueskyReplay
    from collectors.replay.corpus import BLUESKY_DEFAULT_QUERIES, generate_corpus
    from leakwatch.collect import run_collection
    from leakwatch.config import load_config

    items = generate_corpus(n, seed=11)
    with tempfile.TemporaryDirectory() as tmp, BlueskyReplay(items) as server:
        config_path = Path(tmp) / "leakwatch.toml"
        config_path.write_text(
            'data_dir = "data"\n[reddit]\nenabled = false\nqueries = ["x"]\nsubreddits = ["all"]\n'
            f'[bluesky]\nqueries = {json.dumps(list(BLUESKY_DEFAULT_QUERIES))}\nservice_url = "{server.url}"\n'
            '[stance]\n[[stance.targets]]\nname = "openai"\ndescription = "OpenAI"\n', encoding="utf-8")
        config = load_config(config_path)
        options = BlueskyOptions(service_url=server.url, queries=list(BLUESKY_DEFAULT_QUERIES),
                                 start=datetime(2024, 11, 1, tzinfo=UTC))

        def collector() -> BlueskyCollector:
            return BlueskyCollector(options, DEMO_HANDLE, DEMO_APP_PASSWORD)

        t1 = time.perf_counter()
        first = run_collection(config, collector())
        t2 = time.perf_counter()
        requests = len(server.requests)
        second = run_collection(config, collector())
        t3 = time.perf_counter()
        if first.status != "ok" or second.status != "ok" or second.inserted:
            raise RuntimeError(f"bluesky benchmark did not collect as expected: {first} {second}")
        views = [server.post_view(i) for i in server.items[:2000]] * 10
        t4 = time.perf_counter()
        for view in views:
            normalize_post(view, ("sora leak",))
        t5 = time.perf_counter()
    return {
        "corpus_bluesky_items": len(server.items),
        "first_pass_posts": first.inserted,
        "first_pass_requests": requests,
        "first_pass_s": round(t2 - t1, 1),
        "first_pass_posts_per_s": round(first.inserted / (t2 - t1)),
        "second_pass_s": round(t3 - t2, 2),
        "second_pass_requests": len(server.requests) - requests,
        "normalize_items_per_s": round(len(views) / (t5 - t4)),
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


@benchmark("export")
def bench_export(n: int = 200_000) -> dict[str, float]:
    """`leakwatch export` of every complete week: 200,000 labelled posts over 20 weeks, to CSV."""
    from leakwatch.config import default_config_text, parse_config
    from leakwatch.export import export_weeks

    figures: dict[str, float] = {"posts": n}
    with tempfile.TemporaryDirectory() as tmp:
        config = parse_config(default_config_text(), "bench config", Path(tmp))
        con = warehouse.open_writer(config.warehouse_path)
        _generate_labelled_posts(con, n)
        con.close()
        started = time.perf_counter()
        weeks = export_weeks(config)
        seconds = time.perf_counter() - started
        figures["weeks"] = len(weeks)
        figures["exported_posts"] = sum(w.posts for w in weeks)
        figures["export_seconds"] = round(seconds, 2)
        figures["posts_per_s"] = round(figures["exported_posts"] / seconds)
        figures["csv_megabytes"] = round(sum(f.stat().st_size for f in Path(config.export_dir).rglob("*.csv")) / 1e6, 1)
    return figures
def realistic_posts(n: int, tokenizer, seed: int = 5, long_share: float = 0.05, window: int = 128) -> list[str]:
    """n posts of realistic length, built by joining generated corpus texts: 95% between 8 tokens and
    the window (skewed short, mean about 62 tokens), `long_share` past it (130 to 1,200 tokens, mean
    about 436), so the mean is near 80 tokens, as the issue asks of real comments and posts (several
    sentences, some of several paragraphs). The benchmark prints the measured mean and share."""
    from collectors.replay.corpus import generate_corpus

    rng = random.Random(seed)
    pieces = [i.text for i in generate_corpus(4000, seed=seed)]
    piece_tokens = [len(ids) for ids in tokenizer(pieces, add_special_tokens=False)["input_ids"]]
    posts = []
    for _ in range(n):
        if rng.random() < long_share:
            want = int(130 + rng.betavariate(1.2, 3.0) * 1070)
        else:
            want = int(8 + rng.betavariate(2.0, 2.4) * (window - 10))
        parts, tokens = [], 0
        while tokens < want:
            k = rng.randrange(len(pieces))
            parts.append(pieces[k])
            tokens += piece_tokens[k]
        text = " ".join(parts)
        words = text.split()
        while tokens > want + 2 and len(words) > 4:  # trim whole words back toward the length drawn
            words = words[: max(4, int(len(words) * want / tokens))]
            tokens = len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"])
        posts.append(" ".join(words))
    return posts


def _default_model_folder(tmp: str) -> Path:
    """The real default model: trained once per machine, then reused from the user cache."""
    from rich.console import Console

    from leakwatch.config import default_config_text, parse_config
    from leakwatch.training import ensure_default_model

    config = parse_config(default_config_text(), "bench config", Path(tmp))
    model_id = ensure_default_model(config, Console(stderr=True))
    return config.models_dir / model_id


@benchmark("classify")
def bench_classify(n: int = 2000, naive_sample: int = 50, threads: int = 2) -> dict[str, float]:
    """Posts labelled per second for every target on posts of realistic length (mean near 80 tokens,
    5% past the 128-token window, read whole), at the default precision ("auto": bf16 only where the
    one-off probe found it faster), in bf16 and in fp32; against a naive baseline: one `pipeline()`
    call per post per target (truncated to the window), on a sample."""
    import os

    import torch
    from transformers import pipeline

    from analysis.stance import FineTunedStance

    torch.set_num_threads(threads)
    n = int(os.environ.get("LEAKWATCH_BENCH_POSTS") or n)  # fewer on a busy machine
    with tempfile.TemporaryDirectory() as tmp:
        # LEAKWATCH_BENCH_MODEL: a trained model folder to time instead of the default model.
        folder = Path(os.environ.get("LEAKWATCH_BENCH_MODEL") or _default_model_folder(tmp))
        backends = {name: FineTunedStance.load(folder, batch_size=64, precision=name)
                    for name in ("auto", "bf16", "fp32", "int8")}
    auto = backends["auto"]
    texts = realistic_posts(n, auto.tokenizer, window=auto.max_length)
    targets = auto.targets
    lengths = [len(ids) + 2 for ids in auto.tokenize(texts)]
    chunks = auto.chunks(auto.tokenize(texts))

    def timed(model: FineTunedStance) -> tuple[float, dict]:
        model.predict(texts[:64])  # warm-up (and, for auto, the precision probe)
        start = time.perf_counter()
        out = model.predict(texts)
        return time.perf_counter() - start, out

    figures: dict[str, float] = {"model": folder.name, "posts": n, "targets": len(targets),
                                 "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    results = {}
    for name in ("fp32", "bf16", "int8", "auto"):
        seconds, results[name] = timed(backends[name])
        figures[f"{name}_posts_per_s"] = round(n / seconds, 1)
    figures["auto_chose"] = "bf16" if auto.bf16 else "fp32"
    if any(p.shape != (n, 3) for p in results["auto"].values()):
        raise RuntimeError("classify benchmark: wrong output shape")
    for name in ("bf16", "int8"):
        figures[f"{name}_label_agreement_with_fp32"] = round(min(
            float((results[name][t].argmax(1) == results["fp32"][t].argmax(1)).mean()) for t in targets), 4)

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity(hf_logging.CRITICAL)  # "not a listed model class" is expected here
    fp32 = backends["fp32"]
    naive = pipeline("text-classification", model=fp32.model, tokenizer=fp32.tokenizer,
                     top_k=None, function_to_apply="none", truncation=True, max_length=fp32.max_length)
    sample = texts[:naive_sample]
    t1 = time.perf_counter()
    for text in sample:
        for target in targets:  # one call per post and target, the head of that target read
            scores = naive(text)
            scores = scores[0] if scores and isinstance(scores[0], list) else scores
            if not [s for s in scores if s["label"].startswith(f"{target}:")]:
                raise RuntimeError(f"naive pipeline returned no {target} scores")
    naive_rate = len(sample) / (time.perf_counter() - t1)

    config = auto.model.config
    d, layers, ffn = config.hidden_size, config.num_hidden_layers, config.intermediate_size

    def macs(tokens: float) -> float:
        # Per layer: Q, K, V, O projections, the feed-forward pair, attention scores and mixing.
        return layers * (4 * tokens * d * d + 2 * tokens * d * ffn + 2 * tokens * tokens * d)

    mean_macs = sum(macs(len(c.ids)) for c in chunks) / n
    best = max(figures["fp32_posts_per_s"], figures["bf16_posts_per_s"])
    figures.update({
        "naive_sample_posts": len(sample),
        "naive_posts_per_s": round(naive_rate, 1),
        "speedup_auto_vs_naive": round(figures["auto_posts_per_s"] / naive_rate, 1),
        "mean_tokens_per_post": round(statistics.mean(lengths), 1),
        "median_tokens_per_post": statistics.median(lengths),
        "share_past_window": round(sum(t > auto.max_length for t in lengths) / n, 3),
        "max_tokens_per_post": max(lengths),
        "chunks_per_post": round(len(chunks) / n, 3),
        "gmacs_per_post_mean": round(mean_macs / 1e9, 3),
        "achieved_gflops_per_s_best": round(2 * mean_macs * best / 1e9, 1),
    })
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
