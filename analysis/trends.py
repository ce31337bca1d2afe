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

import duckdb
import numpy as np

from .trend_errors import TrendsError

LABELS = ("favor", "against", "none")
PERIODS = ("day", "week")
UNITS = ("posts", "authors")
DEFAULT_BOOTSTRAP_SAMPLES = 1000
DEFAULT_SEED = 20241126

_VIEWS = {
    ("day", "posts"): "stance_daily",
    ("week", "posts"): "stance_weekly",
    ("day", "authors"): "stance_daily_authors",
    ("week", "authors"): "stance_weekly_authors",
}


@dataclass
class TrendTable:
    """Rows of a period view (plus adjusted columns when available) and notes about what is missing."""

    view: str
    columns: list[str]
    rows: list[dict[str, Any]]
    model_id: str | None
    notes: list[str] = field(default_factory=list)
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

    def sql(self, column: str) -> tuple[str, list[date]]:
        """A WHERE fragment (always valid) and its parameters."""
        parts, params = ["true"], []
        if self.since:
            parts.append(f"{column} >= ?")
            params.append(self.since)
        if self.until:
            parts.append(f"{column} <= ?")
            params.append(self.until)
        return " AND ".join(parts), params


# ---------------------------------------------------------------- confusion matrices


def confusion_for_model(
    con: duckdb.DuckDBPyConnection, model_id: str | None
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Per-target 3x3 confusion counts (rows true, columns predicted, LABELS order) and notes."""
    if model_id is None:
        return {}, ["no current model is set, so there are no stance labels yet (run `leakwatch classify`)"]
    row = con.execute("SELECT metrics FROM models WHERE model_id = ?", [model_id]).fetchone()
    if row is None or row[0] is None:
        return {}, [
            f"current model {model_id} has no evaluation metrics, so adjusted shares are left out "
            "(run `leakwatch evaluate` to add them)"
        ]
    try:
        metrics = json.loads(row[0]) if isinstance(row[0], str) else row[0]
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


def prefer_human_coding(con: duckdb.DuckDBPyConnection, model_id: str, targets: list[str],
                        matrices: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Use the confusion matrix from the human-coded random samples where a target has at least
    MIN_CORRECTION_N of them (and it can be inverted); elsewhere keep the stored evaluation. Returns
    the matrices and, per target, a sentence saying which evaluation was used."""
    from .validation import MIN_CORRECTION_N, human_correction

    human = human_correction(con, model_id, targets)
    row = con.execute("SELECT metrics FROM models WHERE model_id = ?", [model_id]).fetchone()
    try:
        stored = json.loads(row[0]) if row and isinstance(row[0], str) else (row[0] if row else None) or {}
    except json.JSONDecodeError:
        stored = {}
    chosen, used = dict(matrices), {}
    for target in targets:
        h = human[target]
        matrix = np.asarray(h["confusion"], dtype=float)
        if h["usable"] and identifiability_problem(matrix) is None:
            chosen[target] = matrix
            used[target] = h["source"]
            continue
        data = (stored.get(target) or {}).get("data", "the model's stored evaluation") if target in matrices else None
        why = f"{h['n']} human-coded posts (fewer than {MIN_CORRECTION_N})" if not h["usable"] else \
            f"the {h['n']} human-coded posts cannot separate the classes"
        used[target] = (f"corrected with {data}, since {why}" if data else f"not corrected: {why} and no "
                        "stored evaluation")
    return chosen, used


def current_model(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute("SELECT value FROM settings WHERE key = 'current_model'").fetchone()
    return row[0] if row else None


def stance_trends(
    con: duckdb.DuckDBPyConnection,
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
    view = _VIEWS[(period, unit)]
    where, params = (window or Window()).snapped(period).sql("period")
    if targets:
        where += f" AND target IN ({', '.join('?' * len(targets))})"
        params += targets
    if platforms:
        where += f" AND platform IN ({', '.join('?' * len(platforms))})"
        params += platforms
    cursor = con.execute(f"SELECT * FROM {view} WHERE {where} ORDER BY target, platform, period", params)
    columns = [d[0] for d in cursor.description]
    rows = [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
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
    if model_id is not None:
        matrices, table.corrections = prefer_human_coding(con, model_id, sorted({r["target"] for r in rows}),
                                                          matrices)
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
    con: duckdb.DuckDBPyConnection, period: str = "week", unit: str = "posts", window: Window | None = None
) -> list[dict[str, Any]]:
    """Per target and platform, the period view's counts summed over the window, with Wilson intervals."""
    view = _VIEWS[(period, unit)]
    count = "posts" if unit == "posts" else "authors"
    where, params = (window or Window()).snapped(period).sql("period")
    shares = ", ".join(
        f"{label} / nullif({count}, 0) AS share_{label}, wilson_low({label}, {count}) AS share_{label}_low, "
        f"wilson_high({label}, {count}) AS share_{label}_high"
        for label in LABELS
    )
    cursor = con.execute(
        f"""
        SELECT target, platform, {count}, favor, against, none, {shares}
        FROM (SELECT target, platform, sum({count}) AS {count}, sum(favor) AS favor,
                     sum(against) AS against, sum(none) AS none
              FROM {view} WHERE {where} GROUP BY ALL)
        ORDER BY target, platform""",
        params,
    )
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]
