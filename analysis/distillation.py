"""Distillation orchestration (`train --teacher llm:<model> --sample N`): an LLM labels a stratified
sample of the warehouse, the local encoder trains on the base data plus those labels, and the two
are compared. The pure parts (sampling, held-out split, agreement) are in distill.py; the command
line adds the progress bar and the table (leakwatch/distill.py).

The teacher labels through the same answer cache and run accounting as `classify`. Posts in a human
validation sample never go into training: those passed as `excluded` and every post coded in
`annotations`. 80% of the teacher's posts join the base training rows; the other 20% measure
teacher-student agreement, and coded posts, when there are any, score teacher and student against
the coders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import warehouse

from .atomic import write_text_atomically
from .errors import DatasetError, ModelError
from .models import StanceSetup, is_llm_spec, register_folder

if TYPE_CHECKING:
    from .dataset import LabelledData
    from .train import HyperParameters

HELD_OUT_NOTE = "held-out part of the teacher's sample"


@dataclass
class DistillResult:
    trained: Any  # analysis.train.TrainedModel
    teacher_id: str
    sampled: int
    teacher_labelled: int
    train_posts: int
    held_out_posts: int
    agreement: dict[str, dict[str, Any]] = field(default_factory=dict)  # student vs teacher, held out
    teacher_vs_coders: dict[str, dict[str, Any]] | None = None
    student_vs_coders: dict[str, dict[str, Any]] | None = None
    teacher_line: str = ""
    train_ids: list[str] = field(default_factory=list)  # platform:post_id, for the card
    held_out_ids: list[str] = field(default_factory=list)


def distil(warehouse_path: Path, setup: StanceSetup, teacher: str, sample: int, hp: HyperParameters,
           base: LabelledData, report: Callable[[Any], None], excluded: set[tuple[str, str]] | None = None,
           seed: int = 13, notify: Callable[[str], None] | None = None) -> DistillResult:
    """`setup` carries the teacher's endpoint (StanceSetup.llm); `base` is the bundled or --data set.
    `excluded`: (platform, post_id) of a human validation sample kept out of training (the samples
    table of the validation loop, once it exists, fills it); coded posts are always kept out."""
    from .dataset import Example
    from .distill import Candidate, agreement, is_held_out, label_lists, stratified_sample, with_teacher_labels
    from .llm_classify import llm_label_posts, load_llm_backend
    from .stance import labels_from_probabilities
    from .training import train_and_register

    if not is_llm_spec(teacher):
        raise ModelError(f"--teacher {teacher!r}: the teacher is an LLM, given as llm:<model>")
    targets = setup.target_names
    with warehouse.writing(warehouse_path) as con:
        backend = load_llm_backend(setup, con, teacher)
        frame = warehouse.sampling_frame(con)
        coded = warehouse.coded_labels(con, targets)
    never = set(excluded or ()) | set(coded)
    keys = stratified_sample([Candidate((p, i), (week, p)) for p, i, week in frame], sample, seed, never)
    if not keys:
        raise DatasetError("no posts to sample in the warehouse (outside any human-coded sample); "
                           "run `leakwatch collect` first")
    coded_keys = sorted(coded)
    with warehouse.reading(warehouse_path) as con:
        posts = warehouse.posts_by_key(con, keys + coded_keys)
    summary = llm_label_posts(warehouse_path, backend, posts, "distill", notify)
    with warehouse.reading(warehouse_path) as con:
        taught = warehouse.model_labels(con, backend.model_id, targets)
    texts = dict(zip(zip(posts["platform"].to_pylist(), posts["post_id"].to_pylist(), strict=True),
                     posts["text"].to_pylist(), strict=True))

    def example(key: tuple[str, str], labels: dict[str, str]) -> Example:
        return Example(f"{key[0]}:{key[1]}", texts[key], labels, None, key[0])

    sampled = [k for k in keys if k in taught]
    train = [example(k, taught[k]) for k in sampled if not is_held_out(k, seed)]
    held = [example(k, taught[k]) for k in sampled if is_held_out(k, seed)]
    if not train:
        raise ModelError(f"the teacher labelled none of the {len(keys)} sampled posts; see llm_answers.error")
    trained = train_and_register(warehouse_path, setup, hp, with_teacher_labels(base, train, backend.model_id),
                                 report)

    def student(examples: list[Example]) -> dict[str, list[str]]:
        if not examples:
            return {t: [] for t in targets}
        probabilities = trained.backend.predict([e.text for e in examples])
        return {t: labels_from_probabilities(probabilities[t]) for t in targets}

    result = DistillResult(trained, backend.model_id, len(keys), len(sampled), len(train), len(held),
                           agreement(label_lists(held, targets), student(held), HELD_OUT_NOTE),
                           teacher_line=summary.line().replace("classify:", "teacher:"),
                           train_ids=[e.id for e in train], held_out_ids=[e.id for e in held])
    coded_with_teacher = [k for k in coded_keys if k in taught]
    if coded_with_teacher:
        gold = [example(k, coded[k]) for k in coded_with_teacher]
        where = f"{len(gold)} human-coded posts"
        result.teacher_vs_coders = agreement(label_lists(gold, targets),
                                             {t: [taught[k][t] for k in coded_with_teacher] for t in targets}, where)
        result.student_vs_coders = agreement(label_lists(gold, targets), student(gold), where)
    _record(warehouse_path, setup, result, seed, sample)
    return result


def _record(warehouse_path: Path, setup: StanceSetup, result: DistillResult, seed: int, sample: int) -> None:
    """The distillation on the student's model card (and so in the models table)."""
    folder = setup.models_dir / result.trained.model_id
    card_path = folder / "model_card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["distillation"] = {
        "teacher": result.teacher_id, "sample_requested": sample, "sampled": result.sampled,
        "teacher_labelled": result.teacher_labelled, "train_posts": result.train_posts,
        "held_out_posts": result.held_out_posts, "seed": seed, "strata": "ISO week x platform",
        "train_post_ids": result.train_ids, "held_out_post_ids": result.held_out_ids,
        "student_vs_teacher_held_out": result.agreement,
        "teacher_vs_coders": result.teacher_vs_coders, "student_vs_coders": result.student_vs_coders,
    }
    write_text_atomically(card_path, json.dumps(card, indent=1))
    result.trained.card = card
    with warehouse.writing(warehouse_path) as con:
        register_folder(con, folder, result.trained.metrics or None)
