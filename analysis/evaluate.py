"""Stance metrics: the SemEval-2016 measure (macro-F1 over favor and against), accuracy, confusion.

The metrics dictionary has the shape stored in `models.metrics` per target, which the trends code
reads for prevalence correction: rows of `confusion` are true labels, columns predicted labels,
both in the order of `labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .calibration import expected_calibration_error
from .dataset import LABELS


def confusion_matrix(true: Sequence[str], predicted: Sequence[str]) -> np.ndarray:
    if len(true) != len(predicted):
        raise ValueError(f"{len(true)} true labels but {len(predicted)} predictions")
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = np.zeros((len(LABELS), len(LABELS)), dtype=np.int64)
    for t, p in zip(true, predicted, strict=True):
        matrix[index[t], index[p]] += 1
    return matrix


def f1_from_confusion(matrix: np.ndarray, label: str) -> float:
    """F1 of one class; 0 when the class is never predicted and never true (nothing to get right)."""
    i = LABELS.index(label)
    true_positive = matrix[i, i]
    predicted = matrix[:, i].sum()
    actual = matrix[i, :].sum()
    if true_positive == 0:
        return 0.0
    precision, recall = true_positive / predicted, true_positive / actual
    return float(2 * precision * recall / (precision + recall))


def stance_metrics(true: Sequence[str], predicted: Sequence[str], data: str,
                   probabilities: np.ndarray | None = None) -> dict[str, Any]:
    """The metrics of one target; with the (n, 3) probabilities also the 15-bin calibration error."""
    matrix = confusion_matrix(true, predicted)
    total = int(matrix.sum())
    extra = {}
    if probabilities is not None:
        extra["ece"] = expected_calibration_error(probabilities, [LABELS.index(t) for t in true])
    return {
        "macro_f1": (f1_from_confusion(matrix, "favor") + f1_from_confusion(matrix, "against")) / 2,
        "f1_favor": f1_from_confusion(matrix, "favor"),
        "f1_against": f1_from_confusion(matrix, "against"),
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "n": total,
        "labels": list(LABELS),
        "confusion": matrix.tolist(),
        "data": data,
        **extra,
    }


def evaluate_predictions(
    gold: dict[str, list[str]], predicted: dict[str, list[str]], data: str,
    probabilities: dict[str, np.ndarray] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-target metrics for gold and predicted labels keyed by target, and for every target the
    off-topic stance rate: the share of posts labelled `none` for every target (nothing to do with
    any of them) that the model gave a stance toward this target."""
    off_topic = [i for i in range(len(next(iter(gold.values()), []))) if all(g[i] == "none" for g in gold.values())]
    metrics = {}
    for target in gold:
        m = stance_metrics(gold[target], predicted[target], data,
                           probabilities[target] if probabilities is not None else None)
        m["off_topic_n"] = len(off_topic)
        m["off_topic_stance_rate"] = (sum(predicted[target][i] != "none" for i in off_topic) / len(off_topic)
                                      if off_topic else None)
        metrics[target] = m
    return metrics
