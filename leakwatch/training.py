"""`leakwatch train` and `leakwatch evaluate` with progress and tables, and the demo's train-or-reuse step."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

import warehouse
from analysis.models import Selection, copy_model, low_quality, offer_model, register_folder
from analysis.training import (
    card_matches,
    evaluate_and_store,
    evaluation_data,
    train_and_register,
    training_data,
    with_active_annotations,
)

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
def training_progress(console: Console, epochs: int) -> Iterator[Callable[[Any], None]]:
    """Progress for a training run; yields the `report` callback analysis.train calls per step.
    A bar for the whole run (with the time left) and one for the epoch's batches; on a console that
    is not a terminal (piped, logged) only the plain line per epoch, no bars."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[unit]}"), TimeRemainingColumn(), console=console,
                        transient=True, disable=not console.is_terminal)
    with progress:
        overall = progress.add_task("training", total=None, unit="steps")
        epoch_task = progress.add_task("epoch 1", total=None, unit="batches")
        per_epoch = [0]

        def report(p: Any) -> None:
            per_epoch[0] = per_epoch[0] or max(1, p.total_steps // epochs)
            done_in_epoch = p.step - (p.epoch - 1) * per_epoch[0]
            progress.update(overall, completed=p.step, total=p.total_steps)
            progress.update(epoch_task, description=f"epoch {p.epoch}/{epochs}", completed=done_in_epoch,
                            total=per_epoch[0])
            if p.validation_f1 is not None:
                console.print(f"epoch {p.epoch}/{epochs}: mean loss {p.loss:.3f}, "
                              f"validation macro-F1 {p.validation_f1:.3f}")

        yield report


def _training_data(config: Config, console: Console, csv_path: Path | None,
                   with_annotations: bool) -> tuple[Any, dict[str, Any] | None]:
    """The data to train on and what the card records of added annotations."""
    data = training_data(config.target_names, csv_path)
    if not with_annotations:
        return data, None
    data, annotations = with_active_annotations(config.warehouse_path, config.target_names, data)
    console.print(f"adding {annotations['active_annotations']} human-coded posts of active sample(s) "
                  f"{annotations['samples']}")
    return data, {"annotations": annotations}


def _train(config: Config, console: Console, hp: HyperParameters, data: Any,
           card_data: dict[str, Any] | None = None, base: str | None = None) -> Any:
    with training_progress(console, hp.epochs) as report:
        return train_and_register(config.warehouse_path, config.stance_setup(), hp, data, report,
                                  card_data=card_data, base=base)


def run_training(config: Config, console: Console, hp: HyperParameters, csv_path: Path | None = None,
                 with_annotations: bool = False, base: str | None = None) -> Any:
    """Train (from `base`, default the bundled MiniLM), save under <data_dir>/models/<model_id>,
    register in the warehouse; returns TrainedModel."""
    data, card_data = _training_data(config, console, csv_path, with_annotations)
    return _train(config, console, hp, data, card_data, base)


def train_or_reuse(config: Config, console: Console, hp: HyperParameters, csv_path: Path | None = None,
                   force: bool = False, with_annotations: bool = False,
                   base: str | None = None) -> tuple[Any, str]:
    """The model these data and settings make: this folder's or the user cache's copy when its card
    matches (training is deterministic, so it is the same model), else trained now and cached.
    Returns (model card, how it was obtained: "trained", "here" or "cache")."""
    from analysis.stance import read_card
    from analysis.train import planned_model_id

    data, card_data = _training_data(config, console, csv_path, with_annotations)
    model_id = planned_model_id(data, hp, base)
    local, cached = config.models_dir / model_id, cache_dir() / model_id
    if not force and card_matches(local, model_id, data):
        how = "here"
    elif not force and card_matches(cached, model_id, data):
        copy_model(cached, config.models_dir)
        how = "cache"
    else:
        _train(config, console, hp, data, card_data, base)
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
            console.print(f"reusing the cached stance model {model_id} ({cached})", soft_wrap=True)
            copy_model(cached, config.models_dir)
        else:
            console.print("training the stance model (once per machine; about 10 minutes on 2 cores)…")
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
