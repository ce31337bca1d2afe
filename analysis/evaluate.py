"""Stance metrics: the SemEval-2016 measure (macro-F1 over favor and against), accuracy, confusion.

The metrics dictionary has the shape stored in `models.metrics` per target, which the trends code
reads for prevalence correction: rows of `confusion` are true labels, columns predicted labels,
both in the order of `labels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

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


def stance_metrics(true: Sequence[str], predicted: Sequence[str], data: str) -> dict[str, Any]:
    matrix = confusion_matrix(true, predicted)
    total = int(matrix.sum())
    return {
        "macro_f1": (f1_from_confusion(matrix, "favor") + f1_from_confusion(matrix, "against")) / 2,
        "f1_favor": f1_from_confusion(matrix, "favor"),
        "f1_against": f1_from_confusion(matrix, "against"),
        "accuracy": float(np.trace(matrix) / total) if total else 0.0,
        "n": total,
        "labels": list(LABELS),
        "confusion": matrix.tolist(),
        "data": data,
    }


def evaluate_predictions(
    gold: dict[str, list[str]], predicted: dict[str, list[str]], data: str
) -> dict[str, dict[str, Any]]:
    """Per-target metrics for gold and predicted labels keyed by target."""
    return {target: stance_metrics(gold[target], predicted[target], data) for target in gold}
