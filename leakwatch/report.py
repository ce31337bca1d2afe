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
from .fit import fits, header_min_width


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


def _interval(row: dict, prefix: str, stacked: bool = False) -> str:
    share, low, high = row.get(prefix), row.get(f"{prefix}_low"), row.get(f"{prefix}_high")
    if share is None:
        return "–"
    return f"{share * 100:.1f}{chr(10) if stacked else ' '}({low * 100:.1f}–{high * 100:.1f})"


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
    unknown = [t for t in targets if t not in config.target_names]
    if unknown:
        raise TrendsError(f"trends: no target {', '.join(map(repr, unknown))}; the configured targets are "
                          f"{', '.join(config.target_names)}")
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
    # Wrapped at the terminal's width (--csv/--json send it to stderr).
    console.print(f"quality: {table.quality.summary()}", markup=False, highlight=False)
    caveat = table.quality.caveat()
    if caveat:
        console.print(f"caveat: {caveat}", markup=False, highlight=False)


def _plain(value: object) -> object:
    return "" if value is None else value


def _show(table: TrendTable, authors: bool, min_posts: int, console: Console) -> None:
    if not table.rows:
        console.print(f"{table.view}: no rows (no labelled posts from the current model in this window)")
        return
    # One table per target and platform, in the widest layout that fits the terminal, so no interval
    # is ever cut: one line per row; else each interval under its share; else without the `none`
    # columns (--csv has every column).
    console.print(f"{table.view}, model {table.model_id}: share % "
                  "(95% interval: Wilson; adjusted: Dirichlet bootstrap)")
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in table.rows:
        groups.setdefault((r["target"], r["platform"]), []).append(r)
    dropped = False
    for (target, platform), rows in groups.items():
        for stacked, labels in ((False, LABELS), (True, LABELS), (True, ("favor", "against"))):
            out = _trend_table(table, rows, f"{target} · {platform}", authors, stacked, labels)
            if fits(out, console):
                break
        dropped = dropped or labels != LABELS
        console.print(out)
    if dropped:
        console.print("(the `none` shares are left out to fit the terminal; --csv or a wider terminal shows them)")
    legend = [text for flag, text in (
        ("incomplete", "† = the period is still being collected"),
        ("below_min_posts", f"* = fewer than {min_posts} {'authors' if authors else 'posts'} (report.min_posts)"),
    ) if any(r.get(flag) for r in table.rows)]
    if legend:
        console.print(f"note: {'; '.join(legend)}: read neither as a rise or a drop", highlight=False)


def _trend_table(table: TrendTable, rows: list[dict], title: str, authors: bool, stacked: bool,
                 labels: tuple[str, ...]) -> Table:
    count = "authors" if authors else "posts"
    adjusted = "adjusted_share_favor" in table.columns
    # No box and one space either side: the stacked layout of a period, a count and four shares fits 80.
    out = Table(title=title, title_justify="left", title_style="bold", header_style="bold underline",
                padding=(0, 1), box=None, pad_edge=False, show_lines=stacked)
    for name in ["period", count]:
        out.add_column(name, no_wrap=True, justify="right" if name == count else "left")
    for name in [*labels, *(("adj. favor", "adj. against") if adjusted else ())]:
        out.add_column(name, justify="right", no_wrap=True, min_width=header_min_width(name))
    for r in rows:
        # Marked and dimmed: too small, or still being collected; neither reads as a rise or a drop.
        marks = ("†" if r.get("incomplete") else "") + ("*" if r.get("below_min_posts") else "")
        cells = [f"{r['period']}{marks}", f"{r[count]:,}"]
        cells += [_interval(r, f"share_{label}", stacked) for label in labels]
        if adjusted:
            cells += [_interval(r, f"adjusted_share_{label}", stacked) for label in ("favor", "against")]
        out.add_row(*cells, style="dim" if marks else None)
    return out
