"""One explicit transaction whose failure is reported as what went wrong, never as the rollback.

When DuckDB fails mid-transaction (a full disk on COMMIT, say), it may already have ended the
transaction itself; a ROLLBACK then fails with "cannot rollback - no transaction is active", and if
that error escaped it would hide the real cause. The rollback's own failure is logged and dropped,
and a DuckDB error becomes one WarehouseError line that names the cause (say, no space left on device).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from .errors import WarehouseError

log = logging.getLogger(__name__)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException as exc:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error as rollback_error:  # the original error is the one that matters
            log.debug("rollback after a failed transaction also failed: %s", rollback_error)
        if isinstance(exc, duckdb.Error):
            raise WarehouseError(f"could not write to the warehouse: {_one_line(exc)}") from exc
        raise


def _one_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines) if lines else type(exc).__name__
