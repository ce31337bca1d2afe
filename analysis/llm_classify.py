"""Labelling with the `llm:<model>` backend: the backend built from the setup, and posts labelled
through the warehouse's answer cache with per-run token and cost accounting.

`stance.model = "llm:<model>"` (or `classify --model llm:<model>`) sends each post, with the prompt
(target descriptions, labelling guideline, a few coded examples), to the configured endpoint. The
caller hands in the settings (`StanceSetup.llm`, key included) and is told, through `notify`, the one
line that says where posts go before the first request to a non-loopback host.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

import warehouse
from warehouse.records import LABELS

from .errors import ModelError
from .llm_prompt import CodedExample, PromptTarget, build_prompt, default_examples, read_guideline
from .llm_stance import LLM_BACKEND, Budget, LlmSettings, LlmStance, LlmStopped, Outcome
from .models import StanceSetup

log = logging.getLogger(__name__)

LLM_PREFIX = "llm:"
# Answers are committed in batches this small (or after this long): a kill loses little.
BATCH_ANSWERS = 8
BATCH_SECONDS = 2.0


def _ignore(_: int) -> None:
    pass


def endpoint_host(base_url: str) -> str:
    return urlsplit(base_url).hostname or base_url


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _settings(setup: StanceSetup) -> LlmSettings:
    if setup.llm is None:  # the edge adds them whenever the chosen model is an llm: one
        raise ModelError("the llm: backend needs the [stance.llm] settings, and none were given")
    return setup.llm


def bundled_examples(setup: StanceSetup) -> list[CodedExample]:
    """Few-shot examples from the bundled dataset's train split, for the targets it labels."""
    from .dataset import DATASET_TARGETS, load_dataset

    known = [t for t in setup.target_names if t in DATASET_TARGETS]
    per_label = _settings(setup).examples_per_label
    return default_examples(load_dataset(known), per_label) if known and per_label else []


def build_llm_backend(setup: StanceSetup, model: str, examples: list[CodedExample] | None = None) -> LlmStance:
    """The backend for `llm:<model>`; `examples` (e.g. coded annotations) replace the bundled ones."""
    settings = _settings(setup)
    targets = [PromptTarget(name, description) for name, description in setup.targets]
    chosen = bundled_examples(setup) if examples is None else examples
    prompt = build_prompt(targets, read_guideline(), chosen)
    return LlmStance(model, prompt, settings)


def register_llm_model(con: Any, backend: LlmStance) -> None:
    """The models row: the prompt in full (so the model_id's hash can be checked), never the key."""
    if warehouse.get_model(con, backend.model_id) is not None:
        return
    card = {"model_id": backend.model_id, "backend": LLM_BACKEND, "model": backend.model,
            "endpoint_host": endpoint_host(backend.settings.base_url), "prompt_sha8": backend.prompt.sha8,
            "system_prompt": backend.prompt.system, "schema": backend.prompt.schema, "temperature": 0}
    warehouse.register_model(con, warehouse.ModelInfo(
        backend.model_id, LLM_BACKEND, backend.model, None, None, datetime.now(UTC), None, card))


