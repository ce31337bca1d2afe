"""Human validation: agreement between coders, and the current model against human gold labels.

- Agreement: Krippendorff's alpha for nominal data per target, from the coincidence matrix, on the
  posts of random samples that at least two coders labelled (`unsure` counts as no label).
- Validation: the current model against the gold labels of the *random* samples only (active samples
  are picked by the model and trained on, so they would flatter it). A post's gold label is the
  adjudicator's if there is one, else the label a strict majority of its coders gave; two coders who
  disagree give no gold label until someone adjudicates (codes the post as coder `adjudicator`).
  See warehouse.annotations for the query.
- Intervals: a seeded percentile bootstrap over posts (the same seed, the same interval).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

import warehouse
from warehouse import annotations as store

from .dataset import DATA_DIR, LABELS

GUIDELINE_PATH = DATA_DIR / "LABELLING.md"
# Below this many human-coded random posts per target, trends keep the test-split correction.
MIN_CORRECTION_N = 100
BOOTSTRAP_SAMPLES = 1000


def guideline_version(path: Path = GUIDELINE_PATH) -> str:
    """The guideline's identity stored with every annotation: the start of its text's SHA-256."""
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


# ------------------------------------------------------------------------------- agreement

def krippendorff_alpha(units: list[list[str]]) -> float | None:
    """Krippendorff's alpha for nominal values; each unit lists the values its coders gave.

    alpha = 1 - D_o / D_e with the coincidence matrix o: every ordered pair of values (c, k) from
    different coders of a unit adds 1 / (m_u - 1), m_u being the unit's number of values. With n_c
    the row sums and n their total, D_o = sum_{c != k} o_ck / n and D_e = sum_{c != k} n_c n_k /
    (n (n - 1)). Units with fewer than two values are not pairable and left out. None when nothing is
    pairable or every value is the same (no variation: alpha undefined)."""
    values = sorted({v for unit in units for v in unit})
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for unit in units:
        m = len(unit)
        if m < 2:
            continue
        for a in range(m):
            for b in range(m):
                if a != b:
                    o[index[unit[a]], index[unit[b]]] += 1 / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n < 2:
        return None
    observed = (o.sum() - np.trace(o)) / n
    expected = (n * n - (n_c ** 2).sum()) / (n * (n - 1))
    if expected == 0:
        return None
    return float(1 - observed / expected)


def _coder_units(latest: list[dict[str, Any]], target: str) -> dict[tuple[str, str], dict[str, str]]:
    units: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for row in latest:
        if row["target"] == target and row["label"] != "unsure" and row["annotator"] != store.ADJUDICATOR:
            units[(row["platform"], row["post_id"])][row["annotator"]] = row["label"]
    return units


def agreement(latest: list[dict[str, Any]], targets: list[str]) -> dict[str, dict[str, Any]]:
    """Per target: alpha, how many posts two or more coders labelled, and their raw agreement."""
    out = {}
    for target in targets:
        units = [list(u.values()) for u in _coder_units(latest, target).values() if len(u) >= 2]
        agreeing = sum(1 for u in units if len(set(u)) == 1)
        out[target] = {"alpha": krippendorff_alpha(units), "posts": len(units),
                       "percent_agreement": agreeing / len(units) if units else None}
    return out


def coder_disagreements(latest: list[dict[str, Any]], targets: list[str]) -> list[dict[str, Any]]:
    """Posts and targets whose coders gave different labels: the list to adjudicate."""
    out = []
    for target in targets:
        for (platform, post_id), coders in sorted(_coder_units(latest, target).items()):
            if len(set(coders.values())) > 1:
                out.append({"platform": platform, "post_id": post_id, "target": target, "coders": dict(coders)})
    return out


# ------------------------------------------------------------------------------- model vs humans

def _codes(labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(LABELS)}
    return np.array([index[label] for label in labels], dtype=np.int64)


def _confusions(true: np.ndarray, predicted: np.ndarray, draws: np.ndarray | None = None) -> np.ndarray:
    """Confusion counts (rows true, columns predicted); one matrix per row of `draws` if given."""
    k = len(LABELS)
    cells = true * k + predicted
    if draws is None:
        return np.bincount(cells, minlength=k * k).reshape(k, k)
    offset = (np.arange(draws.shape[0]) * k * k)[:, None]
    counts = np.bincount((cells[draws] + offset).ravel(), minlength=draws.shape[0] * k * k)
    return counts.reshape(draws.shape[0], k, k)


def _metrics_of(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Macro-F1 (favor, against), per-class F1 and accuracy of one matrix or a stack of them.

    F1 = 2 TP / (2 TP + FP + FN), and 0 when TP = 0 (the convention of analysis.evaluate)."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1).astype(float)
    actual, predicted = confusion.sum(axis=-1), confusion.sum(axis=-2)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(tp > 0, 2 * tp / (actual + predicted), 0.0)
    total = confusion.sum(axis=(-2, -1))
    out = {f"f1_{label}": f1[..., i] for i, label in enumerate(LABELS)}
    out["macro_f1"] = (f1[..., LABELS.index("favor")] + f1[..., LABELS.index("against")]) / 2
    out["accuracy"] = np.where(total > 0, tp.sum(axis=-1) / np.maximum(total, 1), 0.0)
    return out


def model_metrics(true: list[str], predicted: list[str], seed: int = 0,
                  samples: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    """Metrics with seeded bootstrap 95% intervals; the confusion cells get intervals too."""
    n = len(true)
    if n == 0:
        return {"n": 0}
    t, p = _codes(true), _codes(predicted)
    confusion = _confusions(t, p)
    point = _metrics_of(confusion)
    draws = np.random.default_rng(seed).integers(0, n, size=(samples, n))
    boot_confusions = _confusions(t, p, draws)
    boot = _metrics_of(boot_confusions)
    out: dict[str, Any] = {"n": n, "labels": list(LABELS), "confusion": confusion.tolist()}
    for name, value in point.items():
        low, high = np.percentile(boot[name], [2.5, 97.5])
        out[name] = {"value": float(value), "low": float(low), "high": float(high)}
    low, high = np.percentile(boot_confusions, [2.5, 97.5], axis=0)
    out["confusion_low"], out["confusion_high"] = low.tolist(), high.tolist()
    return out


def _month(created_at: Any) -> str:
    return created_at.strftime("%Y-%m")


def model_vs_humans(gold: list[dict[str, Any]], targets: list[str], seed: int = 0,
                    samples: int = BOOTSTRAP_SAMPLES) -> dict[str, dict[str, Any]]:
    """Per target: metrics overall, by platform and by month, on posts with a gold and a model label."""
    out = {}
    for target in targets:
        rows = [g for g in gold if g["target"] == target and g["model_label"] in LABELS]
        unlabelled = sum(1 for g in gold if g["target"] == target and g["model_label"] not in LABELS)
        entry = {"overall": model_metrics([r["label"] for r in rows], [r["model_label"] for r in rows], seed, samples),
                 "without_model_label": unlabelled, "by_platform": {}, "by_month": {}}
        for key, group in (("by_platform", lambda r: r["platform"]), ("by_month", lambda r: _month(r["created_at"]))):
            groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for r in rows:
                groups[group(r)].append(r)
            entry[key] = {name: model_metrics([r["label"] for r in g], [r["model_label"] for r in g], seed, samples)
                          for name, g in sorted(groups.items())}
        out[target] = entry
    return out


def model_disagreements(gold: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"platform": g["platform"], "post_id": g["post_id"], "target": g["target"], "human": g["label"],
             "model": g["model_label"]}
            for g in gold if g["model_label"] in LABELS and g["model_label"] != g["label"]]


def validation_report(con: Any, targets: list[str], seed: int = 0,
                      samples: int = BOOTSTRAP_SAMPLES) -> dict[str, Any]:
    """Everything `leakwatch validate` and the validation page show, as one JSON-ready dict."""
    latest = store.latest_annotations(con, kind="random")
    gold = store.gold_labels(con, "random")
    return {
        "model_id": warehouse.get_setting(con, "current_model"),
        "gold_definition": "random samples only; adjudicator's label, else a strict majority of coders "
                           "(two coders must agree); unsure left out",
        "bootstrap": {"samples": samples, "seed": seed, "interval": "percentile 95%"},
        "coded_posts": len({(r["platform"], r["post_id"]) for r in latest}),
        "agreement": agreement(latest, targets),
        "model_vs_humans": model_vs_humans(gold, targets, seed, samples),
        "coder_disagreements": coder_disagreements(latest, targets),
        "model_disagreements": model_disagreements(gold),
    }


# ------------------------------------------------------------------------------- correction

def human_correction(con: Any, model_id: str, targets: list[str],
                     min_n: int = MIN_CORRECTION_N) -> dict[str, dict[str, Any]]:
    """Per target: the model's confusion matrix on the human-coded random samples (rows human,
    columns model, LABELS order), n, macro-F1, and whether n reaches `min_n` so trends may use it."""
    counts = store.human_confusion(con, model_id, LABELS)
    out = {}
    for target in targets:
        entry = counts.get(target, {"confusion": [[0] * len(LABELS) for _ in LABELS], "n": 0})
        matrix = np.asarray(entry["confusion"], dtype=np.int64)
        out[target] = {"confusion": matrix.tolist(), "labels": list(LABELS), "n": int(entry["n"]),
                       "macro_f1": float(_metrics_of(matrix)["macro_f1"]), "usable": entry["n"] >= min_n,
                       "source": f"corrected with {entry['n']} human-coded posts, "
                                 f"macro-F1 {float(_metrics_of(matrix)['macro_f1']):.2f}"}
    return out
