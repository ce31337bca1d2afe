"""Which weeks an export writes: by default every complete week not exported yet or changed since."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .calendar import Week


def week_states(rows: Sequence[tuple[str, int, int, str]]) -> dict[str, dict[str, Any]]:
    """Per week with posts, what its export depends on: posts, current-model labels, and a digest of
    their content (texts, labels, probabilities) — not when they were labelled."""
    return {
        week: {"posts": posts, "labels": int(labels), "content_md5": digest}
        for week, posts, labels, digest in rows
    }


def choose_weeks(
    states: dict[str, dict[str, Any]],
    weeks: Sequence[Week] | None,
    stored: Callable[[str], dict[str, Any] | None],
    pseudonymize: bool,
    now: datetime,
    options: dict[str, Any] | None = None,
) -> list[tuple[Week, dict[str, Any]]]:
    """(week, the state its manifest records). Given `weeks`: those, complete or not. Else every
    complete week whose stored state (`stored(name)`) differs: new posts, new labels, another model."""
    if weeks is not None:
        empty = {"posts": 0, "labels": 0, "content_md5": None}
        return [
            (week, {**states.get(str(week), empty), "complete": week.end <= now, "pseudonymized": pseudonymize,
                    **(options or {})})
            for week in sorted(set(weeks), key=lambda w: (w.year, w.number))
        ]
    chosen = []
    for name, state in states.items():
        week = Week.parse(name)
        if week.end > now:
            continue  # not over yet
        full_state = {**state, "complete": True, "pseudonymized": pseudonymize, **(options or {})}
        if stored(name) != full_state:
            chosen.append((week, full_state))
    return chosen
