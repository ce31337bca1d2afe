"""The figures the README reports for a trained model, from one command.

Per split (validation, test, and with `--dev` the independent development set) and target:
macro-F1 over favor and against, F1 per class, accuracy, ECE, and two off-topic stance rates: of the
posts labelled `none` for every target (on-topic neutral posts included), and of the posts that are
off-topic by a second reader's marking (part g's `meta_part_g.csv` group 1 for validation and test;
`dev/stance_dev_topics.csv` for the dev set). The dev set is for the final report only: never
choose a model or setting with it (README, Stance model).

    python -m analysis.quality_report MODEL_DIR [--dev]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from .dataset import DATA_DIR, PARTS_DIR, Example, load_dataset, read_labelled_csv
from .evaluate import evaluate_predictions
from .stance import FineTunedStance, labels_from_probabilities

DEV_PATH = DATA_DIR / "dev" / "stance_dev.csv"
DEV_TOPICS_PATH = DATA_DIR / "dev" / "stance_dev_topics.csv"
PART_G_META_PATH = PARTS_DIR / "meta_part_g.csv"
OFF_TOPIC_GROUP = "1"  # part g's off-topic posts (stance_part_g.md)


def off_topic_ids() -> set[str]:
    """Ids marked off-topic by a reader: part g's group 1 and the dev set's `off` rows."""
    with PART_G_META_PATH.open(encoding="utf-8") as f:
        ids = {row["id"] for row in csv.DictReader(f) if row["group"] == OFF_TOPIC_GROUP}
    with DEV_TOPICS_PATH.open(encoding="utf-8") as f:
        return ids | {row["id"] for row in csv.DictReader(f) if row["topic"] == "off"}


def split_figures(backend: FineTunedStance, examples: list[Example], name: str, off_topic: set[str]) -> dict[str, Any]:
    targets = backend.targets
    probabilities = backend.predict([e.text for e in examples])
    predicted = {t: labels_from_probabilities(probabilities[t]) for t in targets}
    gold = {t: [e.labels[t] for e in examples] for t in targets}
    metrics = evaluate_predictions(gold, predicted, name, probabilities)
    marked = [i for i, e in enumerate(examples) if e.id in off_topic]
    figures: dict[str, Any] = {"split": name, "n": len(examples), "off_topic_n": len(marked),
                               "none_for_every_target_n": next(iter(metrics.values()))["off_topic_n"]}
    for t, m in metrics.items():
        figures[t] = {
            "macro_f1": round(m["macro_f1"], 3),
            "f1_favor": round(m["f1_favor"], 3), "f1_against": round(m["f1_against"], 3),
            "accuracy": round(m["accuracy"], 3), "ece": round(m["ece"], 3) if m.get("ece") is not None else None,
            "stance_rate_none_for_every_target": round(m["off_topic_stance_rate"], 3),
            "stance_rate_off_topic": (round(sum(predicted[t][i] != "none" for i in marked) / len(marked), 3)
                                      if marked else None),
        }
    return figures


def report(model_dir: str | Path, dev: bool = False) -> list[dict[str, Any]]:
    backend = FineTunedStance.load(model_dir, precision="fp32")
    data = load_dataset(backend.targets)
    off_topic = off_topic_ids()
    rows = [split_figures(backend, data.split(name), name, off_topic) for name in ("validation", "test")]
    if dev:
        rows.append(split_figures(backend, read_labelled_csv(DEV_PATH, backend.targets).examples, "dev", off_topic))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--dev", action="store_true", help="also the development set (final report only)")
    args = parser.parse_args()
    for row in report(args.model_dir, args.dev):
        print(json.dumps({"model": Path(args.model_dir).name, **row}), flush=True)


if __name__ == "__main__":
    main()
