"""RFC 4180 CSV files whose text cells cannot run as spreadsheet formulas, written atomically."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..atomic import atomic_file
from .calendar import timestamp

# What a spreadsheet would read as a formula (OWASP "CSV injection"); tab, CR and LF too (a cell
# may start on a new line), and the full-width forms some spreadsheets fold to the ASCII signs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralize(text: str) -> str:
    """Make a text cell inert in spreadsheets: a leading quote stops formula evaluation."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def cell(value: Any) -> str:
    """One CSV cell. Only text is neutralized: numbers (a negative score) stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return neutralize("; ".join(str(v) for v in value))
    return neutralize(str(value))


class HashingSink:
    """A text sink that writes UTF-8 bytes to a binary handle and keeps their SHA-256."""

    def __init__(self, handle: BinaryIO):
        self.handle = handle
        self.sha = hashlib.sha256()

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self.sha.update(data)
        return self.handle.write(data)


def write_csv(final: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], bom: bool = False
              ) -> tuple[int, str]:
    """Write rows as RFC 4180 CSV (CRLF, minimal quoting), rename into place; return (rows, sha256).
    `bom` starts the file with a UTF-8 byte-order mark, which Excel needs to read it as UTF-8."""
    count = 0
    with atomic_file(final) as handle:
        sink = HashingSink(handle)
        if bom:
            sink.write("\ufeff")
        writer = csv.writer(sink, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(v) for v in row])
            count += 1
    return count, sink.sha.hexdigest()
