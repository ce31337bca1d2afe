"""ISO weeks (Monday to Sunday, UTC) and the ISO 8601 UTC timestamps exports write."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ..errors import ExportError

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Week:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        match = _WEEK.match(text.strip())
        if not match:
            raise ExportError(f"week {text!r} is not an ISO week; write it like 2024-W48")
        year, number = int(match.group(1)), int(match.group(2))
        if not 1 <= year <= 9998:  # a week of year 9999 ends past the calendar's last day
            raise ExportError(f"week {text!r} is out of range: years 0001 to 9998")
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError:
            raise ExportError(f"week {text!r} does not exist: {year} has no ISO week {number}") from None
        return cls(year, number)

    @property
    def start(self) -> datetime:
        return datetime.combine(date.fromisocalendar(self.year, self.number, 1), datetime.min.time(), UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=7)

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a Z: 2024-11-26T14:03:00Z."""
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"
