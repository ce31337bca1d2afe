"""`leakwatch model list` and `leakwatch model use`: the warehouse's models and the current one."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

import warehouse
from analysis.errors import ModelError
from analysis.models import copy_model, register_folder, select_model, selected_model, test_f1, validation_f1

from .config import Config
from .training import cache_dir


def _scores(f1: dict[str, float], targets: list[str]) -> str:
    return "/".join(f"{f1[t]:.2f}" if t in f1 else "–" for t in targets) if f1 else "–"


def print_models(config: Config, console: Console) -> None:
    if not config.warehouse_path.exists():
        console.print(f"no warehouse yet at {config.warehouse_path}: no models", soft_wrap=True)
        return
    with warehouse.reading(config.warehouse_path) as con:
        models = warehouse.list_models(con)
        current = selected_model(con)
    if not models:
        console.print("no models in this warehouse yet; `leakwatch train` makes one")
        return
    targets = config.target_names
    # Narrow columns, so the table fits 80 columns: the id is the only long cell; base weights get
    # a letter, spelled out below the table.
    bases = sorted({m.base_weights or "unknown" for m in models})
    table = Table(box=None, header_style="bold underline", pad_edge=False,
                  title=f"macro-F1 per target ({'/'.join(targets)}); * = current", title_justify="left")
    for column in ("", "model_id", "created", "base", "validation", "test"):
        table.add_column(column, justify="right" if column in ("validation", "test") else "left",
                         no_wrap=True)
    for info in models:
        table.add_row("*" if current and info.model_id == current.model_id else "", info.model_id,
                      f"{info.created_at:%Y-%m-%d}", chr(65 + bases.index(info.base_weights or "unknown")),
                      _scores(validation_f1(info), targets), _scores(test_f1(info), targets))
    console.print(table)
    for i, base in enumerate(bases):
        console.print(f"base {chr(65 + i)}: {base}", soft_wrap=True)


def use_model(config: Config, model_id: str) -> str:
    """Select a model registered here, in this data folder's models folder, or in the user cache."""
    folder, cached = config.models_dir / model_id, cache_dir() / model_id
    with warehouse.writing(config.warehouse_path) as con:
        if warehouse.get_model(con, model_id) is None:
            if not (folder / "model_card.json").is_file():
                if not (cached / "model_card.json").is_file():
                    known = ", ".join(m.model_id for m in warehouse.list_models(con)) or "none"
                    raise ModelError(f"unknown model {model_id!r} (registered: {known}; not in {cache_dir()})")
                copy_model(cached, config.models_dir)
            register_folder(con, folder)
        select_model(con, model_id)
    return f"model: {model_id} is now the current model; run `leakwatch classify` to label with it"
