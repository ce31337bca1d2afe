"""`leakwatch train --with-annotations`: active samples' coded posts join the training data."""

from __future__ import annotations

import json

from annotate_support import MODEL, build_warehouse, default_posts
from conftest import cli_env, run_cli, write_config

import warehouse
from warehouse import annotations as store


def test_train_with_annotations_adds_active_never_random(tmp_path):
    config = write_config(tmp_path)
    db = tmp_path / "data" / "leakwatch.duckdb"
    posts = default_posts(12)
    build_warehouse(db, posts, {"openai": ["favor", "against", "none"] * 4, "artists": ["none"] * 12},
                    certainty=[0.5] * 12)
    nothing_coded = run_cli(config, "train", "--with-annotations", "--epochs", "1", "--limit", "4")
    assert nothing_coded.returncode == 1 and "Traceback" not in nothing_coded.stderr
    assert "no coded posts in active samples yet" in nothing_coded.stderr
    assert run_cli(config, "annotate", "sample", "--size", "4", "--kind", "random", "--seed", "1").returncode == 0
    assert run_cli(config, "annotate", "sample", "--size", "3", "--kind", "active", "--seed", "1").returncode == 0
    with warehouse.writing(db) as con:
        for sample_id in (1, 2):
            for p in store.sample_posts(con, sample_id):
                store.store_annotations(con, [store.Annotation(p.platform, p.post_id, t, "against", "ana", sample_id)
                                              for t in ("openai", "artists")])
        # An active post coded for one target only has no complete label set: left out.
        sampled = {r[0] for r in con.execute("SELECT post_id FROM sample_posts").fetchall()}
        other = next(p for p in posts if p.post_id not in sampled)
        extra = store.create_sample(con, "active", 9, MODEL, {}, 0.0, [(other.platform, other.post_id, 1, None)])
        store.store_annotations(con, [store.Annotation(other.platform, other.post_id, "openai", "favor", "ana",
                                                       extra)])
    env = cli_env({"HF_HUB_OFFLINE": "1"})
    result = run_cli(config, "train", "--with-annotations", "--epochs", "1", "--limit", "4", env=env, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "adding 3 human-coded posts of active sample(s) [2]" in result.stderr
    with warehouse.reading(db) as con:
        card = json.loads(con.execute("SELECT card FROM models WHERE model_id <> ? ORDER BY created_at DESC LIMIT 1",
                                      [MODEL]).fetchone()[0])
    assert card["data"]["annotations"]["active_annotations"] == 3
    assert card["data"]["annotations"]["samples"] == [2] and card["data"]["annotations"]["left_out"] == 1
    assert "3 coded posts of active sample(s) 2" in card["data"]["source"]
    assert card["data"]["train"] == 4  # --limit 4 kept the three coded posts (they come first)
