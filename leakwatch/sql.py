"""`leakwatch sql`: read-only SQL over the warehouse, one-shot or interactive."""

from __future__ import annotations

import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

import warehouse

# Statement kinds that only read. Everything else (INSERT, COPY, ATTACH, SET, ...) is refused,
# even though the read-only connection would already stop writes to the warehouse itself.
_READING = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.PRAGMA,
}


class SqlError(warehouse.WarehouseError):
    """A query the user wrote cannot run; the message says why in one line."""


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def run_query(path: Path, query: str) -> list[Result]:
    """Run every statement in `query` on a short-lived read-only connection."""
    with warehouse.reading(path) as con:
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise SqlError(f"SQL error: {_one_line(exc)}") from None
        if not statements:
            raise SqlError("no SQL statement given")
        for statement in statements:
            if statement.type not in _READING:
                kind = statement.type.name.replace("_", " ")
                raise SqlError(
                    f"`leakwatch sql` is read-only: {kind} statements are refused "
                    "(use --csv or --json and redirect the output to save results)"
                )
        results = []
        for statement in statements:
            try:
                cursor = con.execute(statement.query)
                columns = [d[0] for d in cursor.description or []]
                results.append(Result(columns, cursor.fetchall()))
            except duckdb.Error as exc:
                raise SqlError(f"SQL error: {_one_line(exc)}") from None
        return results


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
for just that query, so a running collector is never locked out.
  .tables       list tables and views
  .schema NAME  columns of a table or view
  .quit         leave (Ctrl-D works too)"""


def _shortcut(line: str) -> str | None:
    """Translate dot-commands into SQL; None to quit."""
    words = line.split()
    if words[0] in (".quit", ".exit", ".q"):
        return None
    if words[0] == ".tables":
        return ("SELECT table_name AS name, table_type AS type FROM information_schema.tables "
                "WHERE table_schema = 'main' ORDER BY name;")
    if words[0] == ".schema" and len(words) == 2:
        name = words[1].replace("'", "''")
        return (f"SELECT column_name, data_type FROM information_schema.columns "
                f"WHERE table_name = '{name}' ORDER BY ordinal_position;")
    return ".help"


def interactive(path: Path, console: Console, max_rows: int) -> int:
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
            query = _shortcut(line.strip())
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
            for result in run_query(path, query):
                print_table(result, console, max_rows)
        except (SqlError, warehouse.WarehouseError) as exc:
            console.print(f"[red]error:[/red] {exc}")
