"""Stance over time: the warehouse's period views plus shares corrected for classifier errors.

The views (`stance_daily`, `stance_weekly` and their `_authors` variants) give shares "as
classified": the fraction of posts the model put in each class, with Wilson intervals that only
cover sampling noise. A classifier that, say, calls 20% of neutral posts "against" inflates the
against share. The adjusted shares undo that on average (adjusted classify-and-count):

    observed = Mᵀ · true,   M[i, j] = P(predicted j | true i)

with M the row-normalised confusion matrix that `leakwatch evaluate` stored for the current model.
The solution is projected onto the simplex (no negative shares, shares sum to 1). Its 95% interval
is a seeded Dirichlet (Bayesian) bootstrap over both the period's class mix and the evaluation
set's confusion matrix, each with a weak prior, so the uncertainty of the correction is in the
interval and a class unseen in a small period still has a positive upper bound; where that comes
out narrower than the Wilson interval of the observed share, it is widened to that width, so it is
never narrower than the period's sampling uncertainty (see `bootstrap_interval`).

Assumption: the evaluation data are representative of how the model errs on the collected posts
(P(predicted | true) is the same; only the class mix differs).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

import warehouse
from warehouse.records import LABELS

from .errors import TrendsError
from .quality import ModelQuality, quality_from_metrics

PERIODS = ("day", "week")
UNITS = ("posts", "authors")
DEFAULT_BOOTSTRAP_SAMPLES = 1000
DEFAULT_SEED = 20241126
# Weight of the Dirichlet prior per class (Jeffreys' 1/2): small next to any real count, but enough
# that a class unseen in a small period keeps a positive upper bound.
DIRICHLET_PRIOR = 0.5
Z95 = 1.959963984540054  # the normal 97.5% quantile, as in the views' Wilson macros
# Periods with fewer posts (authors) than this are marked as too small to read a trend from.
DEFAULT_MIN_POSTS = 10
PERIOD_LENGTH = {"day": timedelta(days=1), "week": timedelta(days=7)}



@dataclass
class TrendTable:
    """Rows of a period view (plus adjusted columns when available) and notes about what is missing."""

    view: str
    columns: list[str]
    rows: list[dict[str, Any]]
    model_id: str | None
    notes: list[str] = field(default_factory=list)
    quality: ModelQuality | None = None  # the current model's measured quality
    # Per target: which evaluation the adjusted shares use ("corrected with N human-coded posts, ...").
    corrections: dict[str, str] = field(default_factory=dict)


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
    try:
        metrics = _parsed_metrics(con, model_id)
    except ValueError:
        return {}, [f"model {model_id}: its metrics are not a valid JSON object; adjusted shares are left out"]
    if metrics is None:
        return {}, [
            f"current model {model_id} has no evaluation metrics, so adjusted shares are left out "
            "(run `leakwatch evaluate` to add them)"
        ]
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


def stored_metrics(con: Any, model_id: str | None) -> dict[str, Any] | None:
    """The model's stored evaluation metrics, or None when it has none (or they are unreadable)."""
    if model_id is None:
        return None
    try:
        return _parsed_metrics(con, model_id)
    except ValueError:
        return None


def _parsed_metrics(con: Any, model_id: str) -> dict[str, Any] | None:
    """The stored metrics JSON as a dict, None when there is none; ValueError when it is not an object."""
    stored = warehouse.model_metrics(con, model_id)
    if stored is None:
        return None
    metrics = json.loads(stored) if isinstance(stored, str) else stored  # JSONDecodeError is a ValueError
    if not isinstance(metrics, dict):
        raise ValueError("the stored metrics are not a JSON object")
    return metrics


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


