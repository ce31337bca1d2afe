"""What the report and `leakwatch trends` say about the current model's measured quality.

The numbers are the model's stored evaluation metrics (`models.metrics`, written by `leakwatch
evaluate` or by training): macro-F1 over favor and against per target, how many posts it was
measured on, and on what data. A model scored only on the bundled dataset gets a plain caveat:
those posts were written in the same voice as its training data, so real posts will score lower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The source name the bundled dataset records in its metrics (analysis.dataset.load_dataset).
BUNDLED_SOURCE = "analysis/data/stance_dataset.csv"
BUNDLED_CAVEAT = (
    "measured on the bundled test split, written in the training data's voice; expect lower quality on "
    "real posts — code a sample of your own posts and score the model on it with `leakwatch evaluate --data`"
)


@dataclass(frozen=True)
class TargetQuality:
    target: str
    macro_f1: float
    n: int
    data: str


@dataclass(frozen=True)
class ModelQuality:
    model_id: str | None
    targets: list[TargetQuality]

    @property
    def bundled_only(self) -> bool:
        """Every figure comes from the bundled dataset (none from the user's own posts)."""
        return bool(self.targets) and all(BUNDLED_SOURCE in t.data for t in self.targets)

    def summary(self) -> str:
        """One line: macro-F1 and n per target, and on what data."""
        if self.model_id is None:
            return "no current model"
        if not self.targets:
            return (f"model {self.model_id}: quality not measured (run `leakwatch evaluate`); "
                    "treat its shares as unchecked")
        scores = ", ".join(f"{t.target} {t.macro_f1:.3f} (n = {t.n:,})" for t in self.targets)
        sources = "; ".join(dict.fromkeys(t.data for t in self.targets))
        return f"model {self.model_id}: macro-F1 (favor, against) {scores}, measured on {sources}"

    def caveat(self) -> str | None:
        return BUNDLED_CAVEAT if self.bundled_only else None


def quality_from_metrics(model_id: str | None, metrics: dict[str, Any] | None) -> ModelQuality:
    """The quality summary of stored metrics (per target: macro_f1, n, data); unusable entries are skipped."""
    targets = []
    for target, entry in sorted((metrics or {}).items()):
        if not isinstance(entry, dict) or not isinstance(entry.get("macro_f1"), int | float):
            continue
        n = entry.get("n")
        targets.append(TargetQuality(target, float(entry["macro_f1"]), int(n) if isinstance(n, int) else 0,
                                     str(entry.get("data") or "unknown data")))
    return ModelQuality(model_id, targets)
