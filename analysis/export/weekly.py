"""Weekly CSV exports: one folder per ISO week with posts.csv, stance_daily.csv and manifest.json.

Exports only read the warehouse. A week is written whole into a temporary folder beside the week's
folder and swapped in (analysis.atomic), so a week's files change together or not at all: a killed
export never leaves a partial file, nor a manifest describing other files than those beside it.
Output is deterministic: the same warehouse state gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import warehouse

from ..atomic import atomic_path, remove_stale_temps
from ..errors import ExportError
from . import manifest as manifest_mod
from .calendar import Week, timestamp
from .csv_file import write_csv
from .policy import choose_weeks, week_states
from .pseudonym import Pseudonymizer


@dataclass(frozen=True)
class ExportJob:
    """Everything an export needs, handed in by the caller (the command line or the daemon)."""

    warehouse_path: Path
    root: Path  # the folder of the week folders
    now: datetime
    pseudonymizer: Pseudonymizer | None = None
    configured_queries: Mapping[str, Any] = field(default_factory=dict)  # per platform, for the manifest
    intervals: Mapping[str, float] = field(default_factory=dict)  # minutes per platform, for schedule gaps
    post_url_sql: str = "NULL"  # SQL over posts p: each post's own web address (from the sources)
    include_deleted: bool = False  # keep the text of posts deleted upstream (platform terms say leave it out)
    excel: bool = False  # UTF-8 with a byte-order mark, so Excel shows non-English posts
    bootstrap_samples: int = 1000  # for the adjusted shares in stance_daily.csv (report.bootstrap_samples)
    seed: int = 20241126  # their seed (report.seed), so exports stay byte-identical


@dataclass
class WeekExport:
    week: Week
    folder: Path
    posts: int
    daily_rows: int
    complete: bool

    def summary(self) -> str:
        note = "" if self.complete else " (week not over yet: partial)"
        posts = f"{self.posts} post{'' if self.posts == 1 else 's'}"
        rows = f"{self.daily_rows} daily stance row{'' if self.daily_rows == 1 else 's'}"
        return f"{self.week}: {posts}, {rows}{note}"

    def line(self) -> str:
        return f"{self.summary()} → {self.folder}"


def _export_week(con: Any, job: ExportJob, week: Week, state: dict[str, Any]) -> WeekExport:
    final = job.root / str(week)
    with atomic_path(final) as folder:
        folder.mkdir()
        counts = _write_week(con, job, week, state, folder)
    return WeekExport(week, final, *counts, state["complete"])


def _write_week(con: Any, job: ExportJob, week: Week, state: dict[str, Any], folder: Path) -> tuple[int, int]:
    """posts.csv, stance_daily.csv and manifest.json of `week` into `folder`; (posts, daily rows)."""
    targets = warehouse.get_targets(con)
    model_id = warehouse.get_setting(con, "current_model")

    columns = warehouse.POST_COLUMNS
    label_columns = [c for t in targets for c in (t, f"{t}_confidence")]
    rows: Iterable[tuple[Any, ...]] = warehouse.week_posts(con, week.start, week.end, label_columns,
                                                           job.post_url_sql, job.include_deleted)
    pseudonymizer = job.pseudonymizer
    if pseudonymizer is not None:
        id_at, handle_at = columns.index("author_id"), columns.index("author_handle")
        rows = (
            (*r[:id_at], pseudonymizer(r[id_at]), pseudonymizer(r[handle_at]), *r[handle_at + 1:]) for r in rows
        )
    posts_count, posts_sha = write_csv(folder / "posts.csv", columns + label_columns, rows, job.excel)
    daily_header, daily_rows, corrections = _stance_daily(con, job, week, model_id)
    daily_count, daily_sha = write_csv(folder / "stance_daily.csv", daily_header, daily_rows, job.excel)

    manifest_mod.write_manifest(folder, {
        "format_version": manifest_mod.FORMAT_VERSION,
        "week": str(week),
        "period": {"start": timestamp(week.start), "end": timestamp(week.end)},
        "complete": state["complete"],
        "model_id": model_id,
        "targets": targets,
        # Per target, which evaluation corrected stance_daily.csv's adjusted shares (human coding or not).
        "adjusted_shares": corrections,
        "authors": "pseudonymized (HMAC-SHA256, keyed)" if pseudonymizer else "as collected",
        "deleted_posts": "text included" if job.include_deleted else "text left out (deleted upstream)",
        "encoding": "utf-8 with BOM (Excel)" if job.excel else "utf-8",
        "files": {
            "posts.csv": {"rows": posts_count, "sha256": posts_sha},
            "stance_daily.csv": {"rows": daily_count, "sha256": daily_sha},
        },
        "query_set": manifest_mod.query_set(con, week, job.configured_queries),
        "collection": manifest_mod.collection_facts(con, week, job.intervals, job.now),
        "source_state": state,
    })
    return posts_count, daily_count


def _stance_daily(con: Any, job: ExportJob, week: Week, model_id: str | None
                  ) -> tuple[list[str], list[tuple[Any, ...]], dict[str, str]]:
    """The stance_daily view for the week's days, with the adjusted shares (empty when the current
    model has no usable evaluation metrics) and the model_id whose labels they count."""
    from ..trends import ADJUSTED_COLUMNS, Window, stance_trends

    last_day = (week.end - timedelta(days=1)).date()
    table = stance_trends(con, "day", "posts", Window(week.start.date(), last_day),
                          bootstrap_samples=job.bootstrap_samples, seed=job.seed)
    columns = [*table.columns, *(c for c in ADJUSTED_COLUMNS if c not in table.columns)]
    rows = sorted(table.rows, key=lambda r: (r["period"], r["target"], r["platform"]))
    return [*columns, "model_id"], [(*(r.get(c) for c in columns), model_id) for r in rows], table.corrections


def _options(job: ExportJob) -> dict[str, Any]:
    """Export options the manifest's state records (only when set, so older exports stay current)."""
    return {k: True for k, on in (("include_deleted", job.include_deleted), ("excel", job.excel)) if on}


def export_weeks(job: ExportJob, weeks: Sequence[Week] | None = None) -> list[WeekExport]:
    """Export the given weeks, or by default every complete week not exported yet or changed since."""
    root = job.root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create export folder {root}: {exc.strerror}") from None
    remove_stale_temps(root)  # week folders of killed exports, and old weeks a kill left aside
    done: list[WeekExport] = []
    with warehouse.reading(job.warehouse_path) as con:
        states = week_states(warehouse.week_states(con))
        empty = [str(w) for w in weeks or () if str(w) not in states]
        if empty:  # an empty folder would read as "exported, nothing happened"; say so instead
            raise ExportError(f"no posts in {', '.join(sorted(set(empty)))}: nothing exported")
        chosen = choose_weeks(states, weeks, lambda name: manifest_mod.stored_state(root / name),
                              job.pseudonymizer is not None, job.now, _options(job))
        for week, state in chosen:
            try:
                done.append(_export_week(con, job, week, state))
            except OSError as exc:
                raise ExportError(f"cannot write export of {week} in {root}: {exc.strerror or exc}") from None
    return done
