"""The report's pictures: matplotlib on the Agg backend, written as deterministic PNGs.

Each function takes plain rows (dicts from the warehouse) and writes one PNG. Missing shares (an
empty period) are NaN, so lines break there instead of bridging the gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402  (the backend must be chosen first)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

ALL_COLOR = "#343a40"  # platform "all"; each platform's own colour comes from the caller
STANCE_COLORS = {"favor": "#2b8a3e", "against": "#c92a2a", "none": "#868e96"}
# Tags in the PNG that would change between runs or machines; None drops them.
_PNG_METADATA = {"Software": None}

KeyDate = tuple[date, str]


def _style() -> None:
    plt.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 110, "font.size": 10, "axes.titlesize": 12,
        "axes.titleweight": "bold", "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
        "axes.spines.right": False, "legend.frameon": False,
    })


def _date_axis(ax: plt.Axes, xlabel: str, weekly: bool = False) -> None:
    # Weekly points sit on Mondays: put the ticks there too, so each tick names a week.
    locator = mdates.WeekdayLocator(mdates.MO) if weekly else mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d\n%Y") if weekly else mdates.ConciseDateFormatter(locator))
    ax.set_xlabel(xlabel)


def _mark_key_dates(
    ax: plt.Axes, key_dates: Sequence[KeyDate], x_range: tuple[date, date], labelled: bool = True
) -> None:
    for day, label in key_dates:
        if not x_range[0] <= day <= x_range[1]:
            continue
        ax.axvline(day, color="#495057", linestyle="--", linewidth=1, zorder=1)
        if labelled:
            ax.annotate(f"{label} ({day:%b %d})", xy=(day, 0.98), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=8, color="#343a40",
                        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none",
                              "alpha": 0.7})


def _empty(ax: plt.Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=11, color="#868e96")
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, format="png", metadata=_PNG_METADATA, bbox_inches="tight")
    plt.close(fig)
    return path


def _values(rows: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else float(r[key]) for r in rows])


def volume_plot(rows: Sequence[dict[str, Any]], key_dates: Sequence[KeyDate], path: Path,
                colors: Mapping[str, str] | None = None) -> Path:
    """Posts per day per platform (rows: day, platform, posts), in the platforms' `colors`."""
    colors = {"all": ALL_COLOR, **(colors or {})}
    _style()
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.set_title("Posts collected per day, by platform")
    if not rows:
        _empty(ax, "No posts in this window")
        return _save(fig, path)
    days = sorted({r["day"] for r in rows})
    for platform in sorted({r["platform"] for r in rows}):
        mine = [r for r in rows if r["platform"] == platform]
        ax.plot([r["day"] for r in mine], [r["posts"] for r in mine], marker="o", markersize=3,
                color=colors.get(platform), label=platform)
    ax.set_ylabel("posts per day (UTC)")
    ax.set_ylim(0, max(r["posts"] for r in rows) * 1.35 + 1)  # headroom for the key-date labels
    _date_axis(ax, "date (UTC)")
    _mark_key_dates(ax, key_dates, (days[0], days[-1]))
    ax.legend(loc="upper left", title="platform")
    return _save(fig, path)


def _share_panel(ax: plt.Axes, rows: Sequence[dict[str, Any]], column: str, color: str) -> None:
    x = [r["period"] for r in rows]
    share = _values(rows, column)
    low, high = _values(rows, f"{column}_low"), _values(rows, f"{column}_high")
    ax.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0, label="95% interval")
    ax.plot(x, share, color=color, marker="o", markersize=3.5, linewidth=1.6, label="share")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(0, 1)


def stance_plot(
    target: str,
    rows: Sequence[dict[str, Any]],
    period: str,
    unit: str,
    key_dates: Sequence[KeyDate],
    path: Path,
    platforms: str = "all platforms",
) -> Path:
    """Share favor (top) and against (bottom) over time for one target, as classified and adjusted;
    `platforms` names the platforms the rows add up ("Reddit and Bluesky")."""
    _style()
    adjusted = any(r.get("adjusted_share_favor") is not None for r in rows)
    columns = [("share_", "As classified (band: 95% Wilson interval)")]
    if adjusted:
        columns.append(("adjusted_share_", "Adjusted for classifier errors (band: 95% bootstrap interval)"))
    per = "day" if period == "day" else "week"
    what = "posts" if unit == "posts" else "authors"
    title = f"Stance toward '{target}' per {per}, {platforms} together"
    if unit == "authors":
        title += " (one vote per author)"
    if not rows or not any(r.get("share_favor") is not None for r in rows):
        fig, ax = plt.subplots(figsize=(10, 4))
        ax.set_title(title)
        _empty(ax, "No labelled posts in this window")
        return _save(fig, path)
    fig, axes = plt.subplots(2, len(columns), figsize=(6.5 * len(columns) if adjusted else 10, 7),
                             sharex=True, sharey=True, squeeze=False)
    fig.suptitle(title, fontweight="bold")
    x_range = (rows[0]["period"], rows[-1]["period"])
    xlabel = "date (UTC)" if period == "day" else "week starting (Monday, UTC)"
    for col, (prefix, heading) in enumerate(columns):
        axes[0][col].set_title(heading, fontsize=10)
        for row, label in enumerate(("favor", "against")):
            ax = axes[row][col]
            _share_panel(ax, rows, f"{prefix}{label}", STANCE_COLORS[label])
            _mark_key_dates(ax, key_dates, x_range, labelled=row == 0)  # the lines say it below
            if col == 0:
                ax.set_ylabel(f"share {label} '{target}'\n(% of {what})")
        _date_axis(axes[1][col], xlabel, weekly=period == "week")
    axes[0][-1].legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def platform_plot(totals: Sequence[dict[str, Any]], unit: str, window_text: str, path: Path) -> Path:
    """Whole-window share favor/against per target and platform, with 95% Wilson error bars."""
    _style()
    targets = sorted({r["target"] for r in totals})
    fig, axes = plt.subplots(1, max(1, len(targets)), figsize=(5 * max(1, len(targets)), 4.2),
                             sharey=True, squeeze=False)
    fig.suptitle(f"Platform comparison, {window_text}", fontweight="bold")
    if not targets:
        _empty(axes[0][0], "No labelled posts in this window")
        return _save(fig, path)
    count = "posts" if unit == "posts" else "authors"
    for ax, target in zip(axes[0], targets, strict=True):
        mine = [r for r in totals if r["target"] == target]
        platforms = [r["platform"] for r in mine]
        x = np.arange(len(platforms))
        width = 0.38
        for offset, label in ((-width / 2, "favor"), (width / 2, "against")):
            share = _values(mine, f"share_{label}")
            low, high = _values(mine, f"share_{label}_low"), _values(mine, f"share_{label}_high")
            # Clipped at 0: a Wilson bound can differ from a share of 0 or 1 by a rounding error.
            errors = [np.maximum(0, np.nan_to_num(share - low)), np.maximum(0, np.nan_to_num(high - share))]
            ax.bar(x + offset, share, width, color=STANCE_COLORS[label], label=label, yerr=errors, capsize=4,
                   error_kw={"elinewidth": 1, "ecolor": "#212529"})
        ax.set_xticks(x, [f"{p}\n(n = {r[count]:,})" for p, r in zip(platforms, mine, strict=True)])
        ax.set_title(f"toward '{target}'", fontsize=10)
        ax.set_xlabel("platform (n = labelled " + count + ")")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel(f"share of {count} (bars: 95% Wilson interval)")
    axes[0][-1].legend(loc="upper right", title="stance")
    return _save(fig, path)
