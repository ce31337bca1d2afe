"""`leakwatch sql`: the output formats and the interactive prompt over warehouse.user_sql."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import warehouse
from warehouse.user_sql import Result, SqlError, parse_table_option, run_query, shortcut_sql

from .fit import fits

__all__ = ["Result", "SqlError", "interactive", "parse_table_option", "print_table", "run_query", "write_csv",
           "write_json"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def print_table(result: Result, console: Console, max_rows: int) -> None:
    table = Table(show_lines=False, header_style="bold")
    for name in result.columns:
        table.add_column(name, overflow="fold", min_width=min(len(name), 12))
    for row in result.rows[:max_rows]:
        table.add_row(*("NULL" if v is None else _cell(v) for v in row))
    if fits(table, console):
        console.print(table)
    else:
        _print_records(result, console, max_rows)
    shown = min(len(result.rows), max_rows)
    more = f" (first {shown} shown; use --csv or --max-rows for all)" if len(result.rows) > max_rows else ""
    console.print(f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}{more}")


def _one_line(value: str, width: int) -> str:
    flat = " ⏎ ".join(value.splitlines()) if "\n" in value else value
    return flat if len(flat) <= width else flat[: max(width - 1, 1)] + "…"


def _print_records(result: Result, console: Console, max_rows: int) -> None:
    """Too wide for the terminal: one block per row, a line per column, long values cut to one line."""
    name_width = max(len(c) for c in result.columns)
    value_width = max(console.width - name_width - 3, 10)
    cut = False
    for i, row in enumerate(result.rows[:max_rows], 1):
        console.print(f"[bold]-[ row {i} ]{'-' * max(console.width - 12 - len(str(i)), 3)}[/bold]")
        for name, value in zip(result.columns, row, strict=True):
            text = "NULL" if value is None else _cell(value)
            shown = _one_line(text, value_width)
            cut = cut or shown != text
            console.print(f"{name:<{name_width}} | {shown}", markup=False, highlight=False, soft_wrap=True)
    if cut:
        console.print("(long values cut to one line; --csv or --json print them whole)")


def write_csv(result: Result, out=sys.stdout) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([_cell(v) for v in row] for row in result.rows)


def write_json(result: Result, out=sys.stdout) -> None:
    records = [dict(zip(result.columns, row, strict=True)) for row in result.rows]
    json.dump(records, out, default=_cell, ensure_ascii=False, indent=1)
    out.write("\n")


HELP = """Type SQL ending with ';' (it may span lines). Each statement opens the warehouse read-only
for just that query, so a running collector is never locked out. SQL cannot read or write
files; start with --table NAME=PATH to query a local .csv/.parquet/.json file as a table.
  .tables       list tables and views
  .schema NAME  columns of a table or view
  .quit         leave (Ctrl-D works too)"""


def interactive(path: Path, console: Console, max_rows: int, tables: dict[str, Path] | None = None) -> int:
    try:
        import readline  # noqa: F401  (line editing and history when available)
    except ImportError:
        pass
    console.print(f"leakwatch sql on {path} (read-only). .help for help, .quit to leave.", soft_wrap=True)
    buffer = ""
    while True:
        try:
            line = input("...> " if buffer else "leakwatch> ")
        except EOFError:
            console.print()
            return 0
        except KeyboardInterrupt:
            console.print()
            buffer = ""
            continue
        if not buffer and line.strip().startswith("."):
            query = shortcut_sql(line.strip())
            if query is None:
                return 0
            if query == ".help":
                console.print(HELP)
                continue
            buffer = query
        else:
            buffer += line + "\n"
        if not buffer.rstrip().endswith(";"):
            continue
        query, buffer = buffer, ""
        try:
            for result in run_query(path, query, tables):
                print_table(result, console, max_rows)
        except (SqlError, warehouse.WarehouseError) as exc:
            console.print(f"[red]error:[/red] {exc}")
