"""Stance over time: the warehouse's period views plus shares corrected for classifier errors.

The views (`stance_daily`, `stance_weekly` and their `_authors` variants) give shares "as
classified": the fraction of posts the model put in each class, with Wilson intervals that only
cover sampling noise. A classifier that, say, calls 20% of neutral posts "against" inflates the
against share. The adjusted shares undo that on average (adjusted classify-and-count):

    observed = Mᵀ · true,   M[i, j] = P(predicted j | true i)

with M the row-normalised confusion matrix that `leakwatch evaluate` stored for the current model.
The solution is projected onto the simplex (no negative shares, shares sum to 1). Its 95% interval
is a seeded percentile bootstrap that resamples both the period's posts and the evaluation set's
confusion matrix, so the uncertainty of the correction itself is in the interval.

Assumption: the evaluation data are representative of how the model errs on the collected posts
(P(predicted | true) is the same; only the class mix differs).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np

import warehouse
from warehouse.records import LABELS

from .errors import TrendsError

PERIODS = ("day", "week")
UNITS = ("posts", "authors")
DEFAULT_BOOTSTRAP_SAMPLES = 1000
DEFAULT_SEED = 20241126



@dataclass
class TrendTable:
    """Rows of a period view (plus adjusted columns when available) and notes about what is missing."""

    view: str
    columns: list[str]
    rows: list[dict[str, Any]]
    model_id: str | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Window:
    """Inclusive UTC date range; None on a side means unbounded."""

    since: date | None = None
    until: date | None = None

    def snapped(self, period: str) -> Window:
        """Widen to whole periods: weekly figures cover Monday..Sunday, so the window does too."""
        if period != "week":
            return self
        since = self.since - timedelta(days=self.since.weekday()) if self.since else None
        until = self.until + timedelta(days=6 - self.until.weekday()) if self.until else None
        return Window(since, until)


# ---------------------------------------------------------------- confusion matrices


def confusion_for_model(
    con: Any, model_id: str | None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-target 3x3 confusion counts (rows true, columns predicted, LABELS order) and notes."""
    if model_id is None:
        return {}, ["no current model is set, so there are no stance labels yet (run `leakwatch classify`)"]
    stored = warehouse.model_metrics(con, model_id)
    if stored is None:
        return {}, [
            f"current model {model_id} has no evaluation metrics, so adjusted shares are left out "
            "(run `leakwatch evaluate` to add them)"
        ]
    try:
        metrics = json.loads(stored) if isinstance(stored, str) else stored
    except json.JSONDecodeError:
        return {}, [f"model {model_id}: its metrics are not valid JSON; adjusted shares are left out"]
    matrices, notes = {}, []
    for target, entry in sorted(metrics.items()):
        if not isinstance(entry, dict) or "confusion" not in entry:
            continue
        try:
            matrix = _reorder(entry)
        except (KeyError, TypeError, ValueError) as exc:
            notes.append(f"target {target}: confusion matrix unusable ({exc}); adjusted shares left out")
            continue
        problem = identifiability_problem(matrix)
        if problem:
            notes.append(f"target {target}: {problem}; adjusted shares left out")
            continue
        matrices[target] = matrix
    return matrices, notes


def _reorder(entry: dict[str, Any]) -> np.ndarray:
    labels = list(entry.get("labels") or LABELS)
    matrix = np.asarray(entry["confusion"], dtype=float)
    if matrix.shape != (len(labels), len(labels)) or sorted(labels) != sorted(LABELS):
        raise ValueError(f"expected a 3x3 matrix over {list(LABELS)}, got labels {labels}")
    if (matrix < 0).any():
        raise ValueError("negative counts")
    order = [labels.index(label) for label in LABELS]
    return matrix[np.ix_(order, order)]


def identifiability_problem(confusion: np.ndarray) -> str | None:
    """Why the correction cannot be computed from this confusion matrix, or None if it can."""
    totals = confusion.sum(axis=1)
    missing = [LABELS[i] for i in range(3) if totals[i] == 0]
    if missing:
        return f"the evaluation data have no posts whose true label is {', '.join(missing)}"
    if np.linalg.matrix_rank(confusion / totals[:, None]) < 3:
        return "the confusion matrix is singular (the model cannot tell some classes apart)"
    return None


# ---------------------------------------------------------------- the correction


def project_to_simplex(values: np.ndarray) -> np.ndarray:
    """Euclidean projection of each row onto {p >= 0, sum p = 1} (sort-based algorithm)."""
    v = np.atleast_2d(np.asarray(values, dtype=float))
    k = v.shape[1]
    u = -np.sort(-v, axis=1)
    cumulative = np.cumsum(u, axis=1) - 1.0
    index = np.arange(1, k + 1)
    active = u - cumulative / index > 0
    rho = k - 1 - np.argmax(active[:, ::-1], axis=1)  # last index where the condition holds
    theta = cumulative[np.arange(v.shape[0]), rho] / (rho + 1)
    projected = np.maximum(v - theta[:, None], 0.0)
    return projected if np.ndim(values) > 1 else projected[0]


