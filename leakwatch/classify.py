"""`leakwatch classify` and the daemon's labelling step: analysis.classify with a progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from analysis.classify import ClassifySummary, label_posts

from .config import Config


def run_classification(
    config: Config, console: Console | None = None, relabel: bool = False, model: str | None = None
) -> ClassifySummary:
    """Label what needs labelling with the current model (or `model`), and make it current."""
    progress = Progress(TextColumn("labelling"), BarColumn(), MofNCompleteColumn(), TextColumn("posts"),
                        TimeRemainingColumn(), console=console or Console(stderr=True), transient=True,
                        disable=console is None)
    with progress:
        task = progress.add_task("labelling", total=None)
        return label_posts(config.warehouse_path, config.stance_setup(), relabel, model,
                           started=lambda n: progress.update(task, total=n),
                           advanced=lambda k: progress.advance(task, k))
