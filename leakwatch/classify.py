"""`leakwatch classify` and the daemon's labelling step: analysis.classify with a progress bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from analysis.classify import ClassifySummary, label_posts

from .config import Config

if TYPE_CHECKING:
    from analysis.llm_classify import LlmSummary


def run_classification(
    config: Config, console: Console | None = None, relabel: bool = False, model: str | None = None
) -> ClassifySummary | LlmSummary:
    """Label what needs labelling with the current model (or `model`), and make it current."""
    setup = config.stance_setup_to_run(model)  # with an llm: model, its endpoint settings and key (or a ConfigError)
    progress = Progress(TextColumn("labelling"), BarColumn(), MofNCompleteColumn(), TextColumn("posts"),
                        TimeRemainingColumn(), console=console or Console(stderr=True), transient=True,
                        disable=console is None)
    # Where an llm: run sends posts: on the console when there is one, else (the daemon) in the log.
    notify = (lambda line: console.print(line, soft_wrap=True)) if console is not None else None
    with progress:
        task = progress.add_task("labelling", total=None)
        return label_posts(config.warehouse_path, setup, relabel, model,
                           started=lambda n: progress.update(task, total=n),
                           advanced=lambda k: progress.advance(task, k), notify=notify)
