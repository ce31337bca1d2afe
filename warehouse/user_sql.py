"""The user-SQL runner of `leakwatch sql`: user SQL runs on a connection that cannot touch files.

Classifying statements by type is only the friendly first message; it cannot be trusted on its own
(`WITH w AS (COPY ... TO 'f') SELECT 1` and `EXPLAIN ANALYZE COPY ...` are "queries"). The guarantee is
the connection: read-only, with DuckDB's external access switched off and its configuration locked,
so COPY TO, read_text/read_csv, ATTACH, INSTALL/LOAD and `SET enable_external_access = true` all fail.
Local files the user wants to query are read by leakwatch itself (`--table NAME=PATH`) into TEMP
tables before the lock. The command line formats the results; the prompt's dot-commands translate
to SQL here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .connection import reading
from .errors import WarehouseError

# Statement kinds that only read. Everything else (INSERT, COPY, ATTACH, SET, ...) is refused up front.
_READING = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.PRAGMA,
}

# The functions that read a local file into a TEMP table for `--table`, by file suffix.
_TABLE_READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".json": "read_json"}
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_LOCK = ("SET enable_external_access = false", "SET lock_configuration = true")

_REFUSED = "`leakwatch sql` is read-only and file access is off"


class SqlError(WarehouseError):
    """A query the user wrote cannot run; the message says why in one line."""


@dataclass
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


def parse_table_option(text: str) -> tuple[str, Path]:
    """`NAME=PATH` of `--table` -> (name, path); one clear line when it is not that."""
    name, sep, path = text.partition("=")
    name = name.strip()
    if not sep or not path.strip():
        raise SqlError(f"--table {text!r}: write it as NAME=PATH.csv (or .parquet, .json)")
    if not _TABLE_NAME.match(name):
        raise SqlError(f"--table {text!r}: {name!r} is not a table name (letters, digits, _)")
    return name, Path(path.strip()).expanduser()


def _load_tables(con: duckdb.DuckDBPyConnection, tables: Mapping[str, Path]) -> None:
    """Read each local file into a TEMP table, while the connection may still read files."""
    for name, path in tables.items():
        reader = _TABLE_READERS.get(path.suffix.lower())
        if reader is None:
            raise SqlError(f"--table {name}={path}: only .csv, .parquet or .json files can be read")
        if not path.is_file():
            raise SqlError(f"--table {name}={path}: no such file")
        taken = con.execute("SELECT count(*) FROM information_schema.tables WHERE lower(table_name) = lower(?)",
                            [name]).fetchone()[0]
        if taken:  # a temporary table would shadow the warehouse's own
            raise SqlError(f"--table {name}={path}: the warehouse already has a table or view named {name}")
        try:
            con.execute(f'CREATE TEMP TABLE "{name}" AS SELECT * FROM {reader}(?)', [str(path)])
        except duckdb.Error as exc:
            raise SqlError(f"--table {name}={path}: cannot read it: {_one_line(exc)}") from None


def _lock(con: duckdb.DuckDBPyConnection) -> None:
    """From here on the connection cannot read or write any file but the warehouse it has open."""
    for statement in _LOCK:
        con.execute(statement)


def run_query(path: Path, query: str, tables: Mapping[str, Path] | None = None) -> list[Result]:
    """Run every statement in `query` on a short-lived, read-only, file-access-free connection."""
    with reading(path) as con:
        _load_tables(con, tables or {})
        _lock(con)
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
            except duckdb.PermissionException as exc:
                raise SqlError(f"{_REFUSED} (read local files with --table NAME=PATH): {_one_line(exc)}") from None
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
