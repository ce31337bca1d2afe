"""`leakwatch train` and `leakwatch evaluate`, and the demo's train-or-reuse step."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import warehouse
from analysis.errors import DatasetError, ModelError

from .config import Config
from .models import cache_dir, copy_model, load_backend, models_dir, register_folder

if TYPE_CHECKING:
    from analysis.dataset import LabelledData
    from analysis.train import HyperParameters

log = logging.getLogger(__name__)


def training_data(config: Config, csv_path: Path | None) -> LabelledData:
    """The bundled dataset, or a CSV of the same shape (its `split` column, else the id-hash split)."""
    from analysis.dataset import LabelledData, load_dataset, read_labelled_csv, split_of

    if csv_path is None:
        return load_dataset(config.target_names)
    data = read_labelled_csv(csv_path, config.target_names)
    examples = [e if e.split in ("train", "validation", "test") else
                type(e)(e.id, e.text, e.labels, split_of(e.id), e.platform) for e in data.examples]
    return LabelledData(examples, data.targets, data.source, data.sha256)


def run_training(config: Config, console: Console, hp: HyperParameters, csv_path: Path | None = None,
                 base: str | None = None) -> Any:
    """Train (from `base`, default the bundled MiniLM), save under <data_dir>/models/<model_id>,
    register in the warehouse; returns TrainedModel."""
    from analysis.train import save_model, train_model

    data = training_data(config, csv_path)
    started = time.monotonic()
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

        trained = train_model(data, hp, report, base)
    folder = save_model(trained, models_dir(config))
    with warehouse.writing(config.warehouse_path) as con:
        register_folder(con, folder, trained.metrics or None)
    log.info("trained %s in %.0fs", trained.model_id, time.monotonic() - started)
    return trained


def ensure_default_model(config: Config, console: Console, hp: HyperParameters | None = None) -> str:
    """The default model in this data folder: reused from here or the user cache when its card
    matches, else trained (minutes) and cached. Returns its model_id, registered in the warehouse."""
    from analysis.stance import read_card
    from analysis.train import HyperParameters, planned_model_id

    hp = hp or HyperParameters()
    data = training_data(config, None)
    model_id = planned_model_id(data, hp)

    def matches(folder: Path) -> bool:
        try:
            card = read_card(folder)
        except ModelError:
            return False
        return card.get("model_id") == model_id and card.get("data", {}).get("sha256") == data.sha256

    local, cached = models_dir(config) / model_id, cache_dir() / model_id
    if not matches(local):
        if matches(cached):
            console.print(f"reusing the cached stance model {model_id} ({cached})")
            copy_model(cached, models_dir(config))
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


def evaluation_data(config: Config, csv_path: Path | None, split: str | None) -> tuple[Any, str]:
    """Examples to score and a description of them for the stored metrics."""
    from analysis.dataset import load_dataset, read_labelled_csv

    if csv_path is None:
        data = load_dataset(config.target_names)
        split = split or "test"
        return data.split(split), f"{split} split of {data.source} (sha256 {data.sha256[:12]})"
    data = read_labelled_csv(csv_path, config.target_names, require_split=split is not None)
    examples = data.split(split) if split else data.examples
    where = f"{split} split of " if split else ""
    return examples, f"{where}{csv_path} (sha256 {data.sha256[:12]})"


def run_evaluation(config: Config, console: Console, csv_path: Path | None = None, model: str | None = None,
                   split: str | None = None) -> tuple[str, dict[str, dict[str, Any]]]:
    """Score a model on labelled data, store the metrics on the model, return (model_id, metrics)."""
    from analysis.evaluate import evaluate_predictions
    from analysis.stance import labels_from_probabilities

    examples, description = evaluation_data(config, csv_path, split)
    if not examples:
        raise DatasetError(f"no examples to evaluate in {description}")
    with warehouse.writing(config.warehouse_path) as con:
        backend = load_backend(config, con, model)
    targets = config.target_names
    progress = Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), console=console,
                        transient=True)
    with progress:
        task = progress.add_task("evaluate", total=len(examples))
        probabilities = backend.predict([e.text for e in examples], lambda k: progress.advance(task, k))
    predicted = {t: labels_from_probabilities(probabilities[t]) for t in targets}
    gold = {t: [e.labels[t] for e in examples] for t in targets}
    metrics = evaluate_predictions(gold, predicted, description, {t: probabilities[t] for t in targets})
    with warehouse.writing(config.warehouse_path) as con:
        warehouse.set_model_metrics(con, backend.model_id, metrics)
    return backend.model_id, metrics


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
