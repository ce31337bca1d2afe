"""`leakwatch status`: what is in the warehouse and how collection has been going."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

import warehouse
from collectors import registry

from .fit import header_min_width


def _describe_checkpoint(row: dict[str, Any]) -> dict[str, Any]:
    """The raw cursor becomes `mid_backfill`: did a pass stop mid-listing (the source says how to tell)."""
    cursor = row.pop("cursor")
    try:
        mid = registry.get(row["platform"]).resumes_mid_listing(cursor)
    except registry.UnknownSource:  # a platform no longer installed: any cursor counts
        mid = cursor is not None
    updated = row.pop("updated_at")
    return {**row, "mid_backfill": mid, "updated_at": updated}


def gather(path: Path) -> dict[str, Any]:
    with warehouse.reading(path) as con:
        rows = warehouse.status_rows(con)
        info = {
            "warehouse": str(path),
            "size_bytes": path.stat().st_size,
            "schema_version": warehouse.schema_version(con),
            "current_model": warehouse.get_setting(con, "current_model"),
        }
    rows["checkpoints"] = [_describe_checkpoint(row) for row in rows["checkpoints"]]
    return {**info, **rows}


# Columns the human view leaves out to stay readable in an 80-column terminal (--json has them all).
_HIDDEN = {"finished_at", "error", "updated_at"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _table(title: str, rows: list[dict[str, Any]], console: Console, empty: str,
           hidden: frozenset[str] | set[str] = frozenset()) -> None:
    if not rows:
        console.print(f"[bold]{title}[/bold]: {empty}")
        return
    # Counters that are zero (or empty) in every row say nothing: leave them out, so the table fits.
    columns = [name for name in rows[0] if name not in hidden
               and any(row[name] not in (0, None, "") for row in rows)]
    table = Table(title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in columns:
        header = name.replace("_", " ")
        table.add_column(header, overflow="fold", min_width=header_min_width(header))
    for row in rows:
        table.add_row(*(_cell(row[name]) for name in columns))
    console.print(table)


def show(info: dict[str, Any], console: Console, brief: bool = False) -> None:
    """The human view; `brief` (for the demo) leaves out runs and checkpoints."""
    size_mb = info["size_bytes"] / 1_000_000
    console.print(
        f"[bold]Warehouse[/bold] {info['warehouse']} ({size_mb:.1f} MB), "
        f"schema version {info['schema_version']}, current model: {info['current_model'] or 'none yet'}"
    )
    _table("Posts", info["posts"], console, "none collected yet")
    odd = sum(row["posts"] for row in info.get("out_of_range", []))
    if odd:
        console.print(f"[yellow]{odd} posts dated outside the plausible range[/yellow] (before the earliest "
                      "platform launch or after tomorrow): kept, but left out of series, reports and exports; "
                      "see the posts_out_of_range view")
    if not brief:
        _table("Last runs", info["runs"], console, "no collection runs yet", _HIDDEN)
        _table("Checkpoints", info["checkpoints"], console, "none yet", _HIDDEN)
    _table("Labels", info["labels"], console, "no posts labelled yet")
    if info["recent_errors"] and not brief:
        _table("Recent errors", info["recent_errors"], console, "")
