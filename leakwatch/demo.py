"""`leakwatch demo`: the pipeline end to end, offline, in a folder of its own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

import warehouse
from analysis.trends import Window

from . import status as status_mod
from .config import Config, default_config_text, parse_config


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of one step only."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _collect_bluesky(config: Config, console: Console) -> None:
    """Collect the sample corpus's Bluesky posts from the replay server, with the real atproto client."""
    from collectors.bluesky import BlueskyCollector
    from collectors.replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE, BlueskyReplay
    from collectors.replay.corpus import load_sample_corpus

    from .collect import run_collection

    with BlueskyReplay(load_sample_corpus()) as server:
        config.settings.bluesky.service_url = server.url
        with _environment({"BLUESKY_HANDLE": DEMO_HANDLE, "BLUESKY_APP_PASSWORD": DEMO_APP_PASSWORD}):
            collector = BlueskyCollector.from_config(config)
        summary = run_collection(config, collector, console)
    console.print(summary.line())


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
    _collect_bluesky(config, console)
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
