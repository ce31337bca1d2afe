"""`leakwatch classify --model llm:<model>` end to end: the CLI as a subprocess, a real DuckDB file and
the OpenAI-compatible test server. The answer cache, run accounting, failures per post, the budget
stop, the privacy line, a SIGKILL mid-run, and the API key never leaving the environment."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import warehouse
from tests.conftest import REPO, cli_env, query, run_cli, write_config
from tests.llm_server import LlmServer
from warehouse.records import Post

KEY = "sk-test-never-store-91b7d2c4"
MODEL = "llm:test-model"


@pytest.fixture
def server() -> Iterator[LlmServer]:
    started = LlmServer().start()
    yield started
    started.stop()


def setup(tmp_path: Path, server_url: str, texts: list[str], **llm) -> tuple[Path, Path]:
    values = {"base_url": server_url, "backoff_seconds": 0.01, "timeout_seconds": 2, **llm}
    config = write_config(tmp_path, **{"stance.llm": values})
    db = tmp_path / "data" / "leakwatch.duckdb"
    add_posts(db, texts)
    return config, db


def add_posts(db: Path, texts: list[str], start: int = 0) -> None:
    posts = [Post(platform="reddit", post_id=f"t3_{i + start}", kind="submission", text=text,
                  created_at=datetime(2024, 11, 27, tzinfo=UTC), matched_queries=("sora leak",))
             for i, text in enumerate(texts)]
    with warehouse.writing(db) as con:
        warehouse.upsert_posts(con, posts)


def env(**extra: str) -> dict[str, str]:
    return cli_env({"LEAKWATCH_LLM_API_KEY": KEY, "HF_HUB_OFFLINE": "1", **extra})


def labels(db: Path) -> dict[tuple[str, str], tuple]:
    rows = query(db, "SELECT post_id, target, model_id, label, p_favor, p_against, p_none FROM labels")
    return {(r[0], r[1]): r[2:] for r in rows}


def test_classify_labels_through_the_cache_and_records_the_run(tmp_path: Path, server: LlmServer):
    texts = ["pro-openai, anti-artists", "anti-openai and pro-artists", "about the weather",
             "about the weather", "[malformed] pro-openai"]
    config, db = setup(tmp_path, server.url, texts, price_input_per_million=2.0, price_output_per_million=8.0,
                       answer_retries=1)
    first = run_cli(config, "classify", "--model", MODEL, env=env())
    assert first.returncode == 0, first.stderr
    assert "4 of 5 posts labelled" in first.stdout and "1 without a usable answer" in first.stdout
    assert "answer is not JSON" in first.stdout and "sending" not in first.stderr  # loopback: no privacy line
    got = labels(db)
    model_id = got[("t3_0", "openai")][0]
    assert model_id.startswith("llm-test-model-") and len(model_id) == len("llm-test-model-") + 8
    assert got[("t3_0", "openai")][1:] == pytest.approx(("favor", 0.7, 0.2, 0.1))
    assert got[("t3_0", "artists")][1] == "against" and got[("t3_1", "artists")][1] == "favor"
    assert got[("t3_2", "openai")][1] == got[("t3_3", "openai")][1] == "none"
    assert ("t3_4", "openai") not in got  # no usable answer: left unlabelled
    assert len(server.requests) == 3 + 2  # the two identical texts share one request; [malformed] twice
    (status, posts, cached, answered, failed, requests, tokens_in, tokens_out, cost), = query(
        db, "SELECT status, posts, cached, answered, failed, requests, input_tokens, output_tokens, cost "
            "FROM llm_runs")
    assert (status, posts, cached, answered, failed, requests) == ("ok", 5, 0, 4, 1, 5)
    assert tokens_in > 1000 and cost == pytest.approx((tokens_in * 2 + tokens_out * 8) / 1e6)
    assert f"estimated cost {cost:.4f}" in first.stdout
    (error,), = query(db, "SELECT error FROM llm_answers WHERE status = 'failed'")
    assert "not JSON" in error
    assert query(db, "SELECT value FROM settings WHERE key = 'current_model'") == [(model_id,)]
    (backend, card), = query(db, "SELECT backend, card FROM models")
    assert backend == "llm" and "labelling guideline" in card.lower()

    # Rerun: only the failed post is asked again; --relabel answers everything from the cache.
    server.requests.clear()
    second = run_cli(config, "classify", "--model", MODEL, env=env())
    assert second.returncode == 0 and "0 of 1 posts labelled" in second.stdout
    assert [r["messages"][1]["content"] for r in server.requests] == ["Post:\n<<<\n[malformed] pro-openai\n>>>"] * 2
    server.requests.clear()
    again = run_cli(config, "classify", "--model", MODEL, "--relabel", env=env())
    assert again.returncode == 0 and "4 of 5 posts labelled" in again.stdout and "4 from the cache" in again.stdout
    assert len(server.requests) == 2  # only the still-failing post
    # The model id from the warehouse also works; `classify` with the current model labels nothing new.
    again = run_cli(config, "classify", "--model", model_id, env=env())
    assert again.returncode == 0 and "0 of 1 posts labelled" in again.stdout


def test_no_logprobs_means_null_probabilities(tmp_path: Path, server: LlmServer):
    server.logprobs = False
    config, db = setup(tmp_path, server.url, ["pro-artists"])
    result = run_cli(config, "classify", "--model", MODEL, env=env())
    assert result.returncode == 0, result.stderr
    assert labels(db)[("t3_0", "artists")][1:] == ("favor", None, None, None)
    assert query(db, "SELECT probabilities FROM llm_answers") == [(None,)]


def test_budget_stops_cleanly_and_a_rerun_continues(tmp_path: Path, server: LlmServer):
    config, db = setup(tmp_path, server.url, [f"post number {i}" for i in range(12)], concurrency=1,
                       max_tokens_per_run=5000)
    first = run_cli(config, "classify", "--model", MODEL, env=env())
    assert first.returncode == 0, first.stderr
    assert "stopped early, token budget reached" in first.stdout and "rerun to continue" in first.stdout
    done = len(labels(db)) // 2
    assert 1 <= done < 12 and len(server.requests) == done
    (status, tokens), = query(db, "SELECT status, input_tokens + output_tokens FROM llm_runs")
    assert status == "budget" and tokens <= 5000
    second = run_cli(config, "classify", "--model", MODEL, env=env())
    assert second.returncode == 0 and len(labels(db)) // 2 == min(12, 2 * done)


def test_endpoint_errors_are_one_line_and_keep_what_was_answered(tmp_path: Path, server: LlmServer):
    config, db = setup(tmp_path, server.url, ["pro-openai"], max_retries=1)
    server.status_for_all = 404
    result = run_cli(config, "classify", "--model", MODEL, env=env())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "refused model 'test-model': HTTP 404" in result.stderr
    assert query(db, "SELECT status FROM llm_runs") == [("stopped",)]
    result = run_cli(config, "classify", "--model", "llm:", env=env())
    assert result.returncode == 1 and "needs a model name" in result.stderr


def test_a_remote_endpoint_is_named_before_the_first_request_and_needs_a_key(tmp_path: Path):
    # 0.0.0.0 reaches this machine on Linux but is not a loopback address: it stands in for a remote host.
    remote = LlmServer(host="0.0.0.0").start()
    try:
        url = f"http://0.0.0.0:{remote.httpd.server_address[1]}/v1"
        config, db = setup(tmp_path, url, ["pro-openai", "anti-artists"])
        no_key = run_cli(config, "classify", "--model", MODEL, env=cli_env({"HF_HUB_OFFLINE": "1"}))
        assert no_key.returncode == 1 and "LEAKWATCH_LLM_API_KEY is not set" in no_key.stderr
        assert remote.requests == []
        remote.status_for_all = 503  # the very first request fails: the line must already be out
        failed = run_cli(config, "classify", "--model", MODEL, env=env())
        assert failed.returncode == 1 and "HTTP 503" in failed.stderr
        line = "classify: sending 2 post texts to 0.0.0.0 (stance.llm.base_url)"
        assert failed.stderr.index(line) < failed.stderr.index("HTTP 503")
        remote.status_for_all = None
        result = run_cli(config, "classify", "--model", MODEL, env=env())
        assert result.returncode == 0, result.stderr
        assert result.stderr.count(line) == 1 and str(remote.httpd.server_address[1]) not in result.stderr
        assert len(remote.requests) == 2 * 5 + 2  # 1 + 4 retries for each of the two posts, then both answered
    finally:
        remote.stop()


def test_a_killed_run_keeps_its_answers_and_a_rerun_does_not_ask_again(tmp_path: Path, server: LlmServer):
    server.delay = 0.25  # slow answers, so the kill lands mid-run
    texts = [f"post {i} pro-openai" for i in range(40)]
    config, db = setup(tmp_path, server.url, texts, concurrency=2)
    process = subprocess.Popen([sys.executable, "-m", "leakwatch", "--config", str(config), "classify",
                                "--model", MODEL], env=env(), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(server.requests) < 20 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "classify finished before the kill"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    asked_before = len(server.requests)
    kept = {r[0] for r in query(db, "SELECT text_hash FROM llm_answers WHERE status = 'ok'")}
    labelled = {r[0] for r in query(db, "SELECT post_id FROM labels WHERE target = 'openai'")}
    assert 8 <= len(kept) < 40 and len(labelled) == len(kept)  # committed batch by batch, labels with them
    assert query(db, "SELECT status FROM llm_runs") == [("running",)]  # killed: no chance to close it
    server.delay = 0.0
    result = run_cli(config, "classify", "--model", MODEL, env=env())
    assert result.returncode == 0, result.stderr
    asked_again = server.posts_asked()[asked_before:]
    from analysis.llm_classify import text_hash

    assert not {text_hash(f"Post:\n<<<\n{p}\n>>>") for p in asked_again} & kept
    assert len(asked_again) == 40 - len(kept)
    assert len(query(db, "SELECT post_id FROM labels WHERE target = 'openai'")) == 40


def test_the_api_key_never_reaches_the_warehouse_logs_or_exports(tmp_path: Path, server: LlmServer):
    config, db = setup(tmp_path, server.url, ["pro-openai", "[malformed] x", "[429] anti-artists"], answer_retries=0)
    result = run_cli(config, "-v", "classify", "--model", MODEL, env=env())
    assert result.returncode == 0, result.stderr
    assert all(h == f"Bearer {KEY}" for h in server.auth_headers)  # it was used, so the checks below can fail
    exported = run_cli(config, "export", "--week", "2024-W48", env=env())
    assert exported.returncode == 0, exported.stderr
    server.status_for_all = 401  # an error that echoes the key
    failed = run_cli(config, "-v", "classify", "--model", MODEL, "--relabel", env=env())
    assert failed.returncode == 1 and "HTTP 401" in failed.stderr
    texts = [result.stdout, result.stderr, exported.stdout, exported.stderr, failed.stdout, failed.stderr]
    files = [p for p in (tmp_path / "data").rglob("*") if p.is_file()]
    assert any(p.suffix == ".csv" for p in files) and db in files
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
    for text in texts:
        assert KEY not in text
    rows = query(db, "SELECT * FROM llm_answers UNION ALL BY NAME SELECT * FROM llm_runs")
    assert KEY not in repr(rows) and KEY not in repr(query(db, "SELECT * FROM models"))


def test_evaluate_an_llm_on_labelled_posts(tmp_path: Path, server: LlmServer):
    config, db = setup(tmp_path, server.url, ["x"])
    gold = tmp_path / "gold.csv"
    gold.write_text("id,platform,text,openai,artists\n1,reddit,pro-openai,favor,none\n"
                    "2,reddit,anti-artists,none,against\n3,reddit,pro-artists,favor,favor\n", encoding="utf-8")
    result = run_cli(config, "evaluate", "--model", MODEL, "--data", str(gold), "--json", env=env())
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    assert metrics["openai"]["confusion"] == [[1, 0, 1], [0, 0, 0], [0, 0, 1]]  # post 3: none, coded favor
    assert metrics["artists"]["accuracy"] == 1.0
    (stored,), = query(db, "SELECT metrics FROM models WHERE backend = 'llm'")
    assert stored is not None


def test_the_key_is_read_only_when_an_llm_model_runs_and_is_redacted(tmp_path: Path, monkeypatch):
    from leakwatch.config import ConfigError, load_config, secret_env_vars

    config = load_config(write_config(tmp_path, **{"stance.llm": {"base_url": "https://llm.example.org/v1"}}))
    monkeypatch.delenv("LEAKWATCH_LLM_API_KEY", raising=False)
    # Training, or labelling with a trained model, never needs the endpoint's key.
    assert config.stance_setup().llm is None and config.stance_setup_to_run().llm is None
    with pytest.raises(ConfigError, match="LEAKWATCH_LLM_API_KEY is not set; export the API key of llm.example.org"):
        config.stance_setup_to_run(MODEL)
    monkeypatch.setenv("LEAKWATCH_LLM_API_KEY", KEY)
    setup = config.stance_setup_to_run(MODEL)
    assert setup.llm is not None and setup.llm.api_key == KEY and setup.llm.base_url == "https://llm.example.org/v1"
    assert KEY not in repr(setup)
    assert "LEAKWATCH_LLM_API_KEY" in secret_env_vars()  # so the log handler redacts it