def wilson_interval(k: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson score interval of k successes in n trials (the views' wilson_low/high macros)."""
    k = np.asarray(k, dtype=float)
    p = k / n
    centre = (p + Z95 * Z95 / (2 * n)) / (1 + Z95 * Z95 / n)
    half = Z95 * np.sqrt(p * (1 - p) / n + Z95 * Z95 / (4 * n * n)) / (1 + Z95 * Z95 / n)
    return np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


def widen_to_width(
    low: np.ndarray, high: np.ndarray, width: np.ndarray, point: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Widen [low, high] about its midpoint to at least `width`, shifted back inside [0, 1], then
    stretched to contain `point`. The result always contains the original interval."""
    low, high = np.asarray(low, dtype=float).copy(), np.asarray(high, dtype=float).copy()
    narrow = high - low < width
    centre = (low + high) / 2
    new_low = np.where(narrow, centre - width / 2, low)
    new_high = np.where(narrow, centre + width / 2, high)
    below = np.minimum(new_low, 0.0)  # how far it sticks out under 0 (<= 0) ...
    new_low, new_high = new_low - below, new_high - below
    above = np.maximum(new_high - 1.0, 0.0)  # ... and over 1 (>= 0); width <= 1, so it fits
    new_low, new_high = new_low - above, new_high - above
    return np.minimum(np.clip(new_low, 0.0, 1.0), point), np.maximum(np.clip(new_high, 0.0, 1.0), point)


def bootstrap_interval(
    observed_counts: np.ndarray,
    confusion: np.ndarray,
    samples: int,
    rng: np.random.Generator,
    prior: float = DIRICHLET_PRIOR,
) -> tuple[np.ndarray, np.ndarray]:
    """95% interval of the adjusted shares: a Dirichlet (Bayesian) bootstrap, floored at Wilson width.

    Each draw takes the period's class mix from Dirichlet(counts + prior) and each true-class row
    of the confusion matrix from Dirichlet(row counts + prior), and corrects the one with the other
    (`adjusted_shares`). The prior gives every class some mass, so a class not seen in a small
    period still gets a positive upper bound (resampling the observed shares never could). The 2.5
    and 97.5 percentiles of the draws are then widened, where narrower, to the width of the Wilson
    interval of that class's observed share (`widen_to_width`): an interval is never narrower than
    the period's sampling uncertainty. None for an empty period is the caller's job.
    """
    observed = np.asarray(observed_counts, dtype=float)
    n = int(observed.sum())
    mixes = rng.dirichlet(observed + prior, size=samples)
    rows = [rng.dirichlet(confusion[i] + prior, size=samples) for i in range(3)]
    confusions = np.stack(rows, axis=1)  # (samples, true, predicted), rows already sum to 1
    draws = adjusted_shares(mixes, confusions)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    wilson_low, wilson_high = wilson_interval(observed, n)
    return widen_to_width(low, high, wilson_high - wilson_low, adjusted_shares(observed, confusion))


# ---------------------------------------------------------------- the table


def prefer_human_coding(con: Any, model_id: str, targets: list[str],
                        matrices: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Use the confusion matrix from the human-coded random samples where a target has at least
    MIN_CORRECTION_N of them (and it can be inverted); elsewhere keep the stored evaluation. Returns
    the matrices and, per target, a sentence saying which evaluation was used."""
    from .validation import MIN_CORRECTION_N, human_correction

    human = human_correction(con, model_id, targets)
    stored = stored_metrics(con, model_id) or {}
    chosen, used = dict(matrices), {}
    for target in targets:
        h = human[target]
        matrix = np.asarray(h["confusion"], dtype=float)
        if h["usable"] and identifiability_problem(matrix) is None:
            chosen[target] = matrix
            used[target] = h["source"]
            continue
        entry = stored.get(target) or {}
        data = entry.get("data", "the model's stored evaluation") if target in matrices else None
        why = f"{h['n']} human-coded posts (fewer than {MIN_CORRECTION_N})" if not h["usable"] else \
            f"the {h['n']} human-coded posts cannot separate the classes"
        if data:
            n = entry.get("n") or int(np.asarray(entry.get("confusion") or 0).sum())
            used[target] = f"corrected with {data} (n = {n}), since {why}"
            if n < MIN_CORRECTION_N:
                used[target] += f"; that evaluation has fewer than {MIN_CORRECTION_N} labelled posts, so " \
                                "the correction is itself uncertain"
        else:
            used[target] = f"not corrected: {why} and no stored evaluation"
    return chosen, used


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
    min_posts: int = DEFAULT_MIN_POSTS,
    now: datetime | None = None,
) -> TrendTable:
    """The period view's rows in the window, plus adjusted shares for post counts when possible.

    Every row also says whether it is `incomplete` (the period ends after the last collection run
    started, or after `now`) and whether it is `below_min_posts` (fewer than `min_posts` posts, or
    authors): both are shown as such instead of reading as a real rise or drop."""
    if period not in PERIODS:
        raise TrendsError(f"period must be one of {', '.join(PERIODS)} (got {period!r})")
    if unit not in UNITS:
        raise TrendsError(f"unit must be one of {', '.join(UNITS)} (got {unit!r})")
    view = warehouse.PERIOD_VIEWS[(period, unit)]
    window = (window or Window()).snapped(period)
    columns, rows = warehouse.period_rows(con, view, window.since, window.until, targets, platforms)
    model_id = current_model(con)
    table = TrendTable(view, columns, rows, model_id,
                       quality=quality_from_metrics(model_id, stored_metrics(con, model_id)))
    mark_periods(table, period, unit, min_posts, collection_horizon(con, now))
    if unit == "authors":
        table.notes.append(
            "adjusted shares are computed for post counts only: the confusion matrix describes single "
            "posts, not an author's majority vote"
        )
        return table
    matrices, notes = confusion_for_model(con, model_id)
    table.notes.extend(notes)
    if model_id is not None:
        matrices, table.corrections = prefer_human_coding(con, model_id, sorted({r["target"] for r in rows}),
                                                          matrices)
    if matrices:
        _add_adjusted(table, matrices, bootstrap_samples, seed)
    return table


def collection_horizon(con: Any, now: datetime | None = None) -> datetime:
    """Up to when the warehouse can be complete: the start of the last successful collection run,
    or `now` when there is no run record (data loaded some other way) or the run is in the future."""
    now = now or datetime.now(UTC)
    started = warehouse.last_ok_run_start(con)
    return min(now, started) if started is not None else now


MARK_COLUMNS = ["incomplete", "below_min_posts"]


def mark_periods(table: TrendTable, period: str, unit: str, min_posts: int, horizon: datetime) -> None:
    """Flag periods still being collected and periods too small to read a trend from."""
    table.columns.extend(MARK_COLUMNS)
    for row in table.rows:
        end = datetime.combine(row["period"], time(), UTC) + PERIOD_LENGTH[period]
        row["incomplete"] = end > horizon
        row["below_min_posts"] = row[unit] < min_posts


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
