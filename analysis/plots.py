"""The report's pictures: matplotlib on the Agg backend, written as deterministic PNGs.

Each function takes plain rows (dicts from the warehouse) and writes one PNG. Missing shares (an
empty period) are NaN, so lines break there instead of bridging the gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402  (the backend must be chosen first)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FixedLocator, PercentFormatter  # noqa: E402

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


def _date_axis(ax: plt.Axes, xlabel: str, days: Sequence[date], weekly: bool = False) -> None:
    """Ticks on the data's own days (weekly: its Mondays), evenly spaced from the first one, at most
    about nine; every tick spells out its month. (Date locators restart their spacing at each month,
    which crowds the last days of a month against the 1st.)"""
    step = 7 if weekly else 1
    span = (days[-1] - days[0]).days // step + 1 if days else 1
    every = max(1, -(-span // 9))  # ceiling division
    ticks = [days[0] + timedelta(days=i * every * step) for i in range(-(-span // every))] if days else []
    ax.xaxis.set_major_locator(FixedLocator(mdates.date2num(ticks)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    years = sorted({d.year for d in days})
    ax.set_xlabel(f"{xlabel}, {years[0]}" if len(years) == 1 else f"{xlabel}, {years[0]}–{years[-1]}" if years
                  else xlabel)


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
    _date_axis(ax, "date (UTC)", days)
    _mark_key_dates(ax, key_dates, (days[0], days[-1]))
    # Outside the axes: inside, it can cover a key-date label.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="platform")
    return _save(fig, path)


MUTED = "#adb5bd"  # periods too small or still being collected


def _reliable(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    return np.array([not r.get("below_min_posts") and not r.get("incomplete") for r in rows])


def _share_panel(ax: plt.Axes, rows: Sequence[dict[str, Any]], column: str, color: str) -> None:
    """Band and line over every period with posts; solid and filled only where the period is
    complete and has enough posts, so a small or unfinished period cannot read as a real change."""
    x = [r["period"] for r in rows]
    share = _values(rows, column)
    low, high = _values(rows, f"{column}_low"), _values(rows, f"{column}_high")
    reliable = _reliable(rows)
    ax.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)
    ax.plot(x, share, color=color, linewidth=1, linestyle=":", alpha=0.8)  # joins across small periods
    ax.plot(x, np.where(reliable, share, np.nan), color=color, marker="o", markersize=4, linewidth=1.8)
    ax.plot(x, np.where(reliable, np.nan, share), linestyle="none", marker="o", markersize=4.5,
            markerfacecolor="white", markeredgecolor=MUTED, markeredgewidth=1.2)
    for r in rows:
        if r.get("incomplete"):
            ax.axvspan(r["period"], r["period"] + (r["_length"]), color=MUTED, alpha=0.25, linewidth=0)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylim(-0.09, 1)  # room under 0% for the n of each period
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])


def _annotate_counts(ax: plt.Axes, rows: Sequence[dict[str, Any]], count: str) -> None:
    """The number of posts (authors) of each period, under its point."""
    for r in rows:
        small = r.get("below_min_posts") or r.get("incomplete")
        ax.annotate(f"{r[count]:,}", xy=(r["period"], -0.045), ha="center", va="center", fontsize=6.5,
                    color=MUTED if small else "#495057", annotation_clip=False, zorder=5,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})


def stance_plot(
    target: str,
    rows: Sequence[dict[str, Any]],
    period: str,
    unit: str,
    key_dates: Sequence[KeyDate],
    path: Path,
    platforms: str = "all platforms",
    min_posts: int = 10,
) -> Path:
    """Share favor (top) and against (bottom) over time for one target, as classified and adjusted;
    `platforms` names the platforms the rows add up ("Reddit and Bluesky")."""
    _style()
    adjusted = any(r.get("adjusted_share_favor") is not None for r in rows)
    columns = [("share_", "As classified (band: 95% Wilson interval)")]
    if adjusted:
        columns.append(("adjusted_share_", "Adjusted for classifier errors (band: 95% interval)"))
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
    length = timedelta(days=1 if period == "day" else 7)
    rows = [{**r, "_length": length} for r in rows]
    fig, axes = plt.subplots(2, len(columns), figsize=(6.5 * len(columns) if adjusted else 10, 7.4),
                             sharex=True, sharey=True, squeeze=False)
    fig.suptitle(title, fontweight="bold")
    x_range = (rows[0]["period"], rows[-1]["period"])
    xlabel = "date (UTC)" if period == "day" else "week starting (Monday, UTC)"
    for col, (prefix, heading) in enumerate(columns):
        axes[0][col].set_title(heading, fontsize=10)
        for row, label in enumerate(("favor", "against")):
            ax = axes[row][col]
            _share_panel(ax, rows, f"{prefix}{label}", STANCE_COLORS[label])
            _annotate_counts(ax, rows, what)
            _mark_key_dates(ax, key_dates, x_range, labelled=row == 0)  # the lines say it below
            if col == 0:
                ax.set_ylabel(f"share {label} '{target}'\n(% of {what})")
        _date_axis(axes[1][col], xlabel, [r["period"] for r in rows], weekly=period == "week")
    handles = [
        Line2D([], [], color="#495057", marker="o", markersize=4, linewidth=1.8, label="share"),
        Patch(color="#495057", alpha=0.18, label="95% interval"),
        Line2D([], [], linestyle="none", marker="$n$", color="#495057", label=f"numbers under 0%: {what} per {per}"),
    ]
    if not _reliable(rows).all():  # only what the picture shows
        handles.insert(2, Line2D([], [], linestyle=":", color="#495057", marker="o", markersize=4.5,
                                 markerfacecolor="white", markeredgecolor=MUTED,
                                 label=f"fewer than {min_posts} {what}, or incomplete"))
    if any(r.get("incomplete") for r in rows):
        handles.insert(3, Patch(color=MUTED, alpha=0.25, label="incomplete period (still being collected)"))
    # Below the plots, so it never covers a point or a key-date label.
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, -0.045))
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
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), title="stance")
    return _save(fig, path)
