"""The DuckDB warehouse: schema, connections, posts, runs, checkpoints and user views.

Other packages use only what is exported here and the data classes in `warehouse.records`.
"""

from .connection import open_reader, open_writer, reading, writing
from .errors import WarehouseBusyError, WarehouseError
from .labels import (
    LABEL_SCHEMA,
    ModelInfo,
    get_model,
    list_models,
    posts_to_label,
    register_model,
    set_model_metrics,
    write_labels,
)
from .posts import posts_to_arrow, upsert_posts
from .records import Checkpoint, Page, Post, UpsertResult
from .runs import (
    add_to_run,
    close_abandoned_runs,
    commit_page,
    finish_run,
    get_checkpoints,
    start_run,
)
from .schema import LATEST_VERSION, schema_version
from .views import configure, get_setting, get_targets

__all__ = [
    "LABEL_SCHEMA",
    "LATEST_VERSION",
    "ModelInfo",
    "Checkpoint",
    "Page",
    "Post",
    "UpsertResult",
    "WarehouseBusyError",
    "WarehouseError",
    "add_to_run",
    "close_abandoned_runs",
    "commit_page",
    "configure",
    "finish_run",
    "get_checkpoints",
    "get_model",
    "list_models",
    "posts_to_label",
    "register_model",
    "set_model_metrics",
    "write_labels",
    "get_setting",
    "get_targets",
    "open_reader",
    "open_writer",
    "posts_to_arrow",
    "reading",
    "schema_version",
    "start_run",
    "upsert_posts",
    "writing",
]
