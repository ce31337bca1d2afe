"""Labelling: posts without a current-model label, or whose text changed, get one.

The write connection is held only briefly (to pick the posts, and to store each chunk's labels), so
`leakwatch sql` and other readers are not locked out while the model runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

import warehouse
from warehouse.records import LABELS

from .models import StanceSetup, chosen_model, is_llm_spec, resolve_backend, select_model

if TYPE_CHECKING:
    from .llm_classify import LlmSummary

# Labels are stored after every chunk: an interruption loses at most one chunk of work.
CHUNK_POSTS = 2048


@dataclass
class ClassifySummary:
    model_id: str
    labelled: int = 0  # posts labelled in this run (for every target)
    targets: list[str] = field(default_factory=list)
    seconds: float = 0.0
    relabel: bool = False

    def line(self) -> str:
        if not self.labelled:
            return f"classify: nothing to label; every post has a label from {self.model_id}"
        rate = self.labelled / self.seconds if self.seconds > 0 else float("inf")
        posts = "post" if self.labelled == 1 else "posts"
        return (f"classify: {self.labelled} {posts} labelled for {', '.join(self.targets)} with {self.model_id} "
                f"in {self.seconds:.1f}s ({rate:.0f} posts/s)")


def labels_table(posts: pa.Table, probabilities: dict[str, np.ndarray], model_id: str) -> pa.Table:
    """One row per post and target, built column-wise."""
    n = posts.num_rows
    now = datetime.now(UTC)
    columns: dict[str, list] = {name: [] for name in warehouse.LABEL_SCHEMA.names}
    for target, probs in probabilities.items():
        columns["platform"].extend(posts["platform"].to_pylist())
        columns["post_id"].extend(posts["post_id"].to_pylist())
        columns["target"].extend([target] * n)
        columns["model_id"].extend([model_id] * n)
        columns["label"].extend(LABELS[i] for i in probs.argmax(axis=1))
        for k, label in enumerate(LABELS):
            columns[f"p_{label}"].extend(probs[:, k].tolist())
        columns["content_hash"].extend(posts["content_hash"].to_pylist())
        columns["labelled_at"].extend([now] * n)
    return pa.table(columns, schema=warehouse.LABEL_SCHEMA)


def _ignore(_: int) -> None:
    pass


def label_posts(
    warehouse_path: Path,
    setup: StanceSetup,
    relabel: bool = False,
    model: str | None = None,
    started: Callable[[int], None] = _ignore,
    advanced: Callable[[int], None] = _ignore,
    notify: Callable[[str], None] | None = None,
) -> ClassifySummary | LlmSummary:
    """Label what needs labelling with the current model (or `model`), and make it current.

    `started(n)` is told how many posts will be labelled, `advanced(k)` each time k more are done;
    `notify(line)`, with an llm: model, where posts are about to be sent (analysis/llm_classify.py).
    """
    spec = chosen_model(setup, model)
    if is_llm_spec(spec):  # through the answer cache, with cost accounting
        from .llm_classify import llm_classify

        return llm_classify(warehouse_path, setup, relabel, spec, started, advanced, notify)
    targets = setup.target_names
    with warehouse.writing(warehouse_path) as con:
        load = resolve_backend(setup, con, model)
    backend = load()  # seconds of loading weights, with the warehouse free for readers
    with warehouse.writing(warehouse_path) as con:
        warehouse.configure(con, targets, backend.model_id)
        select_model(con, backend.model_id)  # labelling with a model makes it the one used next time
        todo = warehouse.posts_to_label(con, backend.model_id, targets, relabel)
    summary = ClassifySummary(backend.model_id, targets=targets, relabel=relabel)
    if todo.num_rows == 0:
        return summary
    started(todo.num_rows)
    begun = time.monotonic()
    for start in range(0, todo.num_rows, CHUNK_POSTS):
        chunk = todo.slice(start, CHUNK_POSTS)
        probabilities = backend.predict(chunk["text"].to_pylist(), advanced)
        table = labels_table(chunk, {t: probabilities[t] for t in targets}, backend.model_id)
        with warehouse.writing(warehouse_path) as con:
            warehouse.write_labels(con, table)
        summary.labelled += chunk.num_rows
    summary.seconds = time.monotonic() - begun
    return summary
