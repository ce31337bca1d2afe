"""`leakwatch train` and `leakwatch evaluate` with progress and tables, and the demo's train-or-reuse step."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import warehouse
from analysis.models import copy_model, register_folder
from analysis.training import card_matches, evaluate_and_store, evaluation_data, train_and_register, training_data

from .config import Config

if TYPE_CHECKING:
    from analysis.train import HyperParameters

log = logging.getLogger(__name__)

CACHE_ENV = "LEAKWATCH_CACHE_DIR"


def cache_dir() -> Path:
    """Per-user cache of trained models, so the demo and benchmarks train once per machine."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "leakwatch" / "models"


@contextmanager
def training_progress(console: Console) -> Iterator[Callable[[Any], None]]:
    """A progress bar for training; yields the `report` callback analysis.train calls per step."""
    progress = Progress(TextColumn("training {task.fields[info]}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("steps"), TimeElapsedColumn(), console=console, transient=True)
    with progress:
        task = progress.add_task("train", total=None, info="")

        def report(p: Any) -> None:
            info = f"epoch {p.epoch}, loss {p.loss:.3f}"
            if p.validation_f1 is not None:
                info += f", validation macro-F1 {p.validation_f1:.3f}"
                console.print(f"epoch {p.epoch}: mean loss {p.loss:.3f}, validation macro-F1 {p.validation_f1:.3f}")
            progress.update(task, completed=p.step, total=p.total_steps, info=info)

        yield report


def run_training(config: Config, console: Console, hp: HyperParameters, csv_path: Path | None = None,
                 with_annotations: bool = False, base: str | None = None) -> Any:
    """Train (from `base`, default the bundled MiniLM), save under <data_dir>/models/<model_id>,
    register in the warehouse; returns TrainedModel."""
    data = training_data(config.target_names, csv_path)
    annotations = None
    if with_annotations:
        from .annotate import add_active_annotations

        data, annotations = add_active_annotations(config, data)
        console.print(f"adding {annotations['active_annotations']} human-coded posts of active sample(s) "
                      f"{annotations['samples']}")
    with training_progress(console) as report:
        return train_and_register(config.warehouse_path, config.stance_setup(), hp, data, report,
                                  card_data={"annotations": annotations} if annotations else None, base=base)


def ensure_default_model(config: Config, console: Console, hp: HyperParameters | None = None) -> str:
    """The default model in this data folder: reused from here or the user cache when its card
    matches, else trained (minutes) and cached. Returns its model_id, registered in the warehouse."""
    from analysis.train import HyperParameters, planned_model_id

    hp = hp or HyperParameters()
    data = training_data(config.target_names, None)
    model_id = planned_model_id(data, hp)
    local, cached = config.models_dir / model_id, cache_dir() / model_id
    if not card_matches(local, model_id, data):
        if card_matches(cached, model_id, data):
            console.print(f"reusing the cached stance model {model_id} ({cached})")
            copy_model(cached, config.models_dir)
        else:
            console.print("training the stance model (once per machine; a few minutes on 2 cores)…")
            trained = run_training(config, console, hp)
            try:
                copy_model(local, cache_dir())
            except OSError as exc:  # a read-only home must not fail the run
                log.warning("could not cache the model in %s: %s", cache_dir(), exc)
            _print_metrics(console, trained.metrics, f"{model_id} on the test split:")
    with warehouse.writing(config.warehouse_path) as con:
        register_folder(con, local)
    return model_id


def run_evaluation(config: Config, console: Console, csv_path: Path | None = None, model: str | None = None,
                   split: str | None = None) -> tuple[str, dict[str, dict[str, Any]]]:
    """Score a model on labelled data, store the metrics on the model, return (model_id, metrics)."""
    examples, description = evaluation_data(config.target_names, csv_path, split)
    progress = Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), console=console,
                        transient=True)
    setup = config.stance_setup_to_run(model)  # with an llm: model, its endpoint settings and key
    with progress:
        task = progress.add_task("evaluate", total=None)
        return evaluate_and_store(config.warehouse_path, setup, examples, description, model,
                                  started=lambda n: progress.update(task, total=n),
                                  advanced=lambda k: progress.advance(task, k))


def _print_metrics(console: Console, metrics: dict[str, dict[str, Any]], title: str) -> None:
    console.print(title, soft_wrap=True)
    table = Table()
    for column in ("target", "macro-F1 (favor, against)", "F1 favor", "F1 against", "accuracy", "n", "ECE",
                   "off-topic stance"):
        table.add_column(column, justify="right" if column != "target" else "left")
    for target, m in metrics.items():
        off_topic = m.get("off_topic_stance_rate")
        table.add_row(target, f"{m['macro_f1']:.3f}", f"{m['f1_favor']:.3f}", f"{m['f1_against']:.3f}",
                      f"{m['accuracy']:.3f}", str(m["n"]), f"{m['ece']:.3f}" if "ece" in m else "-",
                      f"{off_topic:.1%} of {m['off_topic_n']}" if off_topic is not None else "-")
    console.print(table)


def print_evaluation(console: Console, model_id: str, metrics: dict[str, dict[str, Any]]) -> None:
    first = next(iter(metrics.values()))
    _print_metrics(console, metrics, f"{model_id} on {first['data']}:")
    for target, m in metrics.items():
        confusion = Table(title=f"{target}: confusion (rows true, columns predicted)")
        confusion.add_column("true \\ predicted")
        for label in m["labels"]:
            confusion.add_column(label, justify="right")
        for label, row in zip(m["labels"], m["confusion"], strict=True):
            confusion.add_row(label, *(str(v) for v in row))
        console.print(confusion)
