"""Suite-wide settings: the demo trains a tiny quick model, cached in a folder of the test session."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _quick_demo_model(tmp_path_factory: pytest.TempPathFactory):
    # Subprocesses inherit os.environ: `leakwatch demo` then trains in seconds, not minutes, and
    # never touches the user's model cache.
    saved = {k: os.environ.get(k) for k in ("LEAKWATCH_DEMO_QUICK_MODEL", "LEAKWATCH_CACHE_DIR")}
    os.environ["LEAKWATCH_DEMO_QUICK_MODEL"] = "1"
    os.environ["LEAKWATCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("model-cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
