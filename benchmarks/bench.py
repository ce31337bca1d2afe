"""Speed measurements for leakwatch. Prints figures; never asserts timings.

    python benchmarks/bench.py                  # every benchmark
    python benchmarks/bench.py --only stance_weekly
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import warehouse  # noqa: E402


def _timed(run: Callable[[], object], repeats: int) -> tuple[list[float], object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return times, result


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


def bench_stance_weekly(repeats: int = 5, n: int = 1_000_000) -> None:
    """`SELECT * FROM stance_weekly` over 1,000,000 labelled posts (target: under 1 second)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.duckdb"
        con = warehouse.open_writer(path)
        start = time.perf_counter()
        _generate_labelled_posts(con, n)
        con.execute("CHECKPOINT")
        print(f"stance_weekly: generated {n:,} posts and {2 * n:,} labels in {time.perf_counter() - start:.1f}s")
        con.close()
        with warehouse.reading(path) as reader:
            for view in ("stance_weekly", "stance_weekly_authors", "stance_daily"):
                times, rows = _timed(lambda v=view: reader.execute(f"SELECT * FROM {v}").fetchall(), repeats)
                print(f"{view}: {len(rows):,} rows; median {statistics.median(times):.3f}s, "
                      f"best {min(times):.3f}s over {repeats} runs"
                      + ("  (target < 1 s)" if view == "stance_weekly" else ""))


BENCHMARKS: dict[str, Callable[[], None]] = {
    "stance_weekly": bench_stance_weekly,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append",
                        help="Run only this benchmark (repeatable).")
    args = parser.parse_args()
    for name in args.only or BENCHMARKS:
        BENCHMARKS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
