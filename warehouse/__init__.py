"""The DuckDB warehouse: schema, connections, posts, runs, checkpoints, labels and every SQL statement.

Other packages use only what is exported here and the data classes in `warehouse.records`. Names are
loaded on first use (PEP 562), so `import warehouse.records` — what collectors do — never imports
duckdb.
"""

# No `from __future__ import annotations` here: it would shadow the submodule warehouse.annotations.
from importlib import import_module
from typing import Any

# Exported name -> the submodule that defines it.
_EXPORTS = {
    "open_reader": "connection", "open_writer": "connection", "reading": "connection", "writing": "connection",
    "WarehouseBusyError": "errors", "WarehouseError": "errors",
    "POST_COLUMNS": "exports", "first_run_start": "exports", "ok_finishes": "exports", "problem_runs": "exports",
    "run_counts": "exports", "run_query_keys": "exports", "stance_daily_rows": "exports", "week_posts": "exports",
    "week_states": "exports",
    "LABEL_SCHEMA": "labels", "ModelInfo": "labels", "evaluations": "labels", "get_model": "labels",
    "list_models": "labels",
    "posts_to_label": "labels", "register_model": "labels", "set_model_metrics": "labels",
    "write_labels": "labels",
    "posts_to_arrow": "posts", "upsert_posts": "posts",
    "LABELS": "records", "Checkpoint": "records", "Page": "records", "Post": "records", "UpsertResult": "records",
    "add_to_run": "runs", "close_abandoned_runs": "runs", "commit_page": "runs", "finish_run": "runs",
    "get_checkpoints": "runs", "start_run": "runs",
    "CachedAnswer": "llm_cache", "RunCounts": "llm_cache", "cached_answers": "llm_cache",
    "commit_llm_batch": "llm_cache", "finish_llm_run": "llm_cache", "start_llm_run": "llm_cache",
    "coded_labels": "sampling", "model_labels": "sampling", "posts_by_key": "sampling",
    "sampling_frame": "sampling",
    "LATEST_VERSION": "schema", "schema_version": "schema",
    "community_summary": "summaries", "known_posts": "summaries", "out_of_range": "summaries",
    "post_count": "summaries", "status_rows": "summaries",
    "top_threads": "summaries", "version_changes": "summaries",
    "PERIOD_VIEWS": "trends", "daily_volume": "trends", "last_ok_run_start": "trends", "model_metrics": "trends",
    "period_rows": "trends", "period_totals": "trends", "top_posts": "trends",
    "configure": "views", "get_setting": "views", "get_targets": "views", "set_plausible_since": "views",
    "set_setting": "views",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'warehouse' has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
