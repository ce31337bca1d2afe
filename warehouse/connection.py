"""Opening the warehouse file: one writer at a time, readers read-only, short waits on a lock.

DuckDB lets one process write a file, or several processes read it, never both. The daemon holds a
write connection only while a job runs, so a reader that finds the file locked waits a little
instead of failing with a raw lock error.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from .errors import WarehouseBusyError, WarehouseError
from .schema import LATEST_VERSION, check_version, migrate, schema_version

log = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS = 15.0


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


def _connect(path: Path, read_only: bool, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait_seconds
    told = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if not _is_lock_error(exc):
                raise WarehouseError(f"cannot open warehouse {path}: {_first_line(exc)}") from None
            if time.monotonic() >= deadline:
                raise WarehouseBusyError(
                    f"warehouse {path} is busy: another leakwatch process has been writing to it "
                    f"for over {wait_seconds:.0f}s; try again shortly"
                ) from None
            if not told:
                log.warning("warehouse %s is busy (another process is writing); waiting…", path)
                told = True
            time.sleep(0.1)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def open_writer(path: str | Path, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> duckdb.DuckDBPyConnection:
    """A read-write connection; creates the file and upgrades its schema as needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only=False, wait_seconds=wait_seconds)
    try:
        con.execute("SET TimeZone = 'UTC'")
        applied = migrate(con, str(path))
        if applied:
            log.info("warehouse %s upgraded to schema version %s", path, applied[-1])
            from .views import create_views  # views depend on the tables just made

            create_views(con)
    except BaseException:
        con.close()
        raise
    return con


def open_reader(path: str | Path, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> duckdb.DuckDBPyConnection:
    """A read-only connection to an existing warehouse (upgrading an older file first)."""
    path = Path(path)
    if not path.exists():
        raise WarehouseError(
            f"no warehouse at {path}; run `leakwatch collect` or `leakwatch demo` to create one"
        )
    con = _connect(path, read_only=True, wait_seconds=wait_seconds)
    version = schema_version(con)
    if version > LATEST_VERSION:
        con.close()
        check_version(version, str(path))
    if version < LATEST_VERSION:
        # An older file: upgrade it once with a short write, then read as usual.
        con.close()
        open_writer(path, wait_seconds).close()
        con = _connect(path, read_only=True, wait_seconds=wait_seconds)
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextmanager
def writing(path: str | Path, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_writer(path, wait_seconds)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def reading(path: str | Path, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_reader(path, wait_seconds)
    try:
        yield con
    finally:
        con.close()
