"""`leakwatch demo`: the pipeline end to end, offline, in a folder of its own."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

import warehouse
from analysis.trends import Window

from . import status as status_mod
from .config import Config, default_config_text, parse_config


def _collect_bluesky(config: Config, console: Console) -> None:
    """Collect the sample corpus's Bluesky posts from the replay server, with the real atproto client."""
    from collectors.bluesky import BlueskyCollector
    from collectors.replay.bluesky_api import DEMO_APP_PASSWORD, DEMO_HANDLE, BlueskyReplay
    from collectors.replay.corpus import load_sample_corpus

    from .collect import run_collection

    console.print("[bold]Bluesky[/bold]: collecting from a local XRPC replay of Bluesky (atproto, app password)")
    with BlueskyReplay(load_sample_corpus()) as server:
        bluesky = config.settings.bluesky.model_copy(update={"service_url": server.url})
        local = Config(config.settings.model_copy(update={"bluesky": bluesky}), config.source, config.base_dir)
        with _environment({"BLUESKY_HANDLE": DEMO_HANDLE, "BLUESKY_APP_PASSWORD": DEMO_APP_PASSWORD}):
            collector = BlueskyCollector.from_config(local)
        summary = run_collection(local, collector, console)
    console.print(f"  {summary.line()}")


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
    demo_reddit(config, console)
    _collect_bluesky(config, console)
    _label_posts(config, console)
    status_mod.show(status_mod.gather(config.warehouse_path), console, brief=True)
    console.print(f"Query it: leakwatch --config {demo_dir / 'leakwatch.toml'} sql \"SELECT * FROM posts LIMIT 5\"")
    (demo_dir / "leakwatch.toml").write_text(default_config_text(), encoding="utf-8")
    _write_report(config, console)
    _export_step(config, console)
    console.print(f"Code posts by hand: leakwatch --config {demo_dir / 'leakwatch.toml'} serve  "
                  "(then open http://127.0.0.1:8765/)", soft_wrap=True)
    return 0


def _export_step(config: Config, console: Console) -> None:
    """The weekly CSV exports of the demo's data, as the daemon writes them every Monday."""
    from .export import export_weeks

    console.print("[bold]Weekly exports[/bold] (as `leakwatch run` writes them every Monday)")
    exported = export_weeks(config)
    for week in exported:
        console.print(f"  export {week.summary()}")
    if not exported:
        console.print("  no complete week with posts to export")
    console.print(f"  posts.csv, stance_daily.csv and manifest.json per week in {config.export_dir}")


def _write_report(config: Config, console: Console) -> None:
    """The stance-over-time report on whatever the demo collected and labelled."""
    from .report import write_report_for

    page = write_report_for(config, None, Window(), None, False, console)
    console.print(f"Report: {page}")


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set variables for the duration of one step, then put back what was there."""
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


def demo_reddit(config: Config, console: Console) -> None:
    """Collect the sample corpus from the Reddit replay server with real praw, in two passes."""
    from collectors.reddit import RedditCollector
    from collectors.replay.corpus import load_sample_corpus
    from collectors.replay.reddit_api import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, RedditReplayServer

    from .collect import run_collection

    demo_env = {"REDDIT_CLIENT_ID": DEFAULT_CLIENT_ID, "REDDIT_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                "REDDIT_USER_AGENT": "leakwatch-demo/0.1 (offline replay)"}
    console.print("[bold]Reddit[/bold]: collecting from a local replay of the Reddit API (praw, app-only OAuth)")
    with RedditReplayServer(load_sample_corpus()) as server, _environment(demo_env):
        # The sample spans five weeks: refresh every thread in it, so later passes see its edits.
        reddit = config.settings.reddit.model_copy(
            update={"oauth_url": server.url, "reddit_url": server.url, "refresh_days": 40})
        local = Config(config.settings.model_copy(update={"reddit": reddit}), config.source, config.base_dir)
        end = server.now
        # Three passes on the replay clock: the day after the leak, a week later, the end of the sample.
        # Each reads only what is newer than its checkpoints and refetches the recent threads.
        for when in (datetime(2024, 11, 27, tzinfo=UTC), datetime(2024, 12, 3, tzinfo=UTC), end):
            server.now = when
            summary = run_collection(local, RedditCollector.from_config(local, clock=lambda: server.now), console)
            console.print(f"  as of {when:%Y-%m-%d}: {summary.line()}")
    _show_reddit(config, console)


def _show_reddit(config: Config, console: Console) -> None:
    from rich.table import Table

    with warehouse.reading(config.warehouse_path) as con:
        per_sub = con.execute("""
            SELECT community, count(*) FILTER (kind = 'submission') AS submissions,
                   count(*) FILTER (kind = 'comment') AS comments,
                   count(*) FILTER (edited) AS edited, count(*) FILTER (deleted) AS deleted
            FROM posts WHERE platform = 'reddit' GROUP BY ALL ORDER BY submissions DESC, community""").fetchall()
        changes = dict(con.execute("SELECT change, count(*) FROM post_versions v WHERE platform = 'reddit' "
                                   "GROUP BY ALL").fetchall())
        top = con.execute("""
            SELECT community, score, reply_count, title FROM posts
            WHERE platform = 'reddit' AND kind = 'submission' ORDER BY score DESC LIMIT 3""").fetchall()
    table = Table(title="Reddit posts stored", title_justify="left", header_style="bold")
    for name in ("subreddit", "submissions", "comments", "edited", "deleted"):
        table.add_column(name, justify="left" if name == "subreddit" else "right")
    for row in per_sub:
        table.add_row(*(str(v) for v in row))
    console.print(table)
    console.print(f"  versions: {changes.get('created', 0)} created, {changes.get('edited', 0)} edits and "
                  f"{changes.get('deleted', 0)} deletions seen upstream")
    for community, score, comments, title in top:
        console.print(f"  r/{community} [{score} points, {comments} comments] {title}")


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
