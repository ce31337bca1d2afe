"""`leakwatch report`: PNG plots and one self-contained HTML page of stance over time.

Every number comes from the warehouse views (through analysis.trends) or from SQL on the posts
table, so the page shows exactly what `leakwatch sql` gives for the same window. The output is
deterministic: no timestamps, PNGs without software tags, stable ordering.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import warehouse

from . import plots
from .atomic import write_text_atomically
from .trends import (
    DEFAULT_BOOTSTRAP_SAMPLES,
    DEFAULT_MIN_POSTS,
    DEFAULT_SEED,
    LABELS,
    TrendTable,
    Window,
    stance_totals,
    stance_trends,
)


@dataclass(frozen=True)
class Platform:
    """What the report needs to know of a platform; the caller passes them in (from the collectors'
    registry), so analysis never names one."""

    name: str
    display_name: str
    color: str  # plot colour
    engagement_sql: str  # SQL over posts (alias p); not comparable across platforms: tables rank within a stance
    engagement_text: str  # the same in words ("score + comments")
    # post_url(post_id, url) -> the post's own web address (the collectors' registry knows how).
    post_url: Callable[[str, str | None], str | None] = lambda post_id, url: url


@dataclass
class ReportData:
    period: str
    unit: str
    min_posts: int
    window: Window  # as asked, snapped to whole periods
    key_dates: list[plots.KeyDate]
    model_id: str | None
    volume: list[dict[str, Any]]  # day, platform, posts
    trends: TrendTable  # every target and platform
    totals: list[dict[str, Any]]  # per target and platform over the window
    top_posts: list[dict[str, Any]]  # per target and label, most engaged first
    platforms: list[Platform] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def colors(self) -> dict[str, str]:
        return {p.name: p.color for p in self.platforms}

    def together(self) -> str:
        """The platforms named together: "Reddit and Bluesky"."""
        names = [p.display_name for p in self.platforms] or ["all platforms"]
        return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]

    def engagement_text(self) -> str:
        return "; ".join(f"{p.display_name} {p.engagement_text}" for p in self.platforms if p.engagement_text)

    def stance_rows(self, target: str, platform: str = "all") -> list[dict[str, Any]]:
        return [r for r in self.trends.rows if r["target"] == target and r["platform"] == platform]

    @property
    def targets(self) -> list[str]:
        return sorted({r["target"] for r in self.trends.rows})

    def window_text(self) -> str:
        since = self.window.since or (self.volume[0]["day"] if self.volume else None)
        until = self.window.until or (self.volume[-1]["day"] if self.volume else None)
        if since is None or until is None:
            return "no data"
        return f"{since:%Y-%m-%d} to {until:%Y-%m-%d}"


def gather(
    con: Any,
    period: str = "day",
    unit: str = "posts",
    window: Window | None = None,
    key_dates: list[plots.KeyDate] | None = None,
    top_per_stance: int = 5,
    bootstrap_samples: int = DEFAULT_BOOTSTRAP_SAMPLES,
    seed: int = DEFAULT_SEED,
    platforms: Sequence[Platform] = (),
    min_posts: int = DEFAULT_MIN_POSTS,
) -> ReportData:
    """Every number the report shows, read through the same functions the page is drawn from."""
    window = (window or Window()).snapped(period)
    trends = stance_trends(con, period, unit, window, bootstrap_samples=bootstrap_samples, seed=seed,
                           min_posts=min_posts)
    data = ReportData(
        period=period,
        unit=unit,
        min_posts=min_posts,
        window=window,
        key_dates=sorted(key_dates or []),
        model_id=trends.model_id,
        volume=warehouse.daily_volume(con, window.since, window.until),
        trends=trends,
        totals=stance_totals(con, period, unit, window),
        top_posts=warehouse.top_posts(con, window.since, window.until, top_per_stance,
                                      {p.name: p.engagement_sql for p in platforms}),
        platforms=list(platforms),
        notes=list(trends.notes),
    )
    odd = sum(row["posts"] for row in warehouse.out_of_range(con))
    if odd:
        data.notes.append(f"{odd} posts dated outside the plausible range (before the earliest platform launch "
                          "or after tomorrow) are left out of this report; they are kept in the warehouse "
                          "(SELECT * FROM posts_out_of_range)")
    if data.model_id is not None and not trends.rows:
        data.notes.insert(0, f"no posts labelled by the current model {data.model_id} in this window")
    return data


# ---------------------------------------------------------------- formatting


def fmt_share(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def fmt_interval(low: float | None, high: float | None) -> str:
    return "–" if low is None or high is None else f"{low * 100:.1f}–{high * 100:.1f}%"


def _cell(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[str]], css: str = "", row_css: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    classes = [f' class="{c}"' if c else "" for c in (row_css or [""] * len(rows))]
    body = "".join(f"<tr{c}>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n"
                   for c, row in zip(classes, rows, strict=True))
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>'


def period_note(row: dict[str, Any], period: str, min_posts: int, count: str) -> str:
    """Why a period's numbers should not be read as a trend, or '' when nothing is wrong with it."""
    notes = []
    if row.get("incomplete"):
        notes.append(f"incomplete {period} (still being collected)")
    if row.get("below_min_posts"):
        notes.append(f"fewer than {min_posts} {count}")
    return "; ".join(notes)


