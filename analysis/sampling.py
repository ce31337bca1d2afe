"""Which posts people code: stratified random samples (validation) and active samples (training).

Pure logic on candidate lists the warehouse hands over in a stable order, so the same seed on the
same warehouse draws the same sample.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

DEFAULT_DOUBLE_FRACTION = 0.2


def allocate(stratum_sizes: dict[str, int], size: int) -> dict[str, int]:
    """Proportional allocation of `size` draws to strata by largest remainder (ties: stratum name).

    Never more than a stratum holds; what a full stratum cannot take goes to the others."""
    total = sum(stratum_sizes.values())
    size = min(size, total)
    if size <= 0:
        return dict.fromkeys(stratum_sizes, 0)
    quotas = {s: size * n / total for s, n in stratum_sizes.items()}
    counts = {s: min(int(q), stratum_sizes[s]) for s, q in quotas.items()}
    by_remainder = sorted(stratum_sizes, key=lambda s: (-(quotas[s] - int(quotas[s])), s))
    while sum(counts.values()) < size:
        for s in by_remainder:
            if sum(counts.values()) >= size:
                break
            if counts[s] < stratum_sizes[s]:
                counts[s] += 1
    return counts


def stratified_sample(candidates: list[tuple[str, str, str]], size: int, seed: int) -> list[tuple[str, str, str]]:
    """`size` (platform, post_id, stratum) rows drawn without replacement, proportionally per stratum
    (ISO week × platform), then shuffled so coders do not see one week after the other."""
    rng = random.Random(seed)
    strata: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for row in candidates:
        strata[row[2]].append(row)
    counts = allocate({s: len(rows) for s, rows in strata.items()}, size)
    drawn = [row for s in sorted(strata) for row in rng.sample(strata[s], counts[s])]
    rng.shuffle(drawn)
    return drawn


def _same_side(labels: dict[str, str]) -> bool:
    # The default targets are the two sides of one dispute (the company and the artists who leaked
    # its model); a post the model puts on the same non-none side of two targets is a likely error.
    sides = [label for label in labels.values() if label != "none"]
    return len(sides) >= 2 and len(set(sides)) == 1


def active_sample(candidates: list[dict[str, Any]], size: int, seed: int) -> list[tuple[str, str, str]]:
    """The `size` posts the model is least sure of: first those whose targets disagree (the same
    non-none label on two targets), then by the lowest certainty over the targets. Ties are broken
    by a seeded shuffle. Returns (platform, post_id, reason)."""
    rng = random.Random(seed)
    shuffled = list(candidates)
    rng.shuffle(shuffled)
    ranked = sorted(shuffled, key=lambda c: (not _same_side(c["labels"]), min(c["certainty"].values())))
    out = []
    for c in ranked[:size]:
        certainty = min(c["certainty"].values())
        reason = "targets disagree" if _same_side(c["labels"]) else "low certainty"
        out.append((c["platform"], c["post_id"], f"{reason} (certainty {certainty:.2f})"))
    return out


def double_coded(count: int, fraction: float, seed: int) -> set[int]:
    """Indexes (0-based) of the posts assigned to two coders: round(fraction × count) of them."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"double-coding fraction {fraction} is not between 0 and 1")
    chosen = round(fraction * count)
    return set(random.Random(seed + 1).sample(range(count), chosen))
