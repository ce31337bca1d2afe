"""Stance labels and the models that made them.

Labels are keyed by (post, target, model_id): a new model never overwrites another model's labels,
and a model relabels its own label only when the post's text changed. Labels arrive as one Arrow
table per batch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

LABEL_SCHEMA = pa.schema(
    [
        ("platform", pa.string()),
        ("post_id", pa.string()),
        ("target", pa.string()),
        ("model_id", pa.string()),
        ("label", pa.string()),
        ("p_favor", pa.float64()),
        ("p_against", pa.float64()),
        ("p_none", pa.float64()),
        ("content_hash", pa.string()),
        ("labelled_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class ModelInfo:
    model_id: str
    backend: str
    base_weights: str | None
    training_data_hash: str | None
    path: str | None
    created_at: datetime
    metrics: dict[str, Any] | None = None
    card: dict[str, Any] | None = None


def register_model(con: duckdb.DuckDBPyConnection, info: ModelInfo) -> None:
    """Record a model (again): its row is refreshed, labels made by it are untouched."""
    con.execute(
        """
        INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (model_id) DO UPDATE SET
            backend = excluded.backend, base_weights = excluded.base_weights,
            training_data_hash = excluded.training_data_hash, path = excluded.path,
            metrics = coalesce(excluded.metrics, models.metrics), card = excluded.card
        """,
        [
            info.model_id, info.backend, info.base_weights, info.training_data_hash, info.path, info.created_at,
            json.dumps(info.metrics) if info.metrics is not None else None,
            json.dumps(info.card) if info.card is not None else None,
        ],
    )


def _model_from_row(row: tuple) -> ModelInfo:
    model_id, backend, base, data_hash, path, created_at, metrics, card = row
    return ModelInfo(model_id, backend, base, data_hash, path, created_at,
                     json.loads(metrics) if metrics else None, json.loads(card) if card else None)


_MODEL_COLUMNS = "model_id, backend, base_weights, training_data_hash, path, created_at, metrics, card"


def get_model(con: duckdb.DuckDBPyConnection, model_id: str) -> ModelInfo | None:
    row = con.execute(f"SELECT {_MODEL_COLUMNS} FROM models WHERE model_id = ?", [model_id]).fetchone()
    return _model_from_row(row) if row else None


def list_models(con: duckdb.DuckDBPyConnection) -> list[ModelInfo]:
    """Every registered model, newest first."""
    rows = con.execute(f"SELECT {_MODEL_COLUMNS} FROM models ORDER BY created_at DESC, model_id").fetchall()
    return [_model_from_row(r) for r in rows]


def set_model_metrics(con: duckdb.DuckDBPyConnection, model_id: str, metrics: dict[str, Any]) -> None:
    """Make `metrics` the model's current evaluation and add it to the `evaluations` history."""
    con.execute("UPDATE models SET metrics = ? WHERE model_id = ?", [json.dumps(metrics), model_id])
    datasets = sorted({str(m.get("data", "")) for m in metrics.values() if isinstance(m, dict)})
    dataset = "; ".join(d for d in datasets if d) or "unknown"
    digest = re.search(r"sha256 ([0-9a-f]{8,64})", dataset)
    n = {target: m.get("n") for target, m in metrics.items() if isinstance(m, dict)}
    con.execute("INSERT INTO evaluations (model_id, dataset, dataset_sha256, n, metrics, evaluated_at) "
                "VALUES (?, ?, ?, ?, ?, now())",
                [model_id, dataset, digest.group(1) if digest else None, json.dumps(n), json.dumps(metrics)])


def evaluations(con: duckdb.DuckDBPyConnection, model_id: str) -> list[dict[str, Any]]:
    """Every stored evaluation of a model, newest first."""
    cursor = con.execute("SELECT evaluation_id, dataset, dataset_sha256, n, evaluated_at FROM evaluations "
                         "WHERE model_id = ? ORDER BY evaluation_id DESC", [model_id])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def posts_to_label(
    con: duckdb.DuckDBPyConnection, model_id: str, targets: list[str], relabel: bool = False
) -> pa.Table:
    """Posts lacking a label from `model_id` for some target, or whose text changed since; all with
    relabel. Columns: platform, post_id, content_hash, text (title and body together)."""
    condition = "true" if relabel else """
        (SELECT count(*) FROM labels l
         WHERE l.platform = p.platform AND l.post_id = p.post_id AND l.model_id = $model_id
           AND l.target IN (SELECT unnest($targets)) AND l.content_hash = p.content_hash) < len($targets)
    """
    return con.sql(
        f"""
        SELECT platform, post_id, content_hash,
               CASE WHEN coalesce(title, '') = '' THEN text
                    WHEN text = '' THEN title ELSE title || chr(10) || chr(10) || text END AS text
        FROM posts p WHERE p.text IS NOT NULL AND ({condition})  -- NULL: removed before first seen
        ORDER BY platform, post_id
        """,
        params={"model_id": model_id, "targets": targets} if not relabel else None,
    ).to_arrow_table()


def write_labels(con: duckdb.DuckDBPyConnection, labels: pa.Table) -> int:
    """Insert or refresh one model's labels in one set-based statement; returns rows written."""
    if labels.num_rows == 0:
        return 0
    con.complete()  # DuckDB 2 refuses register() while an earlier fetchone() result is unfinished
    con.register("label_batch", labels.cast(LABEL_SCHEMA))
    try:
        con.execute(
            """
            INSERT INTO labels BY NAME SELECT * FROM label_batch
            ON CONFLICT (platform, post_id, target, model_id) DO UPDATE SET
                label = excluded.label, p_favor = excluded.p_favor, p_against = excluded.p_against,
                p_none = excluded.p_none, content_hash = excluded.content_hash,
                labelled_at = excluded.labelled_at
            """
        )
    finally:
        con.unregister("label_batch")
    return labels.num_rows
