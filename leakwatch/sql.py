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
        table.add_column(name, overflow="fold")
    for row in result.rows[:max_rows]:
        table.add_row(*("NULL" if v is None else _cell(v) for v in row))
    console.print(table)
    shown = min(len(result.rows), max_rows)
    more = f" (first {shown} shown; use --csv or --max-rows for all)" if len(result.rows) > max_rows else ""
    console.print(f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}{more}")


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
    console.print(f"leakwatch sql on {path} (read-only). .help for help, .quit to leave.")
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
