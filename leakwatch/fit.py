"""Tables that fit the terminal: measure before printing, and choose a narrower layout if needed."""

from __future__ import annotations

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table


def fits(table: Table, console: Console) -> bool:
    """Whether `table` prints at its natural width, with no column folded."""
    # Measured with room to spare: Measurement.get clamps to the options' width otherwise.
    unbounded = console.options.update(width=1_000_000)
    return Measurement.get(console, unbounded, table).maximum <= console.width


def header_min_width(header: str) -> int:
    """A header may wrap between words, never inside one (`started at`, not `star ted at`)."""
    return max(len(word) for word in header.split()) if header.strip() else 1
