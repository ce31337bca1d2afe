"""`leakwatch demo`: the pipeline end to end, offline, in a folder of its own."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from rich.console import Console

import warehouse

from . import status as status_mod
from .config import Config, default_config_text, parse_config


def run_demo(demo_dir: Path, console: Console) -> int:
    demo_dir = demo_dir.resolve()
    # A fresh warehouse every time, so the demo's numbers are always the same.
    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True)
    config = parse_config(default_config_text(), "demo config", demo_dir)
    console.print(f"[bold]leakwatch demo[/bold] in {demo_dir}")
    with warehouse.writing(config.warehouse_path) as con:
        warehouse.configure(con, config.target_names, None)
    _label_posts(config, console)
    status_mod.show(status_mod.gather(config.warehouse_path), console)
    console.print(f"Query it: leakwatch --config {demo_dir / 'leakwatch.toml'} sql \"SELECT * FROM posts LIMIT 5\"")
    (demo_dir / "leakwatch.toml").write_text(default_config_text(), encoding="utf-8")
    return 0


# Set to 1 for smoke tests: the demo then trains a tiny one-epoch model on 32 examples (its own
# model_id) instead of the real one, which takes minutes the first time on a machine.
QUICK_MODEL_ENV = "LEAKWATCH_DEMO_QUICK_MODEL"


def _label_posts(config: Config, console: Console) -> None:
    """Train the stance model (or reuse the cached one), then label the collected posts."""
    from analysis.train import HyperParameters

    from .classify import run_classification
    from .training import ensure_default_model

    hp = HyperParameters(epochs=1, limit=32) if os.environ.get(QUICK_MODEL_ENV) == "1" else HyperParameters()
    ensure_default_model(config, console, hp)
    console.print(run_classification(config, console).line(), soft_wrap=True)
