"""Wiring for `leakwatch report` and `leakwatch trends`: config and warehouse in, files and tables out."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

import warehouse
from analysis import report as report_mod
from analysis.errors import TrendsError
from analysis.trends import LABELS, TrendTable, Window, stance_trends
from collectors import registry

from .config import Config


def platform_facts() -> list[report_mod.Platform]:
    """What the report shows of each registered source."""
    return [report_mod.Platform(s.name, s.display_name, s.color, s.engagement_sql, s.engagement_text, s.post_url)
            for s in registry.sources()]


def write_report_for(
    config: Config, out_dir: Path | None, window: Window, period: str | None, authors: bool, err: Console
) -> Path:
    settings = config.settings.report
    out_dir = (out_dir or config.report_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise TrendsError(f"--out {out_dir} is a file; give a folder for the report")
    with warehouse.reading(config.warehouse_path) as con:
        data = report_mod.gather(
            con,
            period=period or settings.period,
            unit="authors" if authors else "posts",
            window=window,
            key_dates=[(k.date, k.label) for k in settings.key_dates],
            top_per_stance=settings.top_posts,
            bootstrap_samples=settings.bootstrap_samples,
            seed=settings.seed,
            platforms=platform_facts(),
            min_posts=settings.min_posts,
        )
    for note in data.notes:
        err.print(f"note: {note}")
    try:
        return report_mod.write_report(data, out_dir)
    except OSError as exc:
        raise TrendsError(f"cannot write the report to {out_dir}: {exc.strerror or exc}") from None


def _interval(row: dict, prefix: str) -> str:
    share, low, high = row.get(prefix), row.get(f"{prefix}_low"), row.get(f"{prefix}_high")
    if share is None:
        return "–"
    return f"{share * 100:.1f} ({low * 100:.1f}–{high * 100:.1f})"


def print_trends(
    config: Config,
    window: Window,
    period: str | None,
    authors: bool,
    targets: list[str],
    platforms: list[str],
    output: str,
    console: Console,
    err: Console,
) -> TrendTable:
    settings = config.settings.report
    with warehouse.reading(config.warehouse_path) as con:
        table = stance_trends(con, period or settings.period, "authors" if authors else "posts", window,
                              targets or None, platforms or None, settings.bootstrap_samples, settings.seed,
                              settings.min_posts)
    for note in table.notes:
        err.print(f"note: {note}")
    _print_quality(table, console if output == "table" else err)  # csv/json stay machine-readable
    for target, used in table.corrections.items():
        err.print(f"adjusted shares for {target}: {used}")
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows([[_plain(r.get(c)) for c in table.columns] for r in table.rows])
    elif output == "json":
        print(json.dumps([{c: r.get(c) for c in table.columns} for r in table.rows], default=str, indent=1))
    else:
        _show(table, authors, settings.min_posts, console)
    return table


def _print_quality(table: TrendTable, console: Console) -> None:
    """The header line: how good the model behind these shares was measured to be, and on what."""
    if table.quality is None or table.quality.model_id is None:
        return
    console.print(f"quality: {table.quality.summary()}", soft_wrap=True, markup=False, highlight=False)
    caveat = table.quality.caveat()
    if caveat:
        console.print(f"caveat: {caveat}", soft_wrap=True, markup=False, highlight=False)


def _plain(value: object) -> object:
    return "" if value is None else value


def _show(table: TrendTable, authors: bool, min_posts: int, console: Console) -> None:
    if not table.rows:
        console.print(f"{table.view}: no rows (no labelled posts from the current model in this window)")
        return
    count = "authors" if authors else "posts"
    adjusted = "adjusted_share_favor" in table.columns
    title = f"{table.view}, model {table.model_id}: share % (95% interval: Wilson; adjusted: Dirichlet bootstrap)"
    out = Table(title=title, title_justify="left", header_style="bold", padding=(0, 1))
    for name in ["period", "target", "platform", count]:
        out.add_column(name, no_wrap=True, justify="right" if name in ("period", count) else "left")
    for name in [*LABELS, *(("adj. favor", "adj. against") if adjusted else ())]:
        out.add_column(name, justify="right")
    out.add_column("note")
    for r in table.rows:
        cells = [str(r["period"]), r["target"], r["platform"], f"{r[count]:,}"]
        cells += [_interval(r, f"share_{label}") for label in LABELS]
        if adjusted:
            cells += [_interval(r, f"adjusted_share_{label}") for label in ("favor", "against")]
        cells.append(", ".join(filter(None, ["partial" if r.get("incomplete") else "",
                                             f"n<{min_posts}" if r.get("below_min_posts") else ""])))
        # Too small or still being collected: dimmed, so it does not read as a real change.
        out.add_row(*cells, style="dim" if cells[-1] else None)
    console.print(out)
    legend = [text for flag, text in (
        ("incomplete", "partial = the period is still being collected"),
        ("below_min_posts", f"n<{min_posts} = fewer than {min_posts} {count} (report.min_posts)"),
    ) if any(r.get(flag) for r in table.rows)]
    if legend:
        console.print(f"note: {'; '.join(legend)}: read neither as a rise or a drop", soft_wrap=True,
                      highlight=False)