def load_llm_backend(setup: StanceSetup, con: Any, spec: str) -> LlmStance:
    """`llm:<model>`, or a registered llm model_id (rebuilt from today's prompt; a changed prompt is an error)."""
    if spec.startswith(LLM_PREFIX):
        backend = build_llm_backend(setup, spec[len(LLM_PREFIX):])
    else:
        info = warehouse.get_model(con, spec)
        if info is None or info.backend != LLM_BACKEND:
            raise ModelError(f"unknown model {spec!r}; name an LLM as llm:<model>, e.g. llm:qwen2.5:7b")
        backend = build_llm_backend(setup, info.base_weights or "")
        if backend.model_id != spec:
            raise ModelError(f"{spec} was made with another prompt (targets, guideline or examples changed); "
                             f"use stance.model = \"llm:{backend.model}\" for the new one, {backend.model_id}")
    register_llm_model(con, backend)
    return backend


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class LlmSummary:
    model_id: str
    targets: list[str]
    posts: int = 0
    totals: warehouse.RunCounts = field(default_factory=lambda: warehouse.RunCounts())  # committed batches' sum
    seconds: float = 0.0
    stop_reason: str | None = None
    run_id: int | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return self.totals.cached + self.totals.answered

    def line(self) -> str:
        if not self.posts:
            return f"classify: nothing to label; every post has a label from {self.model_id}"
        t = self.totals
        text = (f"classify: {self.labelled} of {self.posts} posts labelled for {', '.join(self.targets)} with "
                f"{self.model_id} in {self.seconds:.1f}s ({t.cached} from the cache, {t.answered} answered, "
                f"{t.failed} without a usable answer); {t.requests} requests, "
                f"{t.input_tokens} + {t.output_tokens} tokens, estimated cost {t.cost:.4f}")
        if self.stop_reason:
            text += f"\nclassify: stopped early, {self.stop_reason}; rerun to continue"
        if self.failures:
            text += f"\nclassify: first failure: {self.failures[0]} (see llm_answers.error)"
        return text


def _label_rows(backend: LlmStance, rows: list[tuple[str, str, str]], labels: dict[str, str],
                probabilities: dict[str, list[float]] | None, now: datetime) -> dict[str, list]:
    columns: dict[str, list] = {name: [] for name in warehouse.LABEL_SCHEMA.names}
    for platform, post_id, content_hash in rows:
        for target in backend.targets:
            probs = (probabilities or {}).get(target)
            columns["platform"].append(platform)
            columns["post_id"].append(post_id)
            columns["target"].append(target)
            columns["model_id"].append(backend.model_id)
            columns["label"].append(labels[target])
            for k, label in enumerate(LABELS):
                columns[f"p_{label}"].append(probs[k] if probs else None)  # NULL: the server gave none
            columns["content_hash"].append(content_hash)
            columns["labelled_at"].append(now)
    return columns


class _Writer:
    """Buffers answers and commits them (cache rows, labels, run counters) in small batches."""

    def __init__(self, warehouse_path: Path, backend: LlmStance, run_id: int, summary: LlmSummary):
        self.warehouse_path, self.backend, self.run_id, self.summary = warehouse_path, backend, run_id, summary
        self.answers: list[Any] = []  # warehouse.CachedAnswer
        self.columns: dict[str, list] = {name: [] for name in warehouse.LABEL_SCHEMA.names}
        self.counts = warehouse.RunCounts()
        self.last_flush = time.monotonic()

    def add_labels(self, rows: list[tuple[str, str, str]], labels: dict[str, str], probabilities) -> None:
        for name, values in _label_rows(self.backend, rows, labels, probabilities, datetime.now(UTC)).items():
            self.columns[name].extend(values)

    def add_outcome(self, outcome: Outcome, hash_: str, rows: list[tuple[str, str, str]]) -> None:
        b, answer = self.backend, outcome.answer
        self.answers.append(warehouse.CachedAnswer(
            b.model, b.prompt.sha8, hash_, b.model_id, "ok" if answer else "failed",
            answer.labels if answer else None, answer.reasons if answer else None,
            answer.probabilities if answer else None, outcome.error, outcome.requests,
            outcome.input_tokens, outcome.output_tokens, datetime.now(UTC)))
        c = self.counts
        c.requests += outcome.requests
        c.input_tokens += outcome.input_tokens
        c.output_tokens += outcome.output_tokens
        c.cost += b.settings.cost(outcome.input_tokens, outcome.output_tokens)
        if answer:
            c.answered += len(rows)
            self.add_labels(rows, answer.labels, answer.probabilities)
        else:
            c.failed += len(rows)
            self.summary.failures.append(outcome.error or "no answer")
        if len(self.answers) >= BATCH_ANSWERS or time.monotonic() - self.last_flush >= BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        c = self.counts
        if not (self.answers or self.columns["post_id"] or c.cached):
            return
        table = pa.table(self.columns, schema=warehouse.LABEL_SCHEMA)
        with warehouse.writing(self.warehouse_path) as con:
            warehouse.commit_llm_batch(con, self.run_id, self.answers, table, c)
        self.summary.totals.add(c)
        self.answers, self.counts = [], warehouse.RunCounts()
        self.columns = {name: [] for name in warehouse.LABEL_SCHEMA.names}
        self.last_flush = time.monotonic()


