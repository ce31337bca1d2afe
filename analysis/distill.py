"""Distillation: an LLM teacher labels a stratified sample of the warehouse, the local encoder learns
from the bundled data plus those labels, and the two are compared on a held-out part.

Pure logic: sampling, the held-out split, merging the teacher's labels into training data, and
agreement figures. The orchestration (analysis/distillation.py) reads the warehouse and runs the teacher.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dataset import Example, LabelledData
from .evaluate import confusion_matrix, stance_metrics

# Share of the teacher-labelled sample kept out of training, to measure teacher-student agreement.
HELD_OUT_PERCENT = 20


@dataclass(frozen=True)
class Candidate:
    key: tuple[str, str]  # (platform, post_id)
    stratum: Hashable  # (ISO week, platform)


def _rank(key: tuple[str, str], seed: int) -> str:
    return hashlib.sha256(f"{seed}:{key[0]}:{key[1]}".encode()).hexdigest()


def stratified_sample(candidates: Sequence[Candidate], n: int, seed: int = 13,
                      excluded: set[tuple[str, str]] | frozenset = frozenset()) -> list[tuple[str, str]]:
    """n posts, allocated to strata in proportion to their size (largest remainders), drawn within each
    stratum in a seeded hash order: the same warehouse and seed give the same sample. Excluded posts
    (a human validation sample) are never drawn."""
    strata: dict[Hashable, list[tuple[str, str]]] = {}
    for c in candidates:
        if c.key not in excluded:
            strata.setdefault(c.stratum, []).append(c.key)
    total = sum(len(v) for v in strata.values())
    if total == 0 or n <= 0:
        return []
    n = min(n, total)
    quotas = {s: n * len(keys) / total for s, keys in strata.items()}
    counts = {s: int(q) for s, q in quotas.items()}
    by_remainder = sorted(strata, key=lambda s: (-(quotas[s] - counts[s]), str(s)))
    for s in by_remainder[: n - sum(counts.values())]:
        counts[s] += 1
    chosen: list[tuple[str, str]] = []
    for s in sorted(strata, key=str):
        chosen.extend(sorted(strata[s], key=lambda k: _rank(k, seed))[: counts[s]])
    return chosen


def is_held_out(key: tuple[str, str], seed: int = 13) -> bool:
    return int(_rank(key, seed + 1), 16) % 100 < HELD_OUT_PERCENT


def with_teacher_labels(base: LabelledData, teacher: Sequence[Example], teacher_id: str) -> LabelledData:
    """The base data plus the teacher's examples as training rows; the hash covers both, so the
    student's model_id changes with the teacher's labels."""
    rows = "\n".join(f"{e.id}\t{e.text}\t" + ",".join(e.labels[t] for t in base.targets) for e in teacher)
    digest = hashlib.sha256(f"{base.sha256}\n{teacher_id}\n{rows}".encode()).hexdigest()
    train = [Example(e.id, e.text, dict(e.labels), "train", e.platform) for e in teacher]
    return LabelledData(base.examples + train, base.targets, f"{base.source} + {len(train)} posts labelled by "
                        f"{teacher_id}", digest)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Agreement beyond chance; None when chance agreement is total (one label everywhere)."""
    matrix = confusion_matrix(a, b).astype(float)
    n = matrix.sum()
    if n == 0:
        return None
    observed = np.trace(matrix) / n
    expected = float((matrix.sum(axis=0) * matrix.sum(axis=1)).sum() / n**2)
    return None if expected >= 1 else float((observed - expected) / (1 - expected))


def agreement(reference: dict[str, list[str]], other: dict[str, list[str]], data: str) -> dict[str, dict[str, Any]]:
    """Per target: the stance metrics of `other` taking `reference` as truth, plus Cohen's kappa."""
    out = {}
    for target, ref in reference.items():
        metrics = stance_metrics(ref, other[target], data)
        metrics["kappa"] = cohen_kappa(ref, other[target])
        out[target] = metrics
    return out


def label_lists(examples: Sequence[Example], targets: Sequence[str]) -> dict[str, list[str]]:
    return {t: [e.labels[t] for e in examples] for t in targets}

