"""The `llm:<model>` stance backend: any OpenAI-compatible Chat Completions endpoint via the `openai` client.

One request per post (a failure stays with its post), at most `concurrency` in flight. Transient
failures (429 with Retry-After, 5xx, timeouts, dropped connections) are retried with backoff like a
collector's requests; a malformed or refused answer is asked again, then given up for that post with
its reason. Authentication and unknown-model errors stop the run: every other post would fail too.
A budget (cost and tokens) is checked before each request, so a run stops cleanly instead of
overspending. Caching and storage are the caller's job (`on_outcome`).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import numpy as np

from .dataset import LABELS
from .errors import ModelError
from .llm_prompt import AnswerError, StanceAnswer, StancePrompt, parse_answer

LLM_BACKEND = "llm"


class LlmStopped(ModelError):
    """The endpoint refuses every request (bad key, unknown model, unreachable): the run stops."""


@dataclass(frozen=True)
class LlmSettings:
    base_url: str
    api_key: str = field(repr=False)  # from the environment only; never stored, logged or put in a card
    concurrency: int = 4
    timeout_seconds: float = 60.0
    max_retries: int = 4  # extra tries after a 429, 5xx, timeout or dropped connection
    answer_retries: int = 2  # extra tries after a malformed or refused answer
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    max_rate_limit_wait: float = 300.0  # a Retry-After asking for longer stops the run
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    logprobs: bool = True
    max_output_tokens: int = 400
    examples_per_label: int = 1  # few-shot examples per target and label in the prompt
    price_input_per_million: float = 0.0
    price_output_per_million: float = 0.0
    max_cost: float | None = None
    max_tokens_per_run: int | None = None

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.price_input_per_million + output_tokens * self.price_output_per_million) / 1e6


def backoff_delay(failures: int, base: float, ceiling: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [c/2, c], c = min(ceiling, base * 2**(failures-1)).

    The same formula as collectors/retry.py's backoff_delay, deliberately a second copy: the layer
    contracts let neither analysis import collectors nor collectors import analysis, and the
    warehouse (the one package both may import) is no place for retry arithmetic. Change both."""
    top = min(ceiling, base * 2 ** max(failures - 1, 0))
    return (rng or random).uniform(top / 2, top)


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date); None when absent or unreadable."""
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now), 0.0)
        except (TypeError, ValueError):
            return None


@dataclass
class Outcome:
    """What one post cost and gave: an answer, or the reason there is none."""

    index: int
    answer: StanceAnswer | None = None
    error: str | None = None
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    rate_limit_waits: int = 0


@dataclass
class Budget:
    """Spending so far in a run, and whether one more request may start."""

    settings: LlmSettings
    input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0
    stop_reason: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def cost(self) -> float:
        return self.settings.cost(self.input_tokens, self.output_tokens)

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            self.input_tokens += outcome.input_tokens
            self.output_tokens += outcome.output_tokens
            self.requests += outcome.requests

    def allows(self, estimate: tuple[int, int], in_flight: int) -> bool:
        """False (with stop_reason set) when this request, with those in flight, could pass a cap.
        The estimate is the mean tokens per request so far, or the prompt's size before any answer."""
        s = self.settings
        with self._lock:
            if self.requests:
                est_in, est_out = self.input_tokens / self.requests, self.output_tokens / self.requests
            else:
                est_in, est_out = estimate
            ahead = in_flight + 1
            if s.max_tokens_per_run is not None and \
                    self.input_tokens + self.output_tokens + ahead * (est_in + est_out) > s.max_tokens_per_run:
                self.stop_reason = (f"token budget reached: {self.input_tokens + self.output_tokens} tokens "
                                    f"used, the next request would pass max_tokens_per_run {s.max_tokens_per_run}")
                return False
            if s.max_cost is not None and self.cost + ahead * s.cost(int(est_in), int(est_out)) > s.max_cost:
                self.stop_reason = (f"cost budget reached: {self.cost:.4f} spent, the next request would pass "
                                    f"max_cost {s.max_cost}")
                return False
            return True


