"""Calibrated probabilities: one temperature per target fitted on validation, and the expected
calibration error that says whether it helped; and the none bias, the decision threshold for giving
a stance at all, chosen on validation too.

Temperature scaling (Guo et al., 2017) divides a target's logits by T before the softmax: it moves
confidence, never the argmax, so labels and F1 stay the same. T is the value that minimises the
negative log-likelihood of the validation labels, found by a deterministic 1-D search over log T.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ECE_BINS = 15


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature in [low, high] with the least validation NLL (a coarse grid over log T, then a
    golden-section refinement around the best grid point)."""
    if len(labels) == 0:
        return 1.0
    grid = np.exp(np.linspace(np.log(low), np.log(high), 61))
    losses = [negative_log_likelihood(logits, labels, t) for t in grid]
    best = int(np.argmin(losses))
    a, b = np.log(grid[max(best - 1, 0)]), np.log(grid[min(best + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if negative_log_likelihood(logits, labels, np.exp(c)) < negative_log_likelihood(logits, labels, np.exp(d)):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def expected_calibration_error(probabilities: np.ndarray, labels: Sequence[int], bins: int = ECE_BINS) -> float:
    """Top-label ECE: posts binned by their highest probability into `bins` equal-width bins; the
    gap between mean confidence and accuracy per bin, weighted by the bin's share of posts."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    # Bin k holds confidences in (k/bins, (k+1)/bins]; a confidence of exactly 0 goes to bin 0.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    error = 0.0
    for k in range(bins):
        members = index == k
        if members.any():
            error += members.mean() * abs(confidence[members].mean() - correct[members].mean())
    return float(error)


NONE_BIAS_GRID = tuple(round(b, 2) for b in np.arange(-1.0, 3.01, 0.1))


def fit_none_bias(logits: np.ndarray, gold: Sequence[str], f1: Callable[[Sequence[str], list[str]], float],
                  labels: Sequence[str], neutral: Sequence[bool], max_rate: float = 0.03,
                  grid: Sequence[float] = NONE_BIAS_GRID) -> float:
    """The amount added to the `none` logit, chosen on validation: among the biases that give a
    stance to at most `max_rate` of the `neutral` posts (those labelled `none` for every target:
    off-topic posts that only share a search word, neutral news, questions), the one with the best
    `f1` (macro-F1 over favor and against); when no bias gets that low, the one with the lowest
    rate. Ties go to the bias nearest 0 (the model as trained)."""
    none = list(labels).index("none")
    neutral = np.asarray(neutral, dtype=bool)
    best: tuple[tuple[bool, float, float], float] | None = None
    for bias in sorted(grid, key=abs):
        shifted = logits.copy()
        shifted[:, none] += bias
        choice = shifted.argmax(axis=1)
        rate = float((choice[neutral] != none).mean()) if neutral.any() else 0.0
        feasible = rate <= max_rate + 1e-12
        score = f1(gold, [labels[i] for i in choice])
        key = (feasible, score if feasible else -rate, score)
        if best is None or key > best[0]:
            best = (key, float(bias))
    return 0.0 if best is None else best[1]
