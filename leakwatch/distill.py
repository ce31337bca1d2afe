"""`leakwatch train --teacher llm:<model> --sample N`: analysis.distillation with a progress bar, and
its agreement table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from analysis.distillation import DistillResult, distil
from analysis.training import training_data

from .config import Config
from .training import training_progress


def run_distillation(config: Config, console: Console, teacher: str, sample: int, hp: Any,
                     csv_path: Path | None = None, excluded: set[tuple[str, str]] | None = None,
                     seed: int = 13) -> DistillResult:
    """Distil `teacher` into the local encoder; `excluded` posts (a human validation sample) never train."""
    base = training_data(config.target_names, csv_path)  # fail on a bad --data before paying for any answer
    setup = config.stance_setup_to_run(teacher)  # the teacher's endpoint and key (or a ConfigError)
    with training_progress(console, hp.epochs) as report:
        return distil(config.warehouse_path, setup, teacher, sample, hp, base, report, excluded, seed,
                      notify=lambda line: console.print(line, soft_wrap=True))


def print_distillation(console: Console, result: DistillResult) -> None:
    from rich.table import Table

    console.print(result.teacher_line, soft_wrap=True)
    console.print(f"distill: {result.teacher_labelled} of {result.sampled} sampled posts labelled by "
                  f"{result.teacher_id}; {result.train_posts} joined the training data, "
                  f"{result.held_out_posts} held out", soft_wrap=True)
    table = Table(title="agreement (macro-F1 over favor/against, accuracy, Cohen's kappa)")
    for column in ("comparison", "target", "macro-F1", "accuracy", "kappa", "n"):
        table.add_column(column, justify="left" if column in ("comparison", "target") else "right")
    rows = [("student vs teacher (held out)", result.agreement)]
    if result.teacher_vs_coders is not None:
        rows += [("teacher vs coders", result.teacher_vs_coders), ("student vs coders", result.student_vs_coders)]
    for name, metrics in rows:
        for target, m in (metrics or {}).items():
            kappa = "-" if m["kappa"] is None else f"{m['kappa']:.3f}"
            table.add_row(name, target, f"{m['macro_f1']:.3f}", f"{m['accuracy']:.3f}", kappa, str(m["n"]))
    console.print(table)
    if result.teacher_vs_coders is None:
        console.print("distill: no human-coded posts in `annotations` yet; code a random sample to score "
                      "teacher and student against people", soft_wrap=True)