def llm_label_posts(warehouse_path: Path, backend: LlmStance, posts: pa.Table, purpose: str = "classify",
                    notify: Callable[[str], None] | None = None,
                    advanced: Callable[[int], None] = _ignore) -> LlmSummary:
    """Label `posts` (platform, post_id, content_hash, text) with the LLM: cached texts first, then one
    request per distinct uncached text. `notify` gets the line naming a non-loopback host before the
    first request (default: a log warning). Raises LlmStopped (after committing what was answered)."""
    summary = LlmSummary(backend.model_id, list(backend.targets), posts=posts.num_rows)
    if posts.num_rows == 0:
        return summary
    started = time.monotonic()
    groups: dict[str, list[tuple[str, str, str]]] = {}
    texts: dict[str, str] = {}
    for platform, post_id, content_hash, text in zip(posts["platform"].to_pylist(), posts["post_id"].to_pylist(),
                                                     posts["content_hash"].to_pylist(), posts["text"].to_pylist(),
                                                     strict=True):
        key = text_hash(backend.prompt.user(text))  # what is sent, so a cut text shares its answer
        groups.setdefault(key, []).append((platform, post_id, content_hash))
        texts.setdefault(key, text)
    host = endpoint_host(backend.settings.base_url)
    with warehouse.writing(warehouse_path) as con:
        run_id = warehouse.start_llm_run(con, backend.model_id, purpose, host, posts.num_rows)
        cached = warehouse.cached_answers(con, backend.model, backend.prompt.sha8, list(groups))
    summary.run_id = run_id
    writer = _Writer(warehouse_path, backend, run_id, summary)
    for key, answer in cached.items():
        writer.add_labels(groups[key], answer.labels or {}, answer.probabilities)
        writer.counts.cached += len(groups[key])
    writer.flush()
    advanced(summary.totals.cached)
    todo = [key for key in groups if key not in cached]

    def tell_where() -> None:
        if not is_loopback(host):
            line = f"{purpose}: sending {len(todo)} post texts to {host} (stance.llm.base_url)"
            if notify is not None:
                notify(line)
            else:
                log.warning("%s", line)

    def on_outcome(outcome: Outcome) -> None:
        key = todo[outcome.index]
        writer.add_outcome(outcome, key, groups[key])
        advanced(len(groups[key]))

    status, note = "ok", None
    try:
        budget = backend.answer_all([texts[k] for k in todo], on_outcome, Budget(backend.settings), tell_where)
        if budget.stop_reason:
            status, note = "budget", budget.stop_reason
            summary.stop_reason = budget.stop_reason
    except LlmStopped as exc:
        status, note = "stopped", str(exc)
        raise
    except BaseException:
        status, note = "interrupted", "interrupted"
        raise
    finally:
        writer.flush()
        summary.seconds = time.monotonic() - started
        with warehouse.writing(warehouse_path) as con:
            warehouse.finish_llm_run(con, run_id, status, note)
    return summary


def llm_classify(warehouse_path: Path, setup: StanceSetup, relabel: bool, spec: str,
                 started: Callable[[int], None] = _ignore, advanced: Callable[[int], None] = _ignore,
                 notify: Callable[[str], None] | None = None) -> LlmSummary:
    """`classify` with an llm backend: what needs a label, through the cache; the model becomes current."""
    targets = setup.target_names
    with warehouse.writing(warehouse_path) as con:
        backend = load_llm_backend(setup, con, spec)
        warehouse.configure(con, targets, backend.model_id)
        todo = warehouse.posts_to_label(con, backend.model_id, targets, relabel)
    started(todo.num_rows)
    return llm_label_posts(warehouse_path, backend, todo, "classify", notify, advanced)
