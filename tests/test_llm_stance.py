"""The `llm:` stance backend against the OpenAI-compatible test server (tests/llm_server.py), through
the real `openai` client: prompt, labels and probabilities, fallbacks, retries, failures, budget."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from analysis.dataset import load_dataset
from analysis.llm_prompt import (
    PromptTarget,
    build_prompt,
    default_examples,
    label_probabilities,
    parse_answer,
    read_guideline,
)
from analysis.llm_stance import (
    LlmSettings,
    LlmStance,
    LlmStopped,
    backoff_delay,
    llm_model_id,
    retry_after_seconds,
)
from tests.llm_server import LlmServer

TARGETS = [PromptTarget("openai", "OpenAI, the company"), PromptTarget("artists", "the artists who leaked Sora")]
KEY = "sk-test-4f1c9a77e2"


@pytest.fixture
def server() -> Iterator[LlmServer]:
    started = LlmServer().start()
    yield started
    started.stop()


def backend(server: LlmServer, **settings) -> LlmStance:
    prompt = build_prompt(TARGETS, read_guideline(), default_examples(load_dataset(), 1))
    values = {"backoff_seconds": 0.01, "timeout_seconds": 1.0, "concurrency": 3, **settings}
    return LlmStance("test-model", prompt, LlmSettings(base_url=server.url, api_key=KEY, **values),
                     rng=random.Random(1))


def answers(b: LlmStance, texts: list[str]) -> dict[int, object]:
    got = {}
    b.answer_all(texts, lambda o: got.__setitem__(o.index, o))
    return got


def test_prompt_has_targets_guideline_and_train_examples_only():
    data = load_dataset()
    examples = default_examples(data, 1)
    train = {e.text for e in data.split("train")}
    assert len(examples) == 6 and all(e.text in train for e in examples)
    for target in ("openai", "artists"):  # every label of every target is shown once
        assert sorted(e.labels[target] for e in examples).count("none") >= 1
        assert {e.labels[target] for e in examples} == {"favor", "against", "none"}
    prompt = build_prompt(TARGETS, read_guideline(), examples)
    assert "OpenAI, the company" in prompt.system and "Hard cases" in prompt.system
    assert all(json.dumps(e.text)[1:40] in prompt.system for e in examples)
    assert prompt.user("a post") == "Post:\n<<<\na post\n>>>"
    assert set(prompt.schema["properties"]) == {"openai", "artists"}
    # A changed description is a changed prompt, hence a new model id.
    other = build_prompt([TARGETS[0], PromptTarget("artists", "artists")], read_guideline(), examples)
    assert other.sha8 != prompt.sha8
    assert llm_model_id("Qwen2.5:7B", prompt) == f"llm-qwen2.5-7b-{prompt.sha8}"


def test_probabilities_from_the_label_token_also_when_split():
    def tok(text, top=()):
        return SimpleNamespace(token=text, logprob=0.0,
                               top_logprobs=[SimpleNamespace(token=t, logprob=lp) for t, lp in top])

    import math

    content = '{"openai": {"label": "against", "reason": "r"}}'
    pieces = ['{"', "openai", '":', ' {"', "label", '":', ' "', "ag", "ainst", '",', ' "', "reason", '":',
              ' "', "r", '"}}']
    assert "".join(pieces) == content
    tokens = [tok(p) for p in pieces]
    tokens[7] = tok("ag", [("ag", math.log(0.6)), ("f", math.log(0.3)), ("none", math.log(0.05)),
                           ("x", math.log(0.05))])
    probs = label_probabilities(content, ["openai"], tokens)
    assert probs["openai"] == pytest.approx([0.3 / 0.95, 0.6 / 0.95, 0.05 / 0.95])
    assert parse_answer(content, ["openai"], tokens).labels == {"openai": "against"}
    assert parse_answer(content, ["openai"]).probabilities is None  # no logprobs: unavailable, not made up
    assert label_probabilities(content, ["openai"], tokens[:-1]) is None  # tokens must spell the answer


def test_labels_and_probabilities_from_the_server(server: LlmServer):
    b = backend(server)
    got = answers(b, ["pro-openai and anti-artists", "nothing about either"])
    assert got[0].answer.labels == {"openai": "favor", "artists": "against"}
    assert got[0].answer.probabilities["openai"] == pytest.approx([0.7, 0.2, 0.1])
    assert got[0].answer.probabilities["artists"] == pytest.approx([0.2, 0.7, 0.1])
    assert got[1].answer.labels == {"openai": "none", "artists": "none"}
    assert got[1].answer.reasons["artists"] == "the post's wording about artists"
    assert got[0].input_tokens > 500 and got[0].output_tokens > 0 and got[0].requests == 1
    request = server.requests[0]
    assert request["temperature"] == 0 and request["model"] == "test-model"
    assert request["response_format"]["type"] == "json_schema" and request["logprobs"] is True
    assert server.auth_headers[0] == f"Bearer {KEY}"


def test_servers_without_json_schema_or_logprobs(server: LlmServer):
    server.json_schema, server.logprobs = False, False
    got = answers(backend(server, concurrency=1), ["anti-openai", "pro-artists"])
    assert got[0].answer.labels["openai"] == "against" and got[1].answer.labels["artists"] == "favor"
    assert got[0].answer.probabilities is None  # recorded as unavailable
    assert [r["response_format"]["type"] for r in server.requests] == ["json_schema", "json_object", "json_object"]
    server.requests.clear()
    server.reject_logprobs = True  # a 400 for logprobs: asked again without them, and remembered
    got = answers(backend(server, concurrency=1, response_format="json_object"), ["anti-openai", "x"])
    assert got[0].answer.labels["openai"] == "against" and got[0].answer.probabilities is None
    assert [bool(r.get("logprobs")) for r in server.requests] == [True, False, False]


def test_concurrent_400s_fall_back_once_and_a_post_specific_400_fails_only_that_post(server: LlmServer):
    server.json_schema = False
    got = answers(backend(server, concurrency=4), [f"pro-openai {i}" for i in range(8)])
    # Four requests hit the json_schema 400 together; logprobs must survive that.
    assert all(o.answer.probabilities is not None for o in got.values())
    server.requests.clear()
    got = answers(backend(server, concurrency=1), ["pro-artists", "[400] a very long post", "anti-artists"])
    assert got[1].answer is None and "HTTP 400" in got[1].error and "context window" in got[1].error
    assert got[2].answer.probabilities is not None  # the mode did not degrade
    assert [r["response_format"]["type"] for r in server.requests][-2:] == ["json_object", "json_object"]


def test_transient_faults_are_retried_and_bad_answers_isolated(server: LlmServer):
    server.slow_seconds = 1.6  # past the 1s timeout
    texts = ["[429] anti-openai", "[500] pro-artists", "[drop] pro-openai", "[slow] anti-artists",
             "[malformed-once] pro-openai", "[malformed] pro-openai", "[refuse] x", "[badlabel] y", "fine"]
    got = answers(backend(server, answer_retries=2), texts)
    assert got[0].answer.labels["openai"] == "against" and got[0].rate_limit_waits == 1
    assert got[1].answer.labels["artists"] == "favor" and got[1].requests == 2
    assert got[2].answer.labels["openai"] == "favor" and got[2].requests == 2
    assert got[3].answer.labels["artists"] == "against" and got[3].requests == 2
    assert got[4].answer.labels["openai"] == "favor" and got[4].requests == 2
    for index, reason in ((5, "not JSON"), (6, "refused"), (7, "'maybe' is not one of")):
        assert got[index].answer is None and reason in got[index].error
        assert got[index].requests == 3  # the first try and two retries, then given up for this post
        assert got[index].input_tokens > 0  # a bad answer still costs tokens
    assert got[8].answer.labels == {"openai": "none", "artists": "none"}
    assert server.tries["fine"] == 1


def test_retry_after_and_backoff_arithmetic():
    assert retry_after_seconds({"retry-after": "7"}) == 7
    assert retry_after_seconds({"retry-after": "Thu, 01 Jan 1970 00:17:00 GMT"}, now=1000) == 20
    assert retry_after_seconds({}) is None and retry_after_seconds({"retry-after": "soon"}) is None
    rng = random.Random(3)
    delays = [backoff_delay(n, 1.0, 8.0, rng) for n in (1, 2, 3, 4, 5, 6)]
    for n, delay in zip((1, 2, 3, 4, 5, 6), delays, strict=True):
        ceiling = min(8.0, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling


def test_long_retry_after_and_auth_errors_stop_the_run_without_the_key(server: LlmServer):
    server.retry_after = "3600"
    with pytest.raises(LlmStopped, match="rate limited for 3600s"):
        answers(backend(server), ["[429] x"])
    server.status_for_all = 401  # the test server echoes the key in its error, as some APIs do
    with pytest.raises(LlmStopped) as stopped:
        answers(backend(server), ["a", "b"])
    assert "HTTP 401" in str(stopped.value) and KEY not in str(stopped.value) and "***" in str(stopped.value)


def test_budget_stops_before_passing_the_cap(server: LlmServer):
    b = backend(server, concurrency=1, max_tokens_per_run=4000)
    got: dict[int, object] = {}
    budget = b.answer_all([f"post {i}" for i in range(10)], lambda o: got.__setitem__(o.index, o))
    per_request = (budget.input_tokens + budget.output_tokens) / budget.requests
    assert 1 <= budget.requests < 10 and len(got) == budget.requests
    assert budget.input_tokens + budget.output_tokens <= 4000
    assert budget.input_tokens + budget.output_tokens + per_request > 4000  # one more would pass it
    assert "max_tokens_per_run 4000" in budget.stop_reason
    priced = backend(server, concurrency=2, price_input_per_million=1000.0, price_output_per_million=2000.0,
                     max_cost=3.0)
    budget = priced.answer_all([f"other {i}" for i in range(10)], lambda o: None)
    assert 0 < budget.cost <= 3.0 and "max_cost 3.0" in budget.stop_reason
    assert budget.cost == pytest.approx((budget.input_tokens * 1000 + budget.output_tokens * 2000) / 1e6)
