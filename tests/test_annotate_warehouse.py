"""Samples and annotations in a real DuckDB file, and the `annotate` / `validate` commands."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import duckdb
import pytest
from annotate_support import MODEL, build_warehouse, default_posts, make_post
from conftest import run_cli, write_config

import warehouse
from analysis.validation import human_correction, validation_report
from warehouse import annotations as store
from warehouse.schema import MIGRATIONS


@pytest.fixture
def coded(tmp_path: Path):
    """A warehouse with 24 labelled posts and a config pointing at it."""
    config = write_config(tmp_path)
    path = tmp_path / "data" / "leakwatch.duckdb"
    posts = default_posts()
    labels = {"openai": ["favor", "against", "none"] * 8, "artists": ["against", "favor", "none", "favor"] * 6}
    build_warehouse(path, posts, labels, certainty=[0.4 + 0.02 * i for i in range(24)])
    return config, path, posts


def test_migration_keeps_old_annotations_and_history(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description VARCHAR, "
                "applied_at TIMESTAMPTZ NOT NULL)")
    for version, description, sql in MIGRATIONS[:2]:
        con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, description])
    con.execute("INSERT INTO annotations VALUES ('reddit', 't3_a', 'openai', 'favor', 'ana', now(), 'old')")
    con.close()
    with warehouse.writing(path) as con:
        assert con.execute("SELECT annotation_id, sample_id, label, annotator, note FROM annotations").fetchall() \
            == [(1, None, "favor", "ana", "old")]
        # History: the same coder, post and target twice is two rows now.
        store.store_annotations(con, [store.Annotation("reddit", "t3_a", "openai", "against", "ana")])
        assert [h["label"] for h in store.annotation_history(con, "reddit", "t3_a")] == ["favor", "against"]
        assert [r["label"] for r in store.latest_annotations(con)] == ["against"]


def test_random_sample_cli_stratified_seeded_and_double_assigned(coded):
    config, path, posts = coded
    result = run_cli(config, "annotate", "sample", "--size", "10", "--kind", "random", "--seed", "5")
    assert result.returncode == 0, result.stderr
    assert "sample 1: 10 posts (random), 2 assigned to two coders" in result.stdout
    with warehouse.reading(path) as con:
        sample = store.get_sample(con, 1)
        rows = con.execute("SELECT platform, post_id, coders_needed, stratum FROM sample_posts ORDER BY position"
                           ).fetchall()
    assert sample.kind == "random" and sample.seed == 5 and sample.model_id == MODEL and sample.size == 10
    assert sample.query["size_asked"] == 10 and "ISO week" in sample.query["strata"]
    assert sum(r[2] == 2 for r in rows) == 2
    # Both platforms and several weeks are represented (24 posts over three weeks, half per platform).
    assert {r[0] for r in rows} == {"reddit", "bluesky"} and len({r[3].split()[0] for r in rows}) >= 2
    # The same seed on a copy of the same data draws the same posts: the sample is reproducible.
    from analysis.sampling import stratified_sample
    with warehouse.writing(path) as con:
        con.execute("DELETE FROM sample_posts")
        again = stratified_sample(store.random_candidates(con, None, None), 10, 5)
    assert [(p, i) for p, i, _ in again] == [(r[0], r[1]) for r in rows]


def test_active_sample_picks_least_certain_and_excludes_sampled(coded):
    config, path, posts = coded
    assert run_cli(config, "annotate", "sample", "--size", "4", "--kind", "random", "--seed", "1").returncode == 0
    result = run_cli(config, "annotate", "sample", "--size", "3", "--kind", "active", "--seed", "2")
    assert result.returncode == 0, result.stderr
    with warehouse.reading(path) as con:
        random_ids = {r[0] for r in con.execute("SELECT post_id FROM sample_posts WHERE sample_id = 1").fetchall()}
        active = con.execute("SELECT post_id, coders_needed, stratum FROM sample_posts WHERE sample_id = 2 "
                             "ORDER BY position").fetchall()
    assert not random_ids & {a[0] for a in active}
    # Certainty rises with the post number; post 3 (openai favor? no: index 3 -> favor, artists favor) puts
    # both targets on the same side, so it comes first; then the least certain of the rest.
    same_side = [i for i in range(24) if ["favor", "against", "none"][i % 3] == ["against", "favor", "none",
                 "favor"][i % 4] != "none" and posts[i].post_id not in random_ids]
    assert active[0][2].startswith("targets disagree") and active[0][0] == posts[same_side[0]].post_id
    assert all(a[1] == 1 for a in active)


def _code(con, sample_id, post, coder, openai, artists):
    store.store_annotations(con, [store.Annotation(post.platform, post.post_id, "openai", openai, coder, sample_id),
                                  store.Annotation(post.platform, post.post_id, "artists", artists, coder, sample_id)])


def test_gold_labels_majority_adjudication_and_validation(coded):
    config, path, posts = coded
    with warehouse.writing(path) as con:
        sample_id = store.create_sample(con, "random", 0, MODEL, {}, 0.5,
                                        [(p.platform, p.post_id, 2, None) for p in posts[:6]])
        # Model openai labels of posts 0-5: favor, against, none, favor, against, none.
        _code(con, sample_id, posts[0], "ana", "favor", "none")
        _code(con, sample_id, posts[0], "ben", "favor", "none")      # agree -> gold favor (model right)
        _code(con, sample_id, posts[1], "ana", "favor", "none")
        _code(con, sample_id, posts[1], "ben", "against", "none")    # disagree -> no gold ...
        _code(con, sample_id, posts[2], "ana", "against", "none")
        _code(con, sample_id, posts[2], "ana", "none", "none")       # recoded: the latest (none) counts
        _code(con, sample_id, posts[3], "ana", "unsure", "unsure")   # unsure: no gold
        _code(con, sample_id, posts[4], "ben", "favor", "none")      # model says against
        # ana coded positions 1-4; posts at 1 and 2 have their two coders, so cleo starts at 3.
        assert store.next_position(con, sample_id, "ana") == 5 and store.next_position(con, sample_id, "cleo") == 3
        gold = {(g["post_id"], g["target"]): g for g in store.gold_labels(con)}
        assert (posts[1].post_id, "openai") not in gold and (posts[3].post_id, "openai") not in gold
        assert gold[(posts[2].post_id, "openai")]["label"] == "none"
        store.store_annotations(con, [store.Annotation(posts[1].platform, posts[1].post_id, "openai", "against",
                                                       store.ADJUDICATOR, sample_id)])
        gold = {(g["post_id"], g["target"]): g for g in store.gold_labels(con)}
        assert gold[(posts[1].post_id, "openai")]["label"] == "against" and gold[(posts[1].post_id, "openai")][
            "adjudicated"]
        report = validation_report(con, ["openai", "artists"], samples=200)
        correction = human_correction(con, MODEL, ["openai", "artists"], min_n=4)
    # openai: gold favor/against/none/favor for posts 0, 1, 2, 4; model favor, against, none, against.
    # Confusion rows human: favor [1,1,0], against [0,1,0], none [0,0,1].  F1 favor = 2/(2+1) = 2/3,
    # F1 against = 2/(1+2) = 2/3, macro-F1 = 2/3, accuracy 3/4.
    openai = report["model_vs_humans"]["openai"]["overall"]
    assert openai["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    assert openai["macro_f1"]["value"] == pytest.approx(2 / 3) and openai["accuracy"]["value"] == 0.75
    # Agreement on openai: posts 0 (f,f) and 1 (f,a): o_ff = 2, o_fa = o_af = 1; n_f = 3, n_a = 1, n = 4;
    # D_o = 2/4, D_e = (16 - 9 - 1)/12 = 1/2 -> alpha = 0.
    assert report["agreement"]["openai"]["alpha"] == pytest.approx(0.0)
    assert report["coder_disagreements"] == [{"platform": posts[1].platform, "post_id": posts[1].post_id,
                                              "target": "openai", "coders": {"ana": "favor", "ben": "against"}}]
    assert correction["openai"]["confusion"] == openai["confusion"] and correction["openai"]["n"] == 4
    assert correction["openai"]["usable"] and "corrected with 4 human-coded posts, macro-F1 0.67" == \
        correction["openai"]["source"]


def test_export_import_round_trip_and_refusals(coded, tmp_path):
    config, path, posts = coded
    assert run_cli(config, "annotate", "sample", "--size", "3", "--seed", "3").returncode == 0
    out = tmp_path / "sample.csv"
    result = run_cli(config, "annotate", "export", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and rows[0]["openai"] == "" and rows[0]["artists"] == "" and rows[0]["text"]
    header = list(rows[0])

    def write(name, edited):
        file = tmp_path / name
        with file.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(edited[0]))
            writer.writeheader()
            writer.writerows(edited)
        return file

    bad = [dict(r) for r in rows]
    bad[0].update(openai="favour", artists="none", coder="ana")           # unknown label
    bad[1].update(openai="favor", coder="ana", post_id="t3_nothere")      # unknown post
    bad.append(dict(bad[0], openai="none"))                               # duplicate row
    result = run_cli(config, "annotate", "import", str(write("bad.csv", bad)))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert "nothing imported, 3 problem(s)" in lines[0]
    assert any("line 2: unknown label 'favour' for openai" in x for x in lines)
    assert any("line 3: unknown post" in x and "t3_nothere" in x for x in lines)
    assert any("line 5: duplicate row" in x and "first on line 2" in x for x in lines)
    extra = [dict(r, stance_x="") for r in rows]
    result = run_cli(config, "annotate", "import", str(write("extra.csv", extra)))
    assert result.returncode == 1 and "unknown target column(s) stance_x" in result.stderr
    with warehouse.reading(path) as con:
        assert con.execute("SELECT count(*) FROM annotations").fetchone()[0] == 0

    good = [dict(r) for r in rows]
    good[0].update(openai="against", artists="favor", coder="ana")
    good[1].update(openai="none", artists="none")  # coder from --coder
    result = run_cli(config, "annotate", "import", str(write("good.csv", good)), "--coder", "ben")
    assert result.returncode == 0, result.stderr
    assert "imported 4 annotations" in result.stdout
    with warehouse.reading(path) as con:
        stored = con.execute("SELECT post_id, target, label, annotator, sample_id, guideline_version FROM annotations "
                             "ORDER BY annotation_id").fetchall()
    assert {(s[0], s[1], s[2], s[3]) for s in stored} == {
        (rows[0]["post_id"], "openai", "against", "ana"), (rows[0]["post_id"], "artists", "favor", "ana"),
        (rows[1]["post_id"], "openai", "none", "ben"), (rows[1]["post_id"], "artists", "none", "ben")}
    assert all(s[4] == 1 and s[5].startswith("sha256:") for s in stored)
    assert header[:4] == ["sample_id", "position", "platform", "post_id"]


def test_validate_json_and_table(coded):
    config, path, posts = coded
    with warehouse.writing(path) as con:
        sample_id = store.create_sample(con, "random", 0, MODEL, {}, 0.0,
                                        [(p.platform, p.post_id, 1, None) for p in posts[:3]])
        for p, label in zip(posts[:3], ["favor", "favor", "none"], strict=True):
            _code(con, sample_id, p, "ana", label, "none")
    result = run_cli(config, "validate", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # openai: human favor, favor, none; model favor, against, none -> favor F1 2/3, against F1 0 -> macro 1/3.
    assert report["model_vs_humans"]["openai"]["overall"]["macro_f1"]["value"] == pytest.approx(1 / 3)
    table = run_cli(config, "validate")
    assert table.returncode == 0 and "Krippendorff" in table.stdout and "0.33" in table.stdout


def test_sample_errors_are_one_line(tmp_path):
    config = write_config(tmp_path)
    build_warehouse(tmp_path / "data" / "leakwatch.duckdb", [make_post(1)])
    result = run_cli(config, "annotate", "sample", "--size", "2", "--kind", "active")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no posts to sample" in result.stderr
    result = run_cli(config, "annotate", "export", "--sample", "9", "--out", str(tmp_path / "x.csv"))
    assert result.returncode == 1 and "there is no sample 9" in result.stderr
