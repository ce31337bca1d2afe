"""`leakwatch demo`: the pipeline end to end, offline, in a folder of its own."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from rich.console import Console

import warehouse
from analysis.trends import Window
from collectors import registry
from collectors.registry import Source

from . import demo_folder
from . import status as status_mod
from .config import Config, default_config_text, parse_config


def _collect(config: Config, source: Source, console: Console) -> None:
    """Collect one source's part of the sample corpus from its replay server, with its real client."""
    from .collect import run_collection

    with source.demo(config.source_settings(source.name)) as session:
        console.print(session.intro)
        for demo_pass in session.passes:
            settings = config.settings.model_copy(update={source.name: demo_pass.settings})
            local = Config(settings, config.source, config.base_dir)
            collector = registry.build(source.name, demo_pass.settings, demo_pass.secrets, **demo_pass.options)
            summary = run_collection(local, collector, console, clock=demo_pass.clock)
            console.print(f"  {demo_pass.label}{summary.line()}")
    if source.community_label:
        _show_communities(config, source, console)


def run_demo(demo_dir: Path, console: Console, force: bool = False) -> int:
    # A fresh warehouse every time, so the demo's numbers are always the same; only ever in a
    # folder the demo created itself (demo_folder).
    demo_dir = demo_folder.prepare(demo_dir, default_config_text(), force)
    config = parse_config(default_config_text(), "demo config", demo_dir)
    console.print(f"[bold]leakwatch demo[/bold] in {demo_dir}", soft_wrap=True)
    with warehouse.writing(config.warehouse_path) as con:
        warehouse.configure(con, config.target_names, None)
    for source in registry.sources():
        if source.demo is not None:
            _collect(config, source, console)
    _label_posts(config, console)
    status_mod.show(status_mod.gather(config.warehouse_path), console, brief=True)
    console.print(f"Query it: {command_hint()} --config {_shown(demo_dir / 'leakwatch.toml')} sql "
                  f"\"{QUERY_HINT}\"", soft_wrap=True, markup=False)
    _write_report(config, console)
    _export_step(config, console)
    console.print(f"Code posts by hand: leakwatch --config {demo_dir / 'leakwatch.toml'} serve  "
                  "(then open http://127.0.0.1:8765/)", soft_wrap=True)
    return 0


# A few readable columns, so the first query a newcomer runs fits an 80-column terminal as a table.
QUERY_HINT = "SELECT platform, openai, artists, left(text, 40) AS text FROM posts_labeled LIMIT 5"


def command_hint() -> str:
    """How to run leakwatch from here: `leakwatch` when it is on PATH, else the venv's script."""
    script = Path(sys.executable).parent / "leakwatch"
    on_path = shutil.which("leakwatch")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "leakwatch"
    return _shown(script) if script.exists() else f"{_shown(Path(sys.executable))} -m leakwatch"


def _shown(path: Path) -> str:
    """A path relative to the current folder when it is inside it (shorter to type)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _export_step(config: Config, console: Console) -> None:
    """The weekly CSV exports of the demo's data, as the daemon writes them every Monday."""
    from .export import export_weeks

    console.print("[bold]Weekly exports[/bold] (as `leakwatch run` writes them every Monday)")
    exported = export_weeks(config)
    for week in exported:
        console.print(f"  export {week.summary()}")
    if not exported:
        console.print("  no complete week with posts to export")
    console.print(f"  posts.csv, stance_daily.csv and manifest.json per week in {config.export_dir}", soft_wrap=True)


def _write_report(config: Config, console: Console) -> None:
    """The stance-over-time report on whatever the demo collected and labelled, per week: a day of
    the sample holds a handful of posts, too few to read a share from."""
    from .report import write_report_for

    page = write_report_for(config, None, Window(), "week", False, console)
    console.print(f"Report: {page}", soft_wrap=True)


def _show_communities(config: Config, source: Source, console: Console) -> None:
    """Per community: posts of each kind, edits and deletions seen, and the top threads."""
    from rich.table import Table

    root = source.kinds[0]
    with warehouse.reading(config.warehouse_path) as con:
        per_community = warehouse.community_summary(con, source.name, source.kinds)
        changes = warehouse.version_changes(con, source.name)
        top = warehouse.top_threads(con, source.name, root, 3)
    table = Table(title=f"{source.display_name} posts stored", title_justify="left", header_style="bold")
    for name in (source.community_label, *(f"{kind}s" for kind in source.kinds), "edited", "deleted"):
        table.add_column(name, justify="left" if name == source.community_label else "right")
    for row in per_community:
        table.add_row(*(str(v) for v in row))
    console.print(table)
    console.print(f"  versions: {changes.get('created', 0)} created, {changes.get('edited', 0)} edits and "
                  f"{changes.get('deleted', 0)} deletions seen upstream")
    for community, score, comments, title in top:
        console.print(f"  {source.community_prefix}{community} [{score} points, {comments} comments] {title}")


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
