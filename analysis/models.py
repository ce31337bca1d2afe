"""Stance models: where they live, which one is current, loading, registering, copying.

A trained model is a folder `<data_dir>/models/<model_id>/` with a model_card.json, registered in
the warehouse's `models` table. `stance.model` (or `--model`) picks one by id, names an NLI
model as `nli:<hub id or folder>` or an LLM endpoint's model as `llm:<model>`
(analysis/llm_classify.py); empty means the selected model (below).

One lifecycle: the warehouse setting `selected_model` names the model `classify` labels with when
the config names none. A newly trained model becomes selected only when it is at least as good on
validation as the selected one (mean validation macro-F1 over the targets), or when the user says so
(`train --set-current`, `leakwatch model use ID`). Labelling with a model selects it and makes it
`current_model`, the model whose labels the views show.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import warehouse

from .atomic import atomic_path
from .errors import ModelError

if TYPE_CHECKING:
    from .llm_stance import LlmSettings
    from .stance import StanceBackend

NLI_PREFIX = "nli:"
NO_MODEL_HINT = ("run `leakwatch train` to fine-tune one (about 10 minutes on 2 cores), "
                 "or `leakwatch demo`, which trains one automatically")


@dataclass(frozen=True)
class StanceSetup:
    """How models are found and run: the caller builds it from its configuration."""

    models_dir: Path  # <data_dir>/models: one folder per trained model
    targets: tuple[tuple[str, str], ...]  # (name, description) per stance target
    model: str = ""  # the chosen model: a model_id, nli:<model>, or empty for the newest trained one
    batch_size: int = 64
    precision: str = "auto"
    llm: LlmSettings | None = None  # the `llm:` endpoint (key included); given when an llm: model is chosen

    @property
    def target_names(self) -> list[str]:
        return [name for name, _ in self.targets]


def target_specs(setup: StanceSetup) -> list[Any]:
    from .stance import TargetSpec

    return [TargetSpec(name, description) for name, description in setup.targets]


def register_folder(con: Any, folder: Path, metrics: dict | None = None) -> str:
    """Register a trained model folder (by its card) in the warehouse; returns its model_id."""
    from .stance import read_card

    card = read_card(folder)
    created = datetime.fromisoformat(card["created_at"]) if card.get("created_at") else datetime.now(UTC)
    warehouse.register_model(con, warehouse.ModelInfo(
        model_id=card["model_id"], backend=card["backend"], base_weights=card.get("base_weights"),
        training_data_hash=card.get("data", {}).get("sha256"), path=str(folder), created_at=created,
        metrics=metrics if metrics is not None else (card.get("metrics", {}).get("test") or None), card=card,
    ))
    return card["model_id"]


def is_llm_spec(spec: str) -> bool:
    """`llm:<model>`, or the model_id of one (llm-<model>-<prompt sha8>)."""
    return spec.startswith(("llm:", "llm-"))
SELECTED_KEY = "selected_model"
# Below this validation macro-F1 on any target a model's labels are close to guessing: warn.
LOW_QUALITY_F1 = 0.5


def validation_f1(info: warehouse.ModelInfo | None) -> dict[str, float]:
    """Validation macro-F1 per target from the model card (empty when it has none)."""
    metrics = ((info.card or {}).get("metrics") or {}).get("validation") if info else None
    return {t: float(m["macro_f1"]) for t, m in (metrics or {}).items() if "macro_f1" in m}


def test_f1(info: warehouse.ModelInfo) -> dict[str, float]:
    metrics = ((info.card or {}).get("metrics") or {}).get("test") or info.metrics or {}
    return {t: float(m["macro_f1"]) for t, m in metrics.items() if isinstance(m, dict) and "macro_f1" in m}


def selected_model(con: Any, exclude: str | None = None) -> warehouse.ModelInfo | None:
    """The model `classify` uses when the config names none: the selected one, else the one the
    views show, else the newest trained model (warehouses from before the selection existed).
    `exclude` skips a model just registered, to find the one it competes with."""
    for key in (SELECTED_KEY, "current_model"):
        model_id = warehouse.get_setting(con, key)
        info = warehouse.get_model(con, model_id) if model_id and model_id != exclude else None
        if info is not None:
            return info
    from .stance import FINETUNED_BACKEND

    trained = [m for m in warehouse.list_models(con) if m.backend == FINETUNED_BACKEND and m.model_id != exclude]
    return trained[0] if trained else None


def select_model(con: Any, model_id: str) -> None:
    warehouse.set_setting(con, SELECTED_KEY, model_id)


def low_quality(info: warehouse.ModelInfo) -> dict[str, float]:
    """Targets whose validation macro-F1 is below LOW_QUALITY_F1."""
    return {t: f1 for t, f1 in validation_f1(info).items() if f1 < LOW_QUALITY_F1}


def _mean(scores: dict[str, float]) -> float:
    return sum(scores.values()) / len(scores)


@dataclass(frozen=True)
class Selection:
    model_id: str
    selected: bool  # it is now the model classify uses
    previous: str | None  # the model selected before
    reason: str  # one sentence for the user


def offer_model(con: Any, model_id: str, force: bool = False) -> Selection:
    """Select a newly registered model if it is at least as good on validation as the selected one
    (or `force`); otherwise keep the selection and say why."""
    if warehouse.get_setting(con, SELECTED_KEY) == model_id:
        return Selection(model_id, True, model_id, f"{model_id} is the current model already")
    old = selected_model(con, exclude=model_id)
    new_f1, old_f1 = validation_f1(warehouse.get_model(con, model_id)), validation_f1(old)
    if force or old is None or not old_f1:
        why = "as asked" if force else "no model was current before" if old is None else \
            f"{old.model_id} has no validation scores to compare"
        select_model(con, model_id)
        return Selection(model_id, True, old.model_id if old else None, f"{model_id} is now the current model ({why})")
    if new_f1 and _mean(new_f1) >= _mean(old_f1):
        select_model(con, model_id)
        return Selection(model_id, True, old.model_id, f"{model_id} is now the current model: validation macro-F1 "
                         f"{_scores(new_f1)} is at least as good as {old.model_id}'s {_scores(old_f1)}")
    return Selection(model_id, False, old.model_id,
                     f"{old.model_id} stays the current model: {model_id}'s validation macro-F1 "
                     f"{_scores(new_f1) or 'unknown'} is below its {_scores(old_f1)}; "
                     f"`leakwatch model use {model_id}` selects it anyway")


def _scores(f1: dict[str, float]) -> str:
    return " / ".join(f"{t} {v:.3f}" for t, v in f1.items())


def chosen_model(setup: StanceSetup, override: str | None) -> str:
    return (override if override is not None else setup.model).strip()


def load_backend(setup: StanceSetup, con: Any, override: str | None = None) -> StanceBackend:
    """The model to label with, registered in the warehouse; one clear error when there is none."""
    return resolve_backend(setup, con, override)()


def resolve_backend(setup: StanceSetup, con: Any, override: str | None = None) -> Callable[[], StanceBackend]:
    """Find the model in the warehouse (`con` is used only here) and return what loads its weights,
    so a caller holding a write connection can let go of it before the slow load."""
    spec = chosen_model(setup, override)
    targets = setup.target_names
    if spec.startswith(NLI_PREFIX):
        nli = _load_nli(setup, con, spec[len(NLI_PREFIX):].strip())
        return lambda: nli
    if is_llm_spec(spec):
        from .llm_classify import load_llm_backend

        llm = load_llm_backend(setup, con, spec)
        return lambda: llm
    if spec:
        info = warehouse.get_model(con, spec)
        if info is None:
            folder = setup.models_dir / spec
            if not (folder / "model_card.json").is_file():
                known = ", ".join(m.model_id for m in warehouse.list_models(con)) or "none"
                raise ModelError(f"unknown model {spec!r} (registered: {known}); {NO_MODEL_HINT}")
            register_folder(con, folder)
            info = warehouse.get_model(con, spec)
    else:
        info = selected_model(con)
        if info is None:
            raise ModelError(f"no stance model yet: {NO_MODEL_HINT}")
    assert info is not None
    if info.backend == "nli":
        nli = _load_nli(setup, con, info.base_weights or "")
        return lambda: nli
    if not info.path or not Path(info.path).is_dir():
        raise ModelError(f"model {info.model_id}'s files are gone (expected {info.path}); {NO_MODEL_HINT}")
    model_id, path = info.model_id, info.path

    def load() -> StanceBackend:
        from .stance import FineTunedStance

        backend = FineTunedStance.load(path, batch_size=setup.batch_size, precision=setup.precision)
        missing = [t for t in targets if t not in backend.targets]
        if missing:
            raise ModelError(
                f"model {model_id} labels {', '.join(backend.targets)} but the config also has target "
                f"{', '.join(missing)}; train a model with `leakwatch train --data CSV` on a CSV with a column "
                "per target, or use an NLI model (stance.model = \"nli:<model>\")"
            )
        return backend

    return load


def _load_nli(setup: StanceSetup, con: Any, ref: str) -> StanceBackend:
    from .stance import NLI_BACKEND, NliStance

    if not ref:
        raise ModelError("stance.model = \"nli:\" needs a model after the colon, e.g. nli:MoritzLaurer/...")
    backend = NliStance(ref, target_specs(setup), batch_size=setup.batch_size)
    if warehouse.get_model(con, backend.model_id) is None:
        card = {"model_id": backend.model_id, "backend": NLI_BACKEND, "base_weights": ref,
                "targets": [[t.name, t.description] for t in backend.specs], "templates": backend.templates}
        warehouse.register_model(con, warehouse.ModelInfo(
            backend.model_id, NLI_BACKEND, ref, None, ref, datetime.now(UTC), None, card))
    return backend


def copy_model(source: Path, destination_dir: Path) -> Path:
    """Copy a model folder next to others, atomically (temp name + rename)."""
    final = destination_dir / source.name
    destination_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as staging:
        shutil.copytree(source, staging)
    return final
