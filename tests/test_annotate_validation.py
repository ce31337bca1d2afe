"""Agreement and validation figures against values computed by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analysis.sampling import allocate, double_coded, stratified_sample
from analysis.validation import agreement, krippendorff_alpha, model_metrics, model_vs_humans


def test_alpha_two_coders_by_hand():
    # Four posts, two coders each: (f,f) (a,a) (f,n) (n,n).
    # Coincidences (each pair counts 1/(m-1) = 1, both orders): o_ff = 2, o_aa = 2, o_nn = 2, o_fn = o_nf = 1.
    # n_f = 3, n_a = 2, n_n = 3, n = 8.  D_o = 2/8 = 0.25.  D_e = (64 - 9 - 4 - 9) / (8*7) = 42/56 = 0.75.
    # alpha = 1 - 0.25/0.75 = 2/3.
    units = [["favor", "favor"], ["against", "against"], ["favor", "none"], ["none", "none"]]
    assert krippendorff_alpha(units) == pytest.approx(2 / 3)


def test_alpha_three_coders_and_unpairable_units_by_hand():
    # (f,f,a): six ordered pairs, each 1/(3-1) = 1/2: o_ff = 2 * 1/2 = 1, o_fa = 1, o_af = 1.
    # (a,a): o_aa += 2.  The single-value unit (n) is not pairable and is left out.
    # n_f = 2, n_a = 3, n = 5.  D_o = 2/5.  D_e = (25 - 4 - 9) / (5*4) = 12/20 = 3/5.  alpha = 1 - (2/5)/(3/5) = 1/3.
    units = [["favor", "favor", "against"], ["against", "against"], ["none"]]
    assert krippendorff_alpha(units) == pytest.approx(1 / 3)


def test_alpha_perfect_and_undefined():
    assert krippendorff_alpha([["favor", "favor"], ["none", "none"]]) == pytest.approx(1.0)
    assert krippendorff_alpha([["none", "none"], ["none", "none"]]) is None  # no variation
    assert krippendorff_alpha([["favor"]]) is None  # nothing pairable


def test_agreement_ignores_unsure_and_single_coded_posts():
    rows = [
        {"platform": "reddit", "post_id": "a", "target": "openai", "label": "favor", "annotator": "ana"},
        {"platform": "reddit", "post_id": "a", "target": "openai", "label": "favor", "annotator": "ben"},
        {"platform": "reddit", "post_id": "b", "target": "openai", "label": "none", "annotator": "ana"},
        {"platform": "reddit", "post_id": "b", "target": "openai", "label": "against", "annotator": "ben"},
        {"platform": "reddit", "post_id": "c", "target": "openai", "label": "unsure", "annotator": "ana"},
        {"platform": "reddit", "post_id": "c", "target": "openai", "label": "favor", "annotator": "ben"},
        {"platform": "reddit", "post_id": "d", "target": "openai", "label": "favor", "annotator": "ana"},
    ]
    result = agreement(rows, ["openai"])["openai"]
    # Pairable posts a (f,f) and b (n,a): o_ff = 2, o_na = o_an = 1; n_f = 2, n_n = 1, n_a = 1, n = 4.
    # D_o = 2/4; D_e = (16 - 4 - 1 - 1) / 12 = 10/12; alpha = 1 - 0.5 / (10/12) = 1 - 0.6 = 0.4.
    assert result["posts"] == 2 and result["percent_agreement"] == 0.5
    assert result["alpha"] == pytest.approx(0.4)


HUMAN = ["favor", "favor", "against", "against", "none", "none"]
MODEL = ["favor", "against", "against", "against", "none", "favor"]


def test_model_metrics_by_hand():
    # Confusion (rows human favor/against/none, columns model): [[1,1,0],[0,2,0],[1,0,1]].
    # favor: TP 1, predicted 2, actual 2 -> P = R = 1/2, F1 = 1/2.
    # against: TP 2, predicted 3, actual 2 -> P = 2/3, R = 1, F1 = 2*(2/3)/(5/3) = 4/5.
    # none: TP 1, predicted 1, actual 2 -> F1 = 2/3.  macro-F1 (favor, against) = (1/2 + 4/5)/2 = 0.65.
    # accuracy = 4/6.
    m = model_metrics(HUMAN, MODEL, seed=1, samples=500)
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m["f1_favor"]["value"] == pytest.approx(0.5)
    assert m["f1_against"]["value"] == pytest.approx(0.8)
    assert m["f1_none"]["value"] == pytest.approx(2 / 3)
    assert m["macro_f1"]["value"] == pytest.approx(0.65)
    assert m["accuracy"]["value"] == pytest.approx(4 / 6)
    for name in ("macro_f1", "f1_favor", "accuracy"):
        assert 0 <= m[name]["low"] <= m[name]["value"] <= m[name]["high"] <= 1
    assert m["macro_f1"]["low"] < m["macro_f1"]["high"]  # six posts cannot give a zero-width interval
    # Seeded: the same seed gives the same interval, another seed (almost surely) another one.
    assert model_metrics(HUMAN, MODEL, seed=1, samples=500)["macro_f1"] == m["macro_f1"]


def test_perfect_model_interval_reaches_one():
    # A resample can miss every favor post; that class's F1 is then 0 (analysis.evaluate's convention),
    # so only the upper end is pinned at 1.
    m = model_metrics(HUMAN, HUMAN, seed=3, samples=200)
    assert m["macro_f1"]["value"] == 1.0 and m["macro_f1"]["high"] == 1.0 and m["accuracy"]["low"] == 1.0


def test_model_vs_humans_groups_by_platform_and_month():
    november, december = datetime(2024, 11, 28, tzinfo=UTC), datetime(2024, 12, 2, tzinfo=UTC)
    gold = [{"platform": "reddit" if i < 3 else "bluesky", "post_id": str(i), "target": "openai", "label": h,
             "model_label": p, "created_at": november if i % 2 == 0 else december}
            for i, (h, p) in enumerate(zip(HUMAN, MODEL, strict=True))]
    gold.append({"platform": "reddit", "post_id": "x", "target": "openai", "label": "favor", "model_label": None,
                 "created_at": november})
    result = model_vs_humans(gold, ["openai"], samples=100)["openai"]
    assert result["overall"]["n"] == 6 and result["without_model_label"] == 1
    # reddit: posts 0-2: (f,f) (f,a) (a,a) -> favor F1 = 2*1/(2+1) = 2/3, against F1 = 2*1/(1+2) = 2/3.
    assert result["by_platform"]["reddit"]["macro_f1"]["value"] == pytest.approx(2 / 3)
    assert set(result["by_month"]) == {"2024-11", "2024-12"}
    assert result["by_month"]["2024-11"]["n"] == 3


def test_allocation_is_proportional_and_capped():
    assert allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    # Quotas 10*7/10 = 7 and 3: exact.  Largest remainder: 4 draws of 3/2/1 -> 2, 1.33, 0.67 -> 2, 1, 1.
    assert allocate({"a": 3, "b": 2, "c": 1}, 4) == {"a": 2, "b": 1, "c": 1}
    assert allocate({"a": 1, "b": 1}, 5) == {"a": 1, "b": 1}


def test_stratified_sample_is_seeded_and_covers_strata():
    candidates = [("reddit", f"r{i}", "2024-W48 reddit") for i in range(40)] + \
                 [("bluesky", f"b{i}", "2024-W49 bluesky") for i in range(10)]
    first = stratified_sample(candidates, 10, seed=7)
    assert first == stratified_sample(candidates, 10, seed=7)
    assert sum(1 for r in first if r[2] == "2024-W49 bluesky") == 2 and len(set(first)) == 10
    assert len(double_coded(10, 0.2, 7)) == 2
