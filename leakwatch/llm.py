"""The `llm:<model>` backend at the edge: settings and key, the privacy line, and labelling posts
through the warehouse's answer cache with per-run token and cost accounting.

`stance.model = "llm:<model>"` (or `classify --model llm:<model>`) sends each post, with the prompt
(target descriptions, labelling guideline, a few coded examples), to `stance.llm.base_url`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import pyarrow as pa
from rich.console import Console

import warehouse
from analysis.errors import ModelError
from analysis.llm_prompt import CodedExample, PromptTarget, build_prompt, default_examples, read_guideline
from analysis.llm_stance import LLM_BACKEND, Budget, LlmSettings, LlmStance, LlmStopped, Outcome

from .config import Config, ConfigError

log = logging.getLogger(__name__)

LLM_PREFIX = "llm:"
KEY_ENV = "LEAKWATCH_LLM_API_KEY"
# Loopback servers (Ollama, vLLM, llama.cpp on this machine) usually need no key; the client needs one.
LOOPBACK_KEY = "no-key-needed"
# Answers are committed in batches this small (or after this long): a kill loses little.
BATCH_ANSWERS = 8
BATCH_SECONDS = 2.0


def endpoint_host(base_url: str) -> str:
    return urlsplit(base_url).hostname or base_url


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def llm_settings(config: Config) -> LlmSettings:
    s = config.settings.stance.llm
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        if not is_loopback(endpoint_host(s.base_url)):
            raise ConfigError(f"environment variable {KEY_ENV} is not set; export the API key of "
                              f"{endpoint_host(s.base_url)} before running the llm: backend")
        key = LOOPBACK_KEY
    return LlmSettings(
        base_url=s.base_url, api_key=key, concurrency=s.concurrency, timeout_seconds=s.timeout_seconds,
        max_retries=s.max_retries, answer_retries=s.answer_retries, backoff_seconds=s.backoff_seconds,
        max_rate_limit_wait=s.max_rate_limit_wait_seconds, response_format=s.response_format, logprobs=s.logprobs,
        max_output_tokens=s.max_output_tokens, price_input_per_million=s.price_input_per_million,
        price_output_per_million=s.price_output_per_million, max_cost=s.max_cost,
        max_tokens_per_run=s.max_tokens_per_run,
    )


def bundled_examples(config: Config) -> list[CodedExample]:
    """Few-shot examples from the bundled dataset's train split, for the targets it labels."""
    from analysis.dataset import DATASET_TARGETS, load_dataset

    known = [t for t in config.target_names if t in DATASET_TARGETS]
    per_label = config.settings.stance.llm.examples_per_label
    return default_examples(load_dataset(known), per_label) if known and per_label else []


def build_llm_backend(config: Config, model: str, examples: list[CodedExample] | None = None) -> LlmStance:
    """The backend for `llm:<model>`; `examples` (e.g. coded annotations) replace the bundled ones."""
    targets = [PromptTarget(t.name, t.description) for t in config.settings.stance.targets]
    chosen = bundled_examples(config) if examples is None else examples
    prompt = build_prompt(targets, read_guideline(), chosen)
    return LlmStance(model, prompt, llm_settings(config))


def register_llm_model(con, backend: LlmStance) -> None:
    """The models row: the prompt in full (so the model_id's hash can be checked), never the key."""
    if warehouse.get_model(con, backend.model_id) is not None:
        return
    card = {"model_id": backend.model_id, "backend": LLM_BACKEND, "model": backend.model,
            "endpoint_host": endpoint_host(backend.settings.base_url), "prompt_sha8": backend.prompt.sha8,
            "system_prompt": backend.prompt.system, "schema": backend.prompt.schema, "temperature": 0}
    warehouse.register_model(con, warehouse.ModelInfo(
        backend.model_id, LLM_BACKEND, backend.model, None, None, datetime.now(UTC), None, card))


