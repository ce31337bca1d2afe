"""The layering holds: import-linter's contracts (pyproject.toml) and light record types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_collector_protocol_and_records_import_without_duckdb():
    code = ("import sys, collectors.base, collectors.registry, warehouse.records; collectors.registry.sources(); "
            "assert 'duckdb' not in sys.modules, 'duckdb was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
