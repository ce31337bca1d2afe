"""Which weeks an export writes: by default every complete week not exported yet or changed since."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from .calendar import Week, timestamp


def week_states(rows: Sequence[tuple[str, int, int, datetime | None]]) -> dict[str, dict[str, Any]]:
    """Per week with posts, what its export depends on: posts, current-model labels, newest label."""
    return {
        week: {"posts": posts, "labels": int(labels), "last_labelled_at": timestamp(last) if last else None}
        for week, posts, labels, last in rows
    }


def choose_weeks(
    states: dict[str, dict[str, Any]],
    weeks: Sequence[Week] | None,
    stored: Callable[[str], dict[str, Any] | None],
    pseudonymize: bool,
    now: datetime,
) -> list[tuple[Week, dict[str, Any]]]:
    """(week, the state its manifest records). Given `weeks`: those, complete or not. Else every
    complete week whose stored state (`stored(name)`) differs: new posts, new labels, another model."""
    if weeks is not None:
        empty = {"posts": 0, "labels": 0, "last_labelled_at": None}
        return [
            (week, {**states.get(str(week), empty), "complete": week.end <= now, "pseudonymized": pseudonymize})
            for week in sorted(set(weeks), key=lambda w: (w.year, w.number))
        ]
    chosen = []
    for name, state in states.items():
        week = Week.parse(name)
        if week.end > now:
            continue  # not over yet
        full_state = {**state, "complete": True, "pseudonymized": pseudonymize}
        if stored(name) != full_state:
            chosen.append((week, full_state))
    return chosen
