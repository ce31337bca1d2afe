"""The user-SQL runner of `leakwatch sql`: only reading statements, on a short-lived read-only connection.

The command line formats the results; the dot-commands of its prompt translate to SQL here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .connection import reading
from .errors import WarehouseError

# Statement kinds that only read. Everything else (INSERT, COPY, ATTACH, SET, ...) is refused,
# even though the read-only connection would already stop writes to the warehouse itself.
_READING = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.PRAGMA,
}


class SqlError(WarehouseError):
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
    with reading(path) as con:
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


def shortcut_sql(line: str) -> str | None:
    """Translate a prompt dot-command into SQL; None to quit, ".help" when it is not one."""
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