def _trend_table_html(data: ReportData, target: str) -> str:
    count = "posts" if data.unit == "posts" else "authors"
    adjusted = "adjusted_share_favor" in data.trends.columns
    headers = ["period" if data.period == "day" else "week starting", count]
    for label in LABELS:
        headers += [f"{label} ({count})", f"share {label}", "95% Wilson"]
    if adjusted:
        for label in ("favor", "against"):
            headers += [f"adjusted {label}", "95% interval"]
    headers.append("note")
    rows, row_css = [], []
    for r in data.stance_rows(target):
        row = [f"{r['period']:%Y-%m-%d}", f"{r[count]:,}"]
        for label in LABELS:
            row += [f"{r[label]:,}", fmt_share(r[f"share_{label}"]),
                    fmt_interval(r[f"share_{label}_low"], r[f"share_{label}_high"])]
        if adjusted:
            for label in ("favor", "against"):
                row += [fmt_share(r[f"adjusted_share_{label}"]),
                        fmt_interval(r[f"adjusted_share_{label}_low"], r[f"adjusted_share_{label}_high"])]
        note = period_note(r, data.period, data.min_posts, count)
        rows.append([*row, html.escape(note)])
        row_css.append("muted" if note else "")
    return _table(headers, rows, "numbers", row_css)


def _totals_html(data: ReportData) -> str:
    count = "posts" if data.unit == "posts" else "authors"
    headers = ["target", "platform", count]
    for label in LABELS:
        headers += [f"share {label}", "95% Wilson"]
    rows = []
    for r in data.totals:
        row = [_cell(r["target"]), _cell(r["platform"]), f"{r[count]:,}"]
        for label in LABELS:
            row += [fmt_share(r[f"share_{label}"]), fmt_interval(r[f"share_{label}_low"], r[f"share_{label}_high"])]
        rows.append(row)
    return _table(headers, rows, "numbers")


def _snippet(post: dict[str, Any], limit: int = 220) -> str:
    text = " ".join(filter(None, [post.get("title"), post.get("text")])).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def post_address(post: dict[str, Any], platforms: Sequence[Platform]) -> str | None:
    """The post's own web address, as its platform builds it (Reddit: the permalink it was stored
    with; Bluesky: the bsky.app address of its at:// URI)."""
    for platform in platforms:
        if platform.name == post.get("platform"):
            return platform.post_url(str(post.get("post_id") or ""), post.get("url"))
    return post.get("url")


def _top_posts_html(data: ReportData, target: str) -> str:
    parts = []
    for label in LABELS:
        mine = [p for p in data.top_posts if p["target"] == target and p["label"] == label]
        if not mine:
            continue
        rows = []
        for p in mine:
            # Only web links: a URL from upstream data must not run script in the reader's browser.
            url = post_address(p, data.platforms) or ""
            # Long ids (Bluesky's at:// URIs) are cut by CSS; the full id is the tooltip.
            shown = f'<span class="id" title="{_cell(p["post_id"])}">{_cell(p["post_id"])}</span>'
            link = (f'<a href="{html.escape(url)}">{shown}</a>'
                    if url.startswith(("https://", "http://")) else shown)
            rows.append([f"{p['engagement']:,}", _cell(p["platform"]), f"{p['day']:%Y-%m-%d}",
                         _cell(p.get("author_handle")), html.escape(_snippet(p)), link])
        parts.append(f"<h4>{html.escape(label)}</h4>"
                     + _table(["engagement", "platform", "date", "author", "text", "post"], rows, "posts"))
    return "\n".join(parts) or "<p>No labelled posts in this window.</p>"


_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 2em auto; max-width: 1300px;
       color: #212529; padding: 0 1em; }
