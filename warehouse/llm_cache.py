"""The LLM answer cache and LLM runs (tokens, estimated cost, outcome counts).

Answers are keyed by (model, prompt hash, text hash), so a rerun or a post with an already-seen
text makes no request. A failed answer is recorded with its reason but never replaces a good one,
and is asked again on the next run. Each batch of answers, its labels and the run's counters
commit in one transaction: a killed run loses at most the batch in hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from .labels import write_labels

# A run not updated for this long was killed: the next run marks it interrupted.
STALE_RUN = timedelta(minutes=10)


@dataclass(frozen=True)
class CachedAnswer:
    model: str
    prompt_hash: str
    text_hash: str
    model_id: str
    status: str  # ok | failed
    labels: dict[str, str] | None
    reasons: dict[str, str] | None
    probabilities: dict[str, list[float]] | None
    error: str | None
    requests: int
    input_tokens: int
    output_tokens: int
    answered_at: datetime


@dataclass
class RunCounts:
    """An LLM run's counters: one committed batch's, or (in the run's summary) the run's totals."""

    cached: int = 0
    answered: int = 0
    failed: int = 0
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    def add(self, other: RunCounts) -> None:
        for counter in fields(self):
            setattr(self, counter.name, getattr(self, counter.name) + getattr(other, counter.name))


def _loads(value: str | None):
    return json.loads(value) if value else None


def cached_answers(con: duckdb.DuckDBPyConnection, model: str, prompt_hash: str,
                   text_hashes: Sequence[str]) -> dict[str, CachedAnswer]:
    """Good answers already stored for these texts, by text hash."""
    if not text_hashes:
        return {}
    rows = con.execute(
        """SELECT model, prompt_hash, text_hash, model_id, status, labels, reasons, probabilities, error,
                  requests, input_tokens, output_tokens, answered_at
           FROM llm_answers WHERE model = ? AND prompt_hash = ? AND status = 'ok'
             AND text_hash IN (SELECT unnest(?))""",
        [model, prompt_hash, list(set(text_hashes))],
    ).fetchall()
    return {r[2]: CachedAnswer(*r[:5], _loads(r[5]), _loads(r[6]), _loads(r[7]), *r[8:]) for r in rows}


def _store(con: duckdb.DuckDBPyConnection, answers: Sequence[CachedAnswer]) -> None:
    con.executemany(
        """INSERT INTO llm_answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (model, prompt_hash, text_hash) DO UPDATE SET
               model_id = excluded.model_id, status = excluded.status, labels = excluded.labels,
               reasons = excluded.reasons, probabilities = excluded.probabilities, error = excluded.error,
               requests = llm_answers.requests + excluded.requests,
               input_tokens = llm_answers.input_tokens + excluded.input_tokens,
               output_tokens = llm_answers.output_tokens + excluded.output_tokens,
               answered_at = excluded.answered_at
           WHERE llm_answers.status <> 'ok'""",
        [[a.model, a.prompt_hash, a.text_hash, a.model_id, a.status,
          json.dumps(a.labels) if a.labels is not None else None,
          json.dumps(a.reasons) if a.reasons is not None else None,
          json.dumps(a.probabilities) if a.probabilities is not None else None,
          a.error, a.requests, a.input_tokens, a.output_tokens, a.answered_at] for a in answers],
    )


def commit_llm_batch(con: duckdb.DuckDBPyConnection, run_id: int, answers: Sequence[CachedAnswer],
                     labels: pa.Table, counts: RunCounts) -> None:
    """Answers, the labels they give and the run's counters, all or nothing."""
    con.complete()
    con.execute("BEGIN TRANSACTION")
    try:
        if answers:
            _store(con, answers)
        write_labels(con, labels)
        con.execute(
            """UPDATE llm_runs SET cached = cached + ?, answered = answered + ?, failed = failed + ?,
                   requests = requests + ?, input_tokens = input_tokens + ?, output_tokens = output_tokens + ?,
                   cost = cost + ?, updated_at = ? WHERE run_id = ?""",
            [counts.cached, counts.answered, counts.failed, counts.requests, counts.input_tokens,
             counts.output_tokens, counts.cost, datetime.now(UTC), run_id],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def start_llm_run(con: duckdb.DuckDBPyConnection, model_id: str, purpose: str, endpoint_host: str,
                  posts: int) -> int:
    now = datetime.now(UTC)
    con.execute("UPDATE llm_runs SET status = 'interrupted', finished_at = updated_at "
                "WHERE status = 'running' AND updated_at < ?", [now - STALE_RUN])
    row = con.execute(
        "INSERT INTO llm_runs (model_id, purpose, endpoint_host, started_at, updated_at, status, posts) "
        "VALUES (?, ?, ?, ?, ?, 'running', ?) RETURNING run_id",
        [model_id, purpose, endpoint_host, now, now, posts],
    ).fetchall()
    return int(row[0][0])


def finish_llm_run(con: duckdb.DuckDBPyConnection, run_id: int, status: str, note: str | None = None) -> None:
    now = datetime.now(UTC)
    con.execute("UPDATE llm_runs SET status = ?, note = ?, finished_at = ?, updated_at = ? WHERE run_id = ?",
                [status, note, now, now, run_id])