def load_llm_backend(config: Config, con, spec: str) -> LlmStance:
    """`llm:<model>`, or a registered llm model_id (rebuilt from today's prompt; a changed prompt is an error)."""
    if spec.startswith(LLM_PREFIX):
        backend = build_llm_backend(config, spec[len(LLM_PREFIX):])
    else:
        info = warehouse.get_model(con, spec)
        if info is None or info.backend != LLM_BACKEND:
            raise ModelError(f"unknown model {spec!r}; name an LLM as llm:<model>, e.g. llm:qwen2.5:7b")
        backend = build_llm_backend(config, info.base_weights or "")
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
    cached: int = 0
    answered: int = 0
    failed: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    seconds: float = 0.0
    stop_reason: str | None = None
    run_id: int | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def labelled(self) -> int:
        return self.cached + self.answered

    def line(self) -> str:
        if not self.posts:
            return f"classify: nothing to label; every post has a label from {self.model_id}"
        text = (f"classify: {self.labelled} of {self.posts} posts labelled for {', '.join(self.targets)} with "
                f"{self.model_id} in {self.seconds:.1f}s ({self.cached} from the cache, {self.answered} answered, "
                f"{self.failed} without a usable answer); {self.requests} requests, "
                f"{self.input_tokens} + {self.output_tokens} tokens, estimated cost {self.cost:.4f}")
        if self.stop_reason:
            text += f"\nclassify: stopped early, {self.stop_reason}; rerun to continue"
        if self.failures:
            text += f"\nclassify: first failure: {self.failures[0]} (see llm_answers.error)"
        return text


def _label_rows(backend: LlmStance, rows: list[tuple[str, str, str]], labels: dict[str, str],
                probabilities: dict[str, list[float]] | None, now: datetime) -> dict[str, list]:
    from analysis.dataset import LABELS

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

    def __init__(self, config: Config, backend: LlmStance, run_id: int, summary: LlmSummary):
        self.config, self.backend, self.run_id, self.summary = config, backend, run_id, summary
        self.answers: list[warehouse.CachedAnswer] = []
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
        with warehouse.writing(self.config.warehouse_path) as con:
            warehouse.commit_llm_batch(con, self.run_id, self.answers, table, c)
        s = self.summary
        s.cached += c.cached
        s.answered += c.answered
        s.failed += c.failed
        s.requests += c.requests
        s.input_tokens += c.input_tokens
        s.output_tokens += c.output_tokens
        s.cost += c.cost
        self.answers, self.counts = [], warehouse.RunCounts()
        self.columns = {name: [] for name in warehouse.LABEL_SCHEMA.names}
        self.last_flush = time.monotonic()


def label_posts(config: Config, backend: LlmStance, posts: pa.Table, purpose: str = "classify",
                console: Console | None = None, progress=None) -> LlmSummary:
    """Label `posts` (platform, post_id, content_hash, text) with the LLM: cached texts first, then one
    request per distinct uncached text. Raises LlmStopped (after committing what was answered)."""
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
    with warehouse.writing(config.warehouse_path) as con:
        run_id = warehouse.start_llm_run(con, backend.model_id, purpose, host, posts.num_rows)
        cached = warehouse.cached_answers(con, backend.model, backend.prompt.sha8, list(groups))
    summary.run_id = run_id
    writer = _Writer(config, backend, run_id, summary)
    for key, answer in cached.items():
        writer.add_labels(groups[key], answer.labels or {}, answer.probabilities)
        writer.counts.cached += len(groups[key])
    writer.flush()
    if progress:
        progress(summary.cached)
    todo = [key for key in groups if key not in cached]

    def tell_where() -> None:
        if not is_loopback(host):
            line = f"{purpose}: sending {len(todo)} post texts to {host} (stance.llm.base_url)"
            if console is not None:
                console.print(line, soft_wrap=True)
            else:
                log.warning("%s", line)

    def on_outcome(outcome: Outcome) -> None:
        key = todo[outcome.index]
        writer.add_outcome(outcome, key, groups[key])
        if progress:
            progress(len(groups[key]))

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
        with warehouse.writing(config.warehouse_path) as con:
            warehouse.finish_llm_run(con, run_id, status, note)
    return summary


def run_llm_classification(config: Config, console: Console | None, relabel: bool, spec: str) -> LlmSummary:
    """`leakwatch classify` with an llm backend: what needs a label, through the cache."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    targets = config.target_names
    with warehouse.writing(config.warehouse_path) as con:
        backend = load_llm_backend(config, con, spec)
        warehouse.configure(con, targets, backend.model_id)
        todo = warehouse.posts_to_label(con, backend.model_id, targets, relabel)
    bar = Progress(TextColumn("labelling"), BarColumn(), MofNCompleteColumn(), TextColumn("posts"),
                   TimeRemainingColumn(), console=console or Console(stderr=True), transient=True,
                   disable=console is None)
    with bar:
        task = bar.add_task("labelling", total=todo.num_rows)
        return label_posts(config, backend, todo, "classify", console, lambda k: bar.advance(task, k))
