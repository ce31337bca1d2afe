"""`leakwatch demo`: the pipeline end to end, offline, in a folder of its own."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

import warehouse
from analysis.trends import Window

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
    status_mod.show(status_mod.gather(config.warehouse_path), console)
    console.print(f"Query it: leakwatch --config {demo_dir / 'leakwatch.toml'} sql \"SELECT * FROM posts LIMIT 5\"")
    (demo_dir / "leakwatch.toml").write_text(default_config_text(), encoding="utf-8")
    _write_report(config, console)
    return 0


def _write_report(config: Config, console: Console) -> None:
    """Last step: the stance-over-time report on whatever the demo collected and labelled."""
    from .report import write_report_for

    page = write_report_for(config, None, Window(), None, False, console)
    console.print(f"Report: {page}")
