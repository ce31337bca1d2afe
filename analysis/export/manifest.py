"""manifest.json of a week's export: files, model, query set, and the week's collection record."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import warehouse

from ..atomic import write_text_atomically
from .calendar import Week, timestamp

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


def stored_state(folder: Path) -> dict[str, Any] | None:
    """What the week's existing export was made from (None: no readable manifest)."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        return manifest.get("source_state")
    except (OSError, ValueError, AttributeError):
        return None


def collection_facts(con: Any, week: Week, intervals: Mapping[str, float], now: datetime) -> dict[str, Any]:
    """Runs during the week that failed, were interrupted or hit a result cap, and schedule gaps."""
    problems = warehouse.problem_runs(con, week.start, week.end)
    failed = [
        {"run_id": r[0], "platform": r[1], "status": r[2], "started_at": timestamp(r[3]), "error": r[6]}
        for r in problems if r[2] in ("failed", "interrupted")
    ]
    caps = [
        {"run_id": r[0], "platform": r[1], "started_at": timestamp(r[3]), "caps_hit": r[5]}
        for r in problems if r[5] > 0
    ]
    runs: dict[str, dict[str, int]] = {}
    for platform, status, n in warehouse.run_counts(con, week.start, week.end):
        runs.setdefault(platform, {})[status] = n
    return {"runs": runs, "failed_runs": failed, "caps_hit": caps,
            "gaps": schedule_gaps(con, week, intervals, now)}


def schedule_gaps(con: Any, week: Week, intervals: Mapping[str, float], now: datetime) -> list[dict[str, Any]]:
    """Stretches of the week longer than twice a platform's interval (minutes) without a successful run.

    Only the part of the week after the platform's first run counts: posts of earlier weeks came in
    by backfill, which a schedule gap says nothing about.
    """
    gaps = []
    for platform, minutes in intervals.items():
        first = warehouse.first_run_start(con, platform)
        if first is None:
            continue
        window_start, window_end = max(week.start, first), min(week.end, now)
        if window_end <= window_start:
            continue
        finished = warehouse.ok_finishes(con, platform, window_start, window_end)
        allowed = timedelta(minutes=2 * minutes)
        edges = [window_start, *finished, window_end]
        for before, after in zip(edges, edges[1:], strict=False):
            if after - before > allowed:
                gaps.append({"platform": platform, "from": timestamp(before), "to": timestamp(after),
                             "hours": round((after - before).total_seconds() / 3600, 2)})
    return gaps


def query_set(con: Any, week: Week, configured: Mapping[str, Any]) -> dict[str, Any]:
    used = warehouse.run_query_keys(con, week.start, week.end)
    return {"configured": dict(configured), "run_query_keys": [f"{platform}:{key}" for platform, key in used]}


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Written last: its presence says the week's files are whole."""
    write_text_atomically(folder / MANIFEST_NAME,
                          json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