img { max-width: 100%; border: 1px solid #dee2e6; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #dee2e6; padding: 0.25em 0.5em; vertical-align: top; }
th { background: #f1f3f5; }
table.numbers td { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.numbers tr.muted td { color: #868e96; background: #f8f9fa; }
table.numbers td:last-child { text-align: left; white-space: normal; min-width: 8em; }
table.numbers th { padding: 0.25em 0.3em; }
table.posts { table-layout: fixed; width: 100%; }
table.posts th:nth-child(1), table.posts th:nth-child(2), table.posts th:nth-child(3) { width: 6.5em; }
table.posts th:nth-child(4) { width: 11em; }
table.posts th:nth-child(6) { width: 13em; }
table.posts td { overflow-wrap: anywhere; }
.id { display: inline-block; max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
      vertical-align: bottom; }
.quality { font-size: 1.05em; overflow-wrap: anywhere; }
.note { background: #fff9db; border-left: 4px solid #fab005; padding: 0.4em 0.8em; }
details { margin-bottom: 1em; }
.scroll { overflow-x: auto; }
"""


def _img(path: Path, alt: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}"></p>'


def _quality_html(data: ReportData) -> str:
    """The current model's measured quality, first thing on the page: every share depends on it."""
    quality = data.trends.quality
    if quality is None or quality.model_id is None:
        return ""
    caveat = quality.caveat()
    # Which evaluation corrected the adjusted shares, per target: human coding, or a stored evaluation.
    used = "".join(f"<li>{html.escape(target)}: {html.escape(text)}</li>"
                   for target, text in sorted(data.trends.corrections.items()))
    return (f'<p class="quality"><strong>Model quality.</strong> {html.escape(quality.summary())}.</p>'
            + (f'<p class="note"><strong>Caveat:</strong> {html.escape(caveat)}.</p>' if caveat else "")
            + (f'<p class="note">Adjusted shares:</p><ul class="note">{used}</ul>' if used else ""))


def render_html(data: ReportData, images: dict[str, Path]) -> str:
    unit_text = ("one vote per author per period (an author's most frequent label; ties count as none)"
                 if data.unit == "authors" else "every labelled post counts once")
    period_text = "UTC day" if data.period == "day" else "ISO week (Monday to Sunday, UTC)"
    key_dates = ", ".join(f"{d:%Y-%m-%d} {html.escape(label)}" for d, label in data.key_dates) or "none"
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in data.notes)
    sections = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>leakwatch report: stance over time</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>leakwatch: stance over time</h1>",
        _quality_html(data),
        "<ul>",
        f"<li>Window: {html.escape(data.window_text())}; period: {period_text}</li>",
        f"<li>Model: {_cell(data.model_id or 'none')}; counting: {unit_text}</li>",
        f"<li>Key dates marked: {key_dates}</li>",
        "</ul>",
        notes,
        "<h2>Volume</h2>",
        _img(images["volume"], "posts collected per day, by platform"),
    ]
    for target in data.targets:
        sections += [
            f"<h2>Stance toward '{html.escape(target)}'</h2>",
            "<p>Shares <em>as classified</em> are the fraction of posts the model put in each class; the "
            "Wilson interval covers sampling noise only. <em>Adjusted</em> shares correct for the model's "
            "known errors (its confusion matrix on evaluation data); their interval (a Dirichlet bootstrap) "
            "includes the uncertainty of that correction and is never narrower than the Wilson interval. "
            f"The number under each point is its {'posts' if data.unit == 'posts' else 'authors'}; hollow "
            f"grey points have fewer than {data.min_posts} (<code>report.min_posts</code>) and grey bands "
            "mark a period still being collected: read neither as a rise or a drop.</p>",
            _img(images[f"stance_{target}"], f"stance toward {target} over time"),
            f"<details><summary>Numbers per period ({'both' if len(data.platforms) == 2 else 'all'} "
            "platforms together)</summary>",
            f'<div class="scroll">{_trend_table_html(data, target)}</div>',
            "</details>",
            f"<h3>Most engaged posts per stance toward '{html.escape(target)}'</h3>",
            f"<p>Engagement = {html.escape(data.engagement_text())}.</p>",
            _top_posts_html(data, target),
        ]
    sections += [
        "<h2>Platform comparison</h2>",
        _img(images["platforms"], "share favor and against per platform"),
        f'<div class="scroll">{_totals_html(data)}</div>',
        "<p>Reproduce any number with <code>leakwatch sql</code>, e.g. "
        f"<code>SELECT * FROM {data.trends.view} WHERE target = 'openai' AND platform = 'all' "
        "ORDER BY period</code>.</p>",
        "</body></html>",
    ]
    return "\n".join(s for s in sections if s) + "\n"


def write_report(data: ReportData, out_dir: Path) -> Path:
    """Write the PNGs and report.html into out_dir; return the HTML page's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {
        "volume": plots.volume_plot(data.volume, data.key_dates, out_dir / "volume.png", data.colors),
        "platforms": plots.platform_plot(data.totals, data.unit, data.window_text(), out_dir / "platforms.png"),
    }
    for target in data.targets:
        images[f"stance_{target}"] = plots.stance_plot(
            target, data.stance_rows(target), data.period, data.unit, data.key_dates,
            out_dir / f"stance_{target}.png", data.together(), data.min_posts)
    page = out_dir / "report.html"
    write_text_atomically(page, render_html(data, images))  # never a half-written page
    return page

