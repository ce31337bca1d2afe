"""Training and evaluation orchestration: the data, train → save → register, score → store.

The command line adds progress bars and tables around these (leakwatch/training.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import warehouse
from warehouse import annotations as annotation_store

from .errors import DatasetError, ModelError
from .models import StanceSetup, load_backend, register_folder

if TYPE_CHECKING:
    from .dataset import Example, LabelledData
    from .train import HyperParameters

log = logging.getLogger(__name__)


def training_data(targets: list[str], csv_path: Path | None) -> LabelledData:
    """The bundled dataset, or a CSV of the same shape (its `split` column, else the id-hash split)."""
    from .dataset import LabelledData, load_dataset, read_labelled_csv, split_of

    if csv_path is None:
        return load_dataset(targets)
    data = read_labelled_csv(csv_path, targets)
    examples = [e if e.split in ("train", "validation", "test") else
                type(e)(e.id, e.text, e.labels, split_of(e.id), e.platform) for e in data.examples]
    return LabelledData(examples, data.targets, data.source, data.sha256)


def with_active_annotations(warehouse_path: Path, targets: list[str], data: LabelledData,
                            ) -> tuple[LabelledData, dict[str, Any]]:
    """`data` plus the gold labels of the active samples as training examples (never a random
    sample: those validate). A post joins only with a gold label for every target. Returns the new
    LabelledData (its hash covers the added rows, so the model_id changes) and what the card records."""
    from .dataset import Example, LabelledData

    with warehouse.reading(warehouse_path) as con:
        rows = annotation_store.training_annotations(con)
    posts: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        entry = posts.setdefault((row["platform"], row["post_id"]), {"text": row["text"], "labels": {},
                                                                     "samples": row["samples"] or []})
        entry["labels"][row["target"]] = row["label"]
    complete = {key: p for key, p in sorted(posts.items()) if all(t in p["labels"] for t in targets)}
    added = [Example(f"{platform}:{post_id}", p["text"], {t: p["labels"][t] for t in targets}, "train", platform)
             for (platform, post_id), p in complete.items()]
    samples = sorted({s for p in complete.values() for s in p["samples"]})
    info = {"active_annotations": len(added), "samples": samples,
            "left_out": len(posts) - len(added),
            "rule": "gold labels of active samples only (adjudicator, else majority); random samples never"}
    if not added:
        raise DatasetError("no coded posts in active samples yet: draw one with `leakwatch annotate sample "
                           "--kind active` and code it first")
    digest = hashlib.sha256(data.sha256.encode())
    digest.update(json.dumps([[e.id, e.text, e.labels] for e in added], sort_keys=True).encode())
    source = f"{data.source} + {len(added)} coded posts of active sample(s) {', '.join(map(str, samples))}"
    # First, so a `--limit` smoke run keeps them.
    return LabelledData([*added, *data.examples], data.targets, source, digest.hexdigest()), info


def train_and_register(warehouse_path: Path, setup: StanceSetup, hp: HyperParameters, data: LabelledData,
                       report: Callable[[Any], None], card_data: dict[str, Any] | None = None,
                       base: str | None = None) -> Any:
    """Train, save under models_dir/<model_id>, register in the warehouse; returns TrainedModel.
    `card_data` adds to the card's `data` entry (e.g. which annotations were trained on); `base` is the
    encoder to fine-tune (default: the bundled MiniLM)."""
    from .train import save_model, train_model

    started = time.monotonic()
    trained = train_model(data, hp, report, base)
    trained.card["data"].update(card_data or {})
    folder = save_model(trained, setup.models_dir)
    with warehouse.writing(warehouse_path) as con:
        register_folder(con, folder, trained.metrics or None)
    log.info("trained %s in %.0fs", trained.model_id, time.monotonic() - started)
    return trained


def card_matches(folder: Path, model_id: str, data: LabelledData) -> bool:
    """Whether `folder` holds the model `model_id` trained on exactly `data`."""
    from .stance import read_card

    try:
        card = read_card(folder)
    except ModelError:
        return False
    return card.get("model_id") == model_id and card.get("data", {}).get("sha256") == data.sha256


def evaluation_data(targets: list[str], csv_path: Path | None, split: str | None) -> tuple[list[Example], str]:
    """Examples to score and a description of them for the stored metrics."""
    from .dataset import load_dataset, read_labelled_csv

    if csv_path is None:
        data = load_dataset(targets)
        split = split or "test"
        return data.split(split), f"{split} split of {data.source} (sha256 {data.sha256[:12]})"
    data = read_labelled_csv(csv_path, targets, require_split=split is not None)
    examples = data.split(split) if split else data.examples
    where = f"{split} split of " if split else ""
    return examples, f"{where}{csv_path} (sha256 {data.sha256[:12]})"


def evaluate_and_store(warehouse_path: Path, setup: StanceSetup, examples: list[Example], description: str,
                       model: str | None = None, started: Callable[[int], None] = lambda n: None,
                       advanced: Callable[[int], None] = lambda k: None) -> tuple[str, dict[str, dict[str, Any]]]:
    """Score a model on labelled examples, store the metrics on the model, return (model_id, metrics)."""
    from .evaluate import evaluate_predictions
    from .stance import labels_from_probabilities

    if not examples:
        raise DatasetError(f"no examples to evaluate in {description}")
    with warehouse.writing(warehouse_path) as con:
        backend = load_backend(setup, con, model)
    targets = setup.target_names
    started(len(examples))
    probabilities = backend.predict([e.text for e in examples], advanced)
    predicted = {t: labels_from_probabilities(probabilities[t]) for t in targets}
    gold = {t: [e.labels[t] for e in examples] for t in targets}
    metrics = evaluate_predictions(gold, predicted, description, {t: probabilities[t] for t in targets})
    with warehouse.writing(warehouse_path) as con:
        warehouse.set_model_metrics(con, backend.model_id, metrics)
    return backend.model_id, metrics
