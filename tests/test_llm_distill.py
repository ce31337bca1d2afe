"""Distillation: `leakwatch train --teacher llm:<model> --sample N` against the test LLM server, and
the sampling and agreement arithmetic behind it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import warehouse
from analysis.distill import Candidate, cohen_kappa, is_held_out, stratified_sample
from tests.conftest import query, run_cli, write_config
from tests.llm_server import LlmServer, label_for
from tests.test_llm_classify import env
from warehouse.records import Post


def test_stratified_sample_is_proportional_deterministic_and_skips_excluded():
    sizes = {("2024-W48", "reddit"): 50, ("2024-W48", "bluesky"): 30, ("2024-W49", "reddit"): 20}
    candidates = [Candidate((s[1], f"{s[0]}-{i}"), s) for s, n in sizes.items() for i in range(n)]
    excluded = {("reddit", "2024-W48-0"), ("reddit", "2024-W48-1")}
    sample = stratified_sample(candidates, 20, seed=5, excluded=excluded)
    assert len(sample) == len(set(sample)) == 20 and not set(sample) & excluded
    per_stratum = Counter((k[1][:8], k[0]) for k in sample)
    # 48 / 30 / 20 of 98 eligible posts -> quotas 9.8 / 6.1 / 4.1 -> 10 / 6 / 4 by largest remainder.
    assert per_stratum == {("2024-W48", "reddit"): 10, ("2024-W48", "bluesky"): 6, ("2024-W49", "reddit"): 4}
    assert stratified_sample(candidates, 20, seed=5, excluded=excluded) == sample
    assert stratified_sample(candidates, 20, seed=6, excluded=excluded) != sample
    assert len(stratified_sample(candidates, 1000)) == 100
    held = sum(is_held_out(c.key) for c in candidates)
    assert 10 <= held <= 30  # about 20%


def test_cohen_kappa_by_hand():
    a = ["favor", "favor", "against", "none", "none", "none"]
    b = ["favor", "against", "against", "none", "none", "favor"]
    # observed 4/6; expected: favor 2/6*2/6 + against 1/6*2/6 + none 3/6*2/6 = 12/36 -> (2/3 - 1/3) / (2/3) = 0.5
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    assert cohen_kappa(["none"] * 3, ["none"] * 3) is None


WORDS = ["pro-openai", "anti-openai", "pro-artists", "anti-artists", "pro-openai anti-artists",
         "anti-openai pro-artists", "nothing much"]


def test_train_with_a_teacher(tmp_path: Path):
    server = LlmServer().start()
    try:
        config = write_config(tmp_path, **{"stance.llm": {"base_url": server.url, "backoff_seconds": 0.01}})
        db = tmp_path / "data" / "leakwatch.duckdb"
        start = datetime(2024, 11, 26, 12, tzinfo=UTC)
        posts = [Post(platform=platform, post_id=f"{platform}-{i}", kind="post", matched_queries=("sora",),
                      created_at=start + timedelta(days=8 * (i % 2)),
                      text=f"post {platform} {i}: {WORDS[i % len(WORDS)]}")
                 for platform, count in (("reddit", 24), ("bluesky", 12)) for i in range(count)]
        coded = [("reddit", "reddit-0"), ("bluesky", "bluesky-1")]
        with warehouse.writing(db) as con:
            warehouse.upsert_posts(con, posts)
            for platform, post_id in coded:
                text = next(p.text for p in posts if p.post_id == post_id)
                for target in ("openai", "artists"):
                    con.execute("INSERT INTO annotations (platform, post_id, target, label, annotator, annotated_at) "
                                "VALUES (?, ?, ?, ?, 'coder1', now())",
                                [platform, post_id, target, label_for(text, target)])
        data = tmp_path / "small.csv"
        rows = ["id,platform,text,openai,artists,split"] + [
            f"s{i},reddit,example {i} {WORDS[i % 7]},{label_for(WORDS[i % 7], 'openai')},"
            f"{label_for(WORDS[i % 7], 'artists')},{'train' if i < 8 else 'validation' if i < 10 else 'test'}"
            for i in range(12)]
        data.write_text("\n".join(rows) + "\n", encoding="utf-8")

        result = run_cli(config, "train", "--teacher", "llm:test-model", "--sample", "20", "--data", str(data),
                         "--epochs", "1", env=env(), timeout=600)
        assert result.returncode == 0, result.stderr
        assert "student vs teacher (held out)" in result.stdout and "teacher vs coders" in result.stdout
        assert "train: saved minilm-stance-" in result.stdout
        asked = set(server.posts_asked())
        assert len(server.requests) == len(asked) == 22  # 20 sampled + the 2 coded posts, once each

        (card,), = query(db, "SELECT card FROM models WHERE backend = 'finetuned-minilm'")
        card = json.loads(card)
        d = card["distillation"]
        assert d["teacher"].startswith("llm-test-model-") and d["sampled"] == d["teacher_labelled"] == 20
        trained_on = set(d["train_post_ids"]) | set(d["held_out_post_ids"])
        assert len(trained_on) == 20 and d["train_posts"] + d["held_out_posts"] == 20
        assert not trained_on & {f"{p}:{i}" for p, i in coded}  # the coded sample never trains the student
        assert not set(d["train_post_ids"]) & set(d["held_out_post_ids"])
        weeks = Counter((i.split(":")[0], int(i.split("-")[-1]) % 2) for i in trained_on)
        assert len(weeks) == 4  # every week x platform stratum is represented
        assert card["data"]["train"] == 8 + d["train_posts"]
        assert d["teacher_vs_coders"]["openai"]["accuracy"] == 1.0  # the coders agree with this teacher
        assert d["student_vs_coders"]["openai"]["n"] == 2
        assert d["student_vs_teacher_held_out"]["artists"]["n"] == d["held_out_posts"]
        assert query(db, "SELECT purpose, status, posts FROM llm_runs") == [("distill", "ok", 22)]

        bad = run_cli(config, "train", "--teacher", "nli:x", "--sample", "5", env=env())
        assert bad.returncode == 1 and "the teacher is an LLM" in bad.stderr
    finally:
        server.stop()