def adjusted_shares(observed_counts: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """True-class shares from predicted counts: solve observed = Mᵀ·true, then onto the simplex."""
    observed = np.asarray(observed_counts, dtype=float)
    q = observed / observed.sum(axis=-1, keepdims=True)
    m = confusion / confusion.sum(axis=-1, keepdims=True)
    mt = np.swapaxes(m, -1, -2)
    if mt.ndim == 2:
        mt = np.broadcast_to(mt, (*q.shape[:-1], 3, 3)) if q.ndim > 1 else mt
    try:
        solved = np.linalg.solve(mt, q[..., None])[..., 0]
    except np.linalg.LinAlgError:  # a singular bootstrap draw: least squares instead
        solved = (np.linalg.pinv(mt) @ q[..., None])[..., 0]
    return project_to_simplex(solved)


def _seed_for(seed: int, target: str, platform: str, period: date) -> list[int]:
    # Each row has its own stream, so its interval does not depend on which other rows are shown.
    return [seed, zlib.crc32(target.encode()), zlib.crc32(platform.encode()), period.toordinal()]


def bootstrap_interval(
    observed_counts: np.ndarray,
    confusion: np.ndarray,
    samples: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile interval of the adjusted shares, resampling posts and the confusion matrix."""
    observed = np.asarray(observed_counts, dtype=float)
    n = int(observed.sum())
    posts = rng.multinomial(n, observed / n, size=samples)
    totals = confusion.sum(axis=1)
    rows = [rng.multinomial(int(totals[i]), confusion[i] / totals[i], size=samples) for i in range(3)]
    confusions = np.stack(rows, axis=1).astype(float)  # (samples, true, predicted)
    draws = adjusted_shares(posts, confusions)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return low, high


# ---------------------------------------------------------------- the table


def current_model(con: Any) -> str | None:
    return warehouse.get_setting(con, "current_model")


def stance_trends(
    con: Any,
    period: str = "week",
    unit: str = "posts",
    window: Window | None = None,
    targets: list[str] | None = None,
    platforms: list[str] | None = None,
    bootstrap_samples: int = DEFAULT_BOOTSTRAP_SAMPLES,
    seed: int = DEFAULT_SEED,
) -> TrendTable:
    """The period view's rows in the window, plus adjusted shares for post counts when possible."""
    if period not in PERIODS:
        raise TrendsError(f"period must be one of {', '.join(PERIODS)} (got {period!r})")
    if unit not in UNITS:
        raise TrendsError(f"unit must be one of {', '.join(UNITS)} (got {unit!r})")
    view = warehouse.PERIOD_VIEWS[(period, unit)]
    window = (window or Window()).snapped(period)
    columns, rows = warehouse.period_rows(con, view, window.since, window.until, targets, platforms)
    model_id = current_model(con)
    table = TrendTable(view, columns, rows, model_id)
    if unit == "authors":
        table.notes.append(
            "adjusted shares are computed for post counts only: the confusion matrix describes single "
            "posts, not an author's majority vote"
        )
        return table
    matrices, notes = confusion_for_model(con, model_id)
    table.notes.extend(notes)
    if matrices:
        _add_adjusted(table, matrices, bootstrap_samples, seed)
    return table


ADJUSTED_COLUMNS = [f"adjusted_share_{label}{suffix}" for label in LABELS for suffix in ("", "_low", "_high")]


def _add_adjusted(table: TrendTable, matrices: dict[str, np.ndarray], samples: int, seed: int) -> None:
    table.columns.extend(ADJUSTED_COLUMNS)
    skipped = sorted({row["target"] for row in table.rows} - set(matrices))
    if skipped:
        table.notes.append(f"no evaluation metrics for target(s) {', '.join(skipped)}: adjusted shares are empty")
    for row in table.rows:
        confusion = matrices.get(row["target"])
        counts = np.array([row[label] for label in LABELS], dtype=float)
        if confusion is None or counts.sum() == 0:
            row.update(dict.fromkeys(ADJUSTED_COLUMNS))
            continue
        point = adjusted_shares(counts, confusion)
        rng = np.random.default_rng(_seed_for(seed, row["target"], row["platform"], row["period"]))
        low, high = bootstrap_interval(counts, confusion, samples, rng)
        for i, label in enumerate(LABELS):
            row[f"adjusted_share_{label}"] = float(point[i])
            row[f"adjusted_share_{label}_low"] = float(low[i])
            row[f"adjusted_share_{label}_high"] = float(high[i])


# ---------------------------------------------------------------- whole-window totals


def stance_totals(
    con: Any, period: str = "week", unit: str = "posts", window: Window | None = None
) -> list[dict[str, Any]]:
    """Per target and platform, the period view's counts summed over the window, with Wilson intervals."""
    window = (window or Window()).snapped(period)
    count = "posts" if unit == "posts" else "authors"
    return warehouse.period_totals(con, warehouse.PERIOD_VIEWS[(period, unit)], count, window.since, window.until)