def model_slug(model: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", model.lower()).strip("-")[-48:] or "model"


def llm_model_id(model: str, prompt: StancePrompt) -> str:
    return f"llm-{model_slug(model)}-{prompt.sha8}"


class LlmStance:
    backend = LLM_BACKEND

    def __init__(self, model: str, prompt: StancePrompt, settings: LlmSettings, rng: random.Random | None = None):
        import openai

        if not model.strip():
            raise ModelError('stance.model = "llm:" needs a model name after the colon, e.g. llm:qwen2.5:7b')
        self.model = model.strip()
        self.prompt = prompt
        self.settings = settings
        self.targets = list(prompt.targets)
        self.model_id = llm_model_id(self.model, prompt)
        self.rng = rng or random.Random()
        # The client's own retries are off: this class retries, so it can count and cap them.
        self.client = openai.OpenAI(base_url=settings.base_url, api_key=settings.api_key,
                                    timeout=settings.timeout_seconds, max_retries=0)
        self._response_format = settings.response_format
        self._logprobs = settings.logprobs
        self._mode_confirmed = False  # a request in the current mode has succeeded: no more fallbacks
        self._mode_lock = threading.Lock()

    # -- one request ------------------------------------------------------------------------

    def _mode(self) -> tuple[str, bool]:
        with self._mode_lock:
            return self._response_format, self._logprobs

    def _request_args(self, text: str, mode: tuple[str, bool]) -> dict[str, Any]:
        response_format, logprobs = mode
        args: dict[str, Any] = {
            "model": self.model, "temperature": 0, "max_tokens": self.settings.max_output_tokens,
            "messages": [{"role": "system", "content": self.prompt.system},
                         {"role": "user", "content": self.prompt.user(text)}],
        }
        if response_format == "json_schema":
            args["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "stance", "strict": True, "schema": self.prompt.schema}}
        else:
            args["response_format"] = {"type": "json_object"}
        if logprobs:
            args["logprobs"], args["top_logprobs"] = True, 5
        return args

    def _fall_back(self, used: tuple[str, bool]) -> bool:
        """After a 400 in mode `used`: drop json_schema, then logprobs (servers that lack them). True when
        the post should be asked again: the mode changed now or meanwhile (another thread's 400). Never
        once a request in the current mode succeeded: then the 400 is about this post."""
        with self._mode_lock:
            if (self._response_format, self._logprobs) != used:
                return True
            if self._mode_confirmed:
                return False
            if self._response_format == "json_schema":
                self._response_format = "json_object"
                return True
            if self._logprobs:
                self._logprobs = False
                return True
            return False

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        return text.replace(key, "***") if key and len(key) >= 4 else text

    def _describe(self, exc: Exception) -> str:
        import openai

        if isinstance(exc, openai.APIStatusError):
            body = exc.body if isinstance(exc.body, dict) else {}  # the client unwraps {"error": {...}}
            inner = body.get("error") if isinstance(body.get("error"), dict) else body
            message = inner.get("message")
            text = f"HTTP {exc.status_code}" + (f": {message}" if message else "")
        elif isinstance(exc, openai.APITimeoutError):
            text = f"no answer within {self.settings.timeout_seconds:g}s"
        else:
            text = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
        return self._redact(text)[:300]

    def ask(self, index: int, text: str) -> Outcome:
        """One post: retried through transient errors and bad answers; never raises except LlmStopped."""
        import openai

        outcome = Outcome(index)
        transient = bad_answers = 0
        while True:
            outcome.requests += 1
            mode = self._mode()
            try:
                response = self.client.chat.completions.create(**self._request_args(text, mode))
            except openai.RateLimitError as exc:
                wait_for = retry_after_seconds(exc.response.headers)
                if wait_for is not None and wait_for > self.settings.max_rate_limit_wait:
                    raise LlmStopped(f"{self.model}: rate limited for {wait_for:.0f}s, longer than "
                                     f"max_rate_limit_wait {self.settings.max_rate_limit_wait:g}s") from None
                transient += 1
                outcome.rate_limit_waits += 1
                if transient > self.settings.max_retries:
                    raise LlmStopped(f"{self.model}: still rate limited after {transient} tries") from None
                time.sleep(wait_for if wait_for is not None else self._backoff(transient))
                continue
            except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise LlmStopped(f"{self.settings.base_url} refused model {self.model!r}: {self._describe(exc)}"
                                 " (check stance.llm.base_url, the model name and LEAKWATCH_LLM_API_KEY)") from None
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if self._fall_back(mode):
                    outcome.requests -= 1  # a feature probe, not a try of this post
                    continue
                outcome.error = f"request rejected: {self._describe(exc)}"
                return outcome
            except (openai.InternalServerError, openai.APIConnectionError, openai.APIStatusError) as exc:
                # 5xx, timeouts (APITimeoutError is an APIConnectionError), dropped connections, 408/409.
                transient += 1
                if transient > self.settings.max_retries:
                    raise LlmStopped(f"{self.settings.base_url}: {self._describe(exc)} after "
                                     f"{transient} tries; answers so far are kept") from None
                time.sleep(self._backoff(transient))
                continue
            with self._mode_lock:
                self._mode_confirmed = self._mode_confirmed or mode == (self._response_format, self._logprobs)
            usage = response.usage
            if usage is not None:
                outcome.input_tokens += usage.prompt_tokens or 0
                outcome.output_tokens += usage.completion_tokens or 0
            try:
                outcome.answer = self._read(response)
                outcome.error = None
                return outcome
            except AnswerError as exc:
                bad_answers += 1
                outcome.error = self._redact(str(exc))[:300]
                if bad_answers > self.settings.answer_retries:
                    return outcome

    def _read(self, response: Any) -> StanceAnswer:
        if not response.choices:
            raise AnswerError("answer has no choices")
        choice = response.choices[0]
        message = choice.message
        refusal = getattr(message, "refusal", None)
        if refusal:
            raise AnswerError(f"refused: {refusal}")
        if choice.finish_reason == "content_filter":
            raise AnswerError("refused: the server's content filter stopped the answer")
        tokens = choice.logprobs.content if choice.logprobs is not None and choice.logprobs.content else None
        return parse_answer(message.content, self.targets, tokens)

    def _backoff(self, failures: int) -> float:
        return backoff_delay(failures, self.settings.backoff_seconds, self.settings.max_backoff_seconds, self.rng)

    # -- many posts ---------------------------------------------------------------------------

    def prompt_estimate(self, text: str) -> tuple[int, int]:
        """Tokens one request should cost before any answer says (about 4 characters a token)."""
        return (len(self.prompt.system) + len(self.prompt.user(text))) // 4 + 8, 30 * len(self.targets)

    def answer_all(self, texts: Sequence[str], on_outcome: Callable[[Outcome], None],
                   budget: Budget | None = None, before_first: Callable[[], None] | None = None) -> Budget:
        """Ask for every text, at most `concurrency` at a time; `on_outcome` runs in this thread, in the
        order answers arrive. Stops submitting when the budget says so (budget.stop_reason)."""
        budget = budget or Budget(self.settings)
        pending: set[Future[Outcome]] = set()
        queue: Iterable[int] = iter(range(len(texts)))
        started = False
        stopped: LlmStopped | None = None
        with ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="llm") as pool:
            try:
                exhausted = False
                while True:
                    while not exhausted and stopped is None and budget.stop_reason is None and \
                            len(pending) < self.settings.concurrency:
                        index = next(queue, None)
                        if index is None:
                            exhausted = True
                            break
                        if not budget.allows(self.prompt_estimate(texts[index]), len(pending)):
                            break
                        if not started and before_first:
                            before_first()
                        started = True
                        pending.add(pool.submit(self.ask, index, texts[index]))
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        try:
                            outcome = future.result()
                        except LlmStopped as exc:
                            stopped = stopped or exc
                            continue
                        budget.add(outcome)
                        on_outcome(outcome)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        if stopped is not None:
            raise stopped
        return budget

    def predict(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """The StanceBackend interface (used by `evaluate`): where the server gives no log-probabilities,
        the row is the answer's label as one-hot; a post without a usable answer is an error here."""
        out = np.zeros((len(texts), len(self.targets), len(LABELS)))
        failed: list[str] = []

        def keep(outcome: Outcome) -> None:
            if outcome.answer is None:
                failed.append(outcome.error or "no answer")
            else:
                for t, target in enumerate(self.targets):
                    probs = (outcome.answer.probabilities or {}).get(target)
                    out[outcome.index, t] = probs if probs else np.eye(len(LABELS))[
                        LABELS.index(outcome.answer.labels[target])]
            if progress:
                progress(1)

        budget = self.answer_all(texts, keep)
        if budget.stop_reason:
            raise ModelError(f"{self.model_id}: {budget.stop_reason}")
        if failed:
            raise ModelError(f"{self.model_id}: {len(failed)} of {len(texts)} posts got no usable answer "
                             f"(first: {failed[0]})")
        return {target: out[:, t, :] for t, target in enumerate(self.targets)}
