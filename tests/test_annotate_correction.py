"""Trends correct shares with the human-coded random sample once it holds 100 posts per target."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest
from annotate_support import MODEL, build_warehouse, make_post

import warehouse
from analysis.trends import adjusted_shares, stance_trends
from warehouse import annotations as store
from warehouse.schema import MIGRATIONS

STORED = {"labels": ["favor", "against", "none"], "confusion": [[8, 1, 1], [1, 8, 1], [1, 1, 8]],
          "data": "test split of the bundled data"}


def _warehouse(tmp_path, coded: int):
    # 120 posts: the model says favor for 0-39, against for 40-79, none for 80-119.
    posts = [make_post(i, "reddit") for i in range(120)]
    model = ["favor"] * 40 + ["against"] * 40 + ["none"] * 40
    # The humans: of the model's favor posts, 30 are favor and 10 none; against all right; of the
    # none posts, 10 are against.
    human = ["favor"] * 30 + ["none"] * 10 + ["against"] * 40 + ["against"] * 10 + ["none"] * 30
    db = tmp_path / "w.duckdb"
    build_warehouse(db, posts, {"openai": model, "artists": model})
    with warehouse.writing(db) as con:
        warehouse.set_model_metrics(con, MODEL, {"openai": STORED, "artists": STORED})
        sample = store.create_sample(con, "random", 1, MODEL, {}, 0.0, [(p.platform, p.post_id, 1, None)
                                                                       for p in posts])
        store.store_annotations(con, [store.Annotation(p.platform, p.post_id, "openai", h, "ana", sample)
                                      for p, h in list(zip(posts, human, strict=True))[:coded]])
    return db, model, human


def test_human_confusion_used_from_100_posts(tmp_path):
    _warehouse_path = _warehouse(tmp_path, 120)
    db = _warehouse_path[0]
    with warehouse.reading(db) as con:
        table = stance_trends(con, period="week", platforms=["all"], targets=["openai"], bootstrap_samples=50)
    # Rows human, columns model: favor [30, 0, 0]; against [0, 40, 10]; none [10, 0, 30].
    # F1 favor = 2*30/(30+40) = 6/7; F1 against = 2*40/(50+40) = 8/9; macro = (6/7 + 8/9)/2 = 0.873.
    assert table.corrections == {"openai": "corrected with 120 human-coded posts, macro-F1 0.87"}
    human_matrix = np.array([[30, 0, 0], [0, 40, 10], [10, 0, 30]], dtype=float)
    checked = 0
    for row in table.rows:  # each week's adjusted share is the one from the human matrix
        c = np.array([row["favor"], row["against"], row["none"]], dtype=float)
        if c.sum():
            assert row["adjusted_share_favor"] == pytest.approx(adjusted_shares(c, human_matrix)[0])
            checked += 1
    assert checked >= 2


def test_fallback_below_100_says_which_evaluation(tmp_path):
    db, _, _ = _warehouse(tmp_path, 99)
    with warehouse.reading(db) as con:
        table = stance_trends(con, period="week", platforms=["all"], bootstrap_samples=50)
    # The stored evaluation has 30 posts: the fallback says so rather than passing it off as solid.
    assert table.corrections["openai"] == ("corrected with test split of the bundled data (n = 30), since 99 "
                                           "human-coded posts (fewer than 100); that evaluation has fewer than "
                                           "100 labelled posts, so the correction is itself uncertain")
    assert "0 human-coded posts" in table.corrections["artists"]
    stored = np.array(STORED["confusion"], dtype=float)
    row = next(r for r in table.rows if r["target"] == "openai" and r["posts"])
    c = np.array([row["favor"], row["against"], row["none"]], dtype=float)
    assert row["adjusted_share_favor"] == pytest.approx(adjusted_shares(c, stored)[0])


def test_the_annotations_migration_applied_twice_keeps_annotations(tmp_path):
    db, _, _ = _warehouse(tmp_path, 5)
    con = duckdb.connect(str(db))
    before = con.execute("SELECT * FROM annotations ORDER BY annotation_id").fetchall()
    [sql] = [sql for _, title, sql in MIGRATIONS if title.startswith("human coding")]
    con.execute(sql)
    assert con.execute("SELECT * FROM annotations ORDER BY annotation_id").fetchall() == before
    assert json.loads(con.execute("SELECT query FROM samples").fetchone()[0]) == {}
    con.close()


def test_every_evaluation_is_kept_and_the_latest_is_current(tmp_path):
    from trends_data import MODEL, new_warehouse
    from trends_data import metrics as stored_metrics

    con = new_warehouse(tmp_path / "w.duckdb", None)
    first = stored_metrics()
    second = {t: {**m, "data": "dev.csv (sha256 0123456789abcdef)", "n": 360} for t, m in first.items()}
    warehouse.set_model_metrics(con, MODEL, first)
    warehouse.set_model_metrics(con, MODEL, second)
    history = warehouse.evaluations(con, MODEL)
    assert [h["dataset"] for h in history] == ["dev.csv (sha256 0123456789abcdef)", "test set"]
    assert history[0]["dataset_sha256"] == "0123456789abcdef" and history[1]["dataset_sha256"] is None
    assert json.loads(history[1]["n"]) == {t: m["n"] for t, m in first.items()}
    assert json.loads(warehouse.model_metrics(con, MODEL)) == second  # the latest is the one corrections use
    con.close()


def test_the_report_and_the_export_manifest_say_which_evaluation_corrected(tmp_path):
    from analysis import report
    from analysis.export.weekly import ExportJob, export_weeks

    db, _, _ = _warehouse(tmp_path, 120)
    with warehouse.reading(db) as con:
        data = report.gather(con, period="week", bootstrap_samples=50)
    page = report.write_report(data, tmp_path / "report").read_text(encoding="utf-8")
    assert "openai: corrected with 120 human-coded posts, macro-F1 0.87" in page
    assert "artists: corrected with test split of the bundled data (n = 30)" in page
    from datetime import UTC, datetime

    export_weeks(ExportJob(db, tmp_path / "exports", datetime.now(UTC), bootstrap_samples=50), None)
    [manifest_path] = sorted((tmp_path / "exports").glob("*/manifest.json"))[:1]
    manifest = json.loads(manifest_path.read_text())
    assert manifest["adjusted_shares"]["openai"] == "corrected with 120 human-coded posts, macro-F1 0.87"
