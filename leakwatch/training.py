"""`leakwatch train` and `leakwatch evaluate` with progress and tables, and the demo's train-or-reuse step."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import warehouse
from analysis.models import Selection, copy_model, low_quality, offer_model, register_folder
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


def run_training(config: Config, console: Console, hp: HyperParameters, csv_path: Path | None = None) -> Any:
    """Train, save under <data_dir>/models/<model_id>, register in the warehouse; returns TrainedModel."""
    data = training_data(config.target_names, csv_path)
    return _train(config, console, hp, data)


def _train(config: Config, console: Console, hp: HyperParameters, data: Any) -> Any:
    # A bar for the whole run (with the time left) and one for the epoch's batches; on a console that
    # is not a terminal (piped, logged) only the plain line per epoch, no bars.
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[unit]}"), TimeRemainingColumn(), console=console,
                        transient=True, disable=not console.is_terminal)
    with progress:
        overall = progress.add_task("training", total=None, unit="steps")
        epoch_task = progress.add_task("epoch 1", total=None, unit="batches")
        per_epoch = [0]

        def report(p: Any) -> None:
            per_epoch[0] = per_epoch[0] or max(1, p.total_steps // hp.epochs)
            done_in_epoch = p.step - (p.epoch - 1) * per_epoch[0]
            progress.update(overall, completed=p.step, total=p.total_steps)
            progress.update(epoch_task, description=f"epoch {p.epoch}/{hp.epochs}", completed=done_in_epoch,
                            total=per_epoch[0])
            if p.validation_f1 is not None:
                console.print(f"epoch {p.epoch}/{hp.epochs}: mean loss {p.loss:.3f}, "
                              f"validation macro-F1 {p.validation_f1:.3f}")

        return train_and_register(config.warehouse_path, config.stance_setup(), hp, data, report)


def train_or_reuse(config: Config, console: Console, hp: HyperParameters, csv_path: Path | None = None,
                   force: bool = False) -> tuple[Any, str]:
    """The model these data and settings make: this folder's or the user cache's copy when its card
    matches (training is deterministic, so it is the same model), else trained now and cached.
    Returns (model card, how it was obtained: "trained", "here" or "cache")."""
    from analysis.stance import read_card
    from analysis.train import planned_model_id

    data = training_data(config.target_names, csv_path)
    model_id = planned_model_id(data, hp)
    local, cached = config.models_dir / model_id, cache_dir() / model_id
    if not force and card_matches(local, model_id, data):
        how = "here"
    elif not force and card_matches(cached, model_id, data):
        copy_model(cached, config.models_dir)
        how = "cache"
    else:
        _train(config, console, hp, data)
        _cache(local)
        return read_card(local), "trained"
    with warehouse.writing(config.warehouse_path) as con:
        register_folder(con, local)
    return read_card(local), how


def _cache(folder: Path) -> None:
    try:
        copy_model(folder, cache_dir())
    except OSError as exc:  # a read-only home must not fail the run
        log.warning("could not cache the model in %s: %s", cache_dir(), exc)


def choose_current(config: Config, model_id: str, force: bool) -> tuple[Selection, dict[str, float]]:
    """Make `model_id` the current model if it is at least as good on validation (or `force`);
    returns the decision and the targets on which it is low quality."""
    with warehouse.writing(config.warehouse_path) as con:
        selection = offer_model(con, model_id, force)
        weak = low_quality(warehouse.get_model(con, model_id))
    return selection, weak


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
            trained = _train(config, console, hp, data)
            _cache(local)
            _print_metrics(console, trained.metrics, f"{model_id} on the test split:")
    with warehouse.writing(config.warehouse_path) as con:
        register_folder(con, local)
    return model_id


def run_evaluation(config: Config, console: Console, csv_path: Path | None = None, model: str | None = None,
                   split: str | None = None) -> tuple[str, dict[str, dict[str, Any]]]:
    """Score a model on labelled data, store the metrics on the model, return (model_id, metrics)."""
    examples, description = evaluation_data(config.target_names, csv_path, split)
    progress = Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), console=console,
                        transient=True, disable=not console.is_terminal)
    with progress:
        task = progress.add_task("evaluate", total=None)
        return evaluate_and_store(config.warehouse_path, config.stance_setup(), examples, description, model,
                                  started=lambda n: progress.update(task, total=n),
                                  advanced=lambda k: progress.advance(task, k))


def _print_metrics(console: Console, metrics: dict[str, dict[str, Any]], title: str) -> None:
    console.print(title, soft_wrap=True)
    table = Table()
    for column in ("target", "macro-F1 (favor, against)", "F1 favor", "F1 against", "accuracy", "n"):
        table.add_column(column, justify="right" if column != "target" else "left")
    for target, m in metrics.items():
        table.add_row(target, f"{m['macro_f1']:.3f}", f"{m['f1_favor']:.3f}", f"{m['f1_against']:.3f}",
                      f"{m['accuracy']:.3f}", str(m["n"]))
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
