"""`leakwatch classify` and the daemon's labelling step: analysis.classify with a progress bar."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import warehouse
from analysis.classify import ClassifySummary, label_posts
from analysis.errors import ModelError

from .config import Config

if TYPE_CHECKING:
    from analysis.llm_classify import LlmSummary


class NothingToLabel(ClassifySummary):
    """No warehouse or no posts: nothing to label, and no file created."""

    def __init__(self, reason: str):
        super().__init__(model_id="")
        self.reason = reason

    def line(self) -> str:
        return f"classify: nothing to label: {self.reason}"


def run_classification(
    config: Config, console: Console | None = None, relabel: bool = False, model: str | None = None
) -> ClassifySummary | LlmSummary:
    """Label what needs labelling with the current model (or `model`), and make it current."""
    path = config.warehouse_path
    if not path.exists():
        return NothingToLabel(f"no warehouse yet at {path}; `leakwatch collect` fills it")
    with warehouse.reading(path) as con:
        if warehouse.post_count(con) == 0:
            return NothingToLabel(f"the warehouse {path} has no posts yet; `leakwatch collect` fills it")
    setup = config.stance_setup_to_run(model)  # with an llm: model, its endpoint settings and key (or a ConfigError)
    # Where an llm: run sends posts: on the console when there is one, else (the daemon) in the log.
    notify = (lambda line: console.print(line, soft_wrap=True)) if console is not None else None
    shown = console or Console(stderr=True)
    progress = Progress(TextColumn("labelling"), BarColumn(), MofNCompleteColumn(), TextColumn("posts"),
                        TimeRemainingColumn(), console=shown, transient=True,
                        disable=console is None or not shown.is_terminal)  # no bar (nor its blank line) when piped
    with progress:
        task = progress.add_task("labelling", total=None)
        try:
            return label_posts(path, setup, relabel, model,
                               started=lambda n: progress.update(task, total=n),
                               advanced=lambda k: progress.advance(task, k), notify=notify)
        except ModelError as exc:
            offer = _cached_offer(config) if str(exc).startswith("no stance model yet") else None
            if offer:
                raise ModelError(f"no model in this warehouse; a cached model {offer} exists: "
                                 f"run `leakwatch model use {offer}` (or `leakwatch train`)") from None
            raise


def _cached_offer(config: Config) -> str | None:
    """The newest model in the user cache that labels every configured target, if any."""
    from analysis.stance import read_card

    from .training import cache_dir

    found = []
    for folder in cache_dir().glob("*/model_card.json"):
        try:
            card = read_card(folder.parent)
        except ModelError:
            continue
        if set(config.target_names) <= set(card.get("targets", [])):
            found.append((card.get("created_at", ""), card["model_id"]))
    return max(found)[1] if found else None
