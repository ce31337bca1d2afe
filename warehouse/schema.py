"""The warehouse schema as ordered migrations.

Each migration is applied once, in order, inside one transaction, and bumps the recorded schema
version. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import duckdb

from .errors import WarehouseError
from .transaction import transaction

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "posts, versions, runs, checkpoints, labels, models, annotations",
        """
        CREATE TABLE posts (
            platform        VARCHAR NOT NULL,
            post_id         VARCHAR NOT NULL,
            kind            VARCHAR NOT NULL,
            thread_id       VARCHAR,
            parent_id       VARCHAR,
            community       VARCHAR,
            author_id       VARCHAR,
            author_handle   VARCHAR,
            title           VARCHAR,
            text            VARCHAR NOT NULL,
            language        VARCHAR,
            url             VARCHAR,
            cid             VARCHAR,
            created_at      TIMESTAMPTZ NOT NULL,
            indexed_at      TIMESTAMPTZ,
            first_seen_at   TIMESTAMPTZ NOT NULL,
            last_seen_at    TIMESTAMPTZ NOT NULL,
            score           BIGINT,
            like_count      BIGINT,
            reply_count     BIGINT,
            repost_count    BIGINT,
            quote_count     BIGINT,
            edited          BOOLEAN NOT NULL DEFAULT false,
            deleted         BOOLEAN NOT NULL DEFAULT false,
            matched_queries VARCHAR[] NOT NULL,
            content_hash    VARCHAR NOT NULL,
            raw             JSON,
            PRIMARY KEY (platform, post_id)
        );
        CREATE TABLE post_versions (
            platform      VARCHAR NOT NULL,
            post_id       VARCHAR NOT NULL,
            observed_at   TIMESTAMPTZ NOT NULL,
            change        VARCHAR NOT NULL,   -- created | edited | deleted
            title         VARCHAR,
            text          VARCHAR,
            content_hash  VARCHAR
        );
        CREATE SEQUENCE run_ids START 1;
        CREATE TABLE runs (
            run_id           BIGINT PRIMARY KEY DEFAULT nextval('run_ids'),
            platform         VARCHAR NOT NULL,
            queries          VARCHAR[] NOT NULL,
            started_at       TIMESTAMPTZ NOT NULL,
            finished_at      TIMESTAMPTZ,
            status           VARCHAR NOT NULL,  -- running | ok | failed | interrupted
            pages            BIGINT NOT NULL DEFAULT 0,
            fetched          BIGINT NOT NULL DEFAULT 0,
            inserted         BIGINT NOT NULL DEFAULT 0,
            updated          BIGINT NOT NULL DEFAULT 0,
            skipped          BIGINT NOT NULL DEFAULT 0,
            rate_limit_waits BIGINT NOT NULL DEFAULT 0,
            caps_hit         BIGINT NOT NULL DEFAULT 0,
            error            VARCHAR
        );
        CREATE TABLE checkpoints (
            platform          VARCHAR NOT NULL,
            query_key         VARCHAR NOT NULL,
            newest_created_at TIMESTAMPTZ,
            newest_id         VARCHAR,
            cursor            VARCHAR,
            run_id            BIGINT,
            updated_at        TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (platform, query_key)
        );
        CREATE TABLE models (
            model_id           VARCHAR PRIMARY KEY,
            backend            VARCHAR NOT NULL,
            base_weights       VARCHAR,
            training_data_hash VARCHAR,
            path               VARCHAR,
            created_at         TIMESTAMPTZ NOT NULL,
            metrics            JSON,
            card               JSON
        );
        CREATE TABLE labels (
            platform      VARCHAR NOT NULL,
            post_id       VARCHAR NOT NULL,
            target        VARCHAR NOT NULL,
            model_id      VARCHAR NOT NULL,
            label         VARCHAR NOT NULL,   -- favor | against | none
            p_favor       DOUBLE,
            p_against     DOUBLE,
            p_none        DOUBLE,
            content_hash  VARCHAR NOT NULL,
            labelled_at   TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (platform, post_id, target, model_id)
        );
        CREATE TABLE annotations (
            platform     VARCHAR NOT NULL,
            post_id      VARCHAR NOT NULL,
            target       VARCHAR NOT NULL,
            label        VARCHAR NOT NULL,
            annotator    VARCHAR NOT NULL,
            annotated_at TIMESTAMPTZ NOT NULL,
            note         VARCHAR,
            PRIMARY KEY (platform, post_id, target, annotator)
        );
        -- Settings the views read: the current model and the stance targets.
        CREATE TABLE settings (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
        """,
    ),
    (
        2,
        "stance views: empty periods kept, intervals for every share, one-vote-per-author views",
        # Views hold no data, so a new definition is a migration that drops the old ones: the
        # connection recreates every view after any migration (warehouse.views.create_views). A
        # migration rather than "recreate on every writer open" so that a file only ever opened by
        # readers (`sql`, `report`) is upgraded too, via open_reader's upgrade path.
        """
        DROP VIEW IF EXISTS stance_daily;
        DROP VIEW IF EXISTS stance_weekly;
        """,
    ),
    (
        3,
        "posts.quality_flags: what was odd about a post as received (repaired text, client clock ahead...)",
        """
        ALTER TABLE posts ADD COLUMN quality_flags VARCHAR[] NOT NULL DEFAULT [];
        """,
    ),
    (
        4,
        "reddit: posts.text may be NULL (a post removed or deleted before it was first seen)",
        # Reddit then sends "[removed]"/"[deleted]" in place of the text: a marker, never the post's
        # words, so it is not stored as text (nor labelled for stance). A post seen before keeps its text.
        """
        ALTER TABLE posts ALTER COLUMN text DROP NOT NULL;
        """,
    ),
    (
        5,
        "human coding: samples, sample_posts, annotations with history (id, sample, guideline version)",
        # The first annotations table was keyed by (post, target, annotator), so coding a post again
        # overwrote the earlier label. Every annotation is now a row of its own; the latest row per
        # coder, post and target is the coder's label. Any old rows are kept, with no sample.
        # Written to be safe to apply twice (IF NOT EXISTS, copy BY NAME): a file whose version rows
        # were lost is upgraded again without losing an annotation.
        """
        CREATE SEQUENCE IF NOT EXISTS sample_ids START 1;
        CREATE TABLE IF NOT EXISTS samples (
            sample_id        BIGINT PRIMARY KEY DEFAULT nextval('sample_ids'),
            kind             VARCHAR NOT NULL,   -- random (validation, never trained on) | active (training)
            seed             BIGINT NOT NULL,
            model_id         VARCHAR,            -- the current model when drawn (active samples rank by it)
            query            JSON NOT NULL,      -- how it was drawn: window, filters, strata, exclusions
            size             BIGINT NOT NULL,    -- posts drawn (may be below the size asked for)
            double_fraction  DOUBLE NOT NULL,    -- share of posts assigned to two coders
            created_at       TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE IF NOT EXISTS sample_posts (
            sample_id      BIGINT NOT NULL,
            position       BIGINT NOT NULL,      -- coding order within the sample
            platform       VARCHAR NOT NULL,
            post_id        VARCHAR NOT NULL,
            coders_needed  INTEGER NOT NULL,     -- the assignment: 1, or 2 for double-coded posts
            stratum        VARCHAR,              -- random: ISO week × platform; active: why it was picked
            PRIMARY KEY (sample_id, platform, post_id)
        );
        CREATE SEQUENCE IF NOT EXISTS annotation_ids START 1;
        CREATE TABLE annotations_v3 (
            annotation_id     BIGINT PRIMARY KEY DEFAULT nextval('annotation_ids'),
            sample_id         BIGINT,
            platform          VARCHAR NOT NULL,
            post_id           VARCHAR NOT NULL,
            target            VARCHAR NOT NULL,
            label             VARCHAR NOT NULL,  -- favor | against | none | unsure
            annotator         VARCHAR NOT NULL,
            guideline_version VARCHAR,
            annotated_at      TIMESTAMPTZ NOT NULL,
            note              VARCHAR
        );
        INSERT INTO annotations_v3 BY NAME SELECT * FROM annotations ORDER BY annotated_at;
        DROP TABLE annotations;
        ALTER TABLE annotations_v3 RENAME TO annotations;
        """,
    ),
    (
        6,
        "plausible date range: period views leave out posts dated before the earliest source launch or "
        "after now plus a day; posts_out_of_range lists them",
        # The views are recreated after the migration; the setting's default is the warehouse's own
        # (no source launched before 1990) until the edge writes the registry's earliest launch.
        """
        INSERT OR IGNORE INTO settings VALUES ('plausible_since', '1990-01-01');
        """,
    ),
    (
        7,
        "LLM stance backend: answer cache and per-run token and cost accounting",
        # One row per (model, prompt, text): a rerun, or another post with the same text, costs nothing.
        # The API key is never stored; runs keep the endpoint's host only. IF NOT EXISTS: a file whose
        # recorded version was rolled back by hand must still upgrade.
        """
        CREATE TABLE IF NOT EXISTS llm_answers (
            model          VARCHAR NOT NULL,
            prompt_hash    VARCHAR NOT NULL,
            text_hash      VARCHAR NOT NULL,
            model_id       VARCHAR NOT NULL,
            status         VARCHAR NOT NULL,   -- ok | failed
            labels         JSON,               -- target -> label (ok)
            reasons        JSON,               -- target -> short reason (ok)
            probabilities  JSON,               -- target -> [p_favor, p_against, p_none]; NULL: unavailable
            error          VARCHAR,            -- why there is no usable answer (failed)
            requests       INTEGER NOT NULL,
            input_tokens   BIGINT NOT NULL,
            output_tokens  BIGINT NOT NULL,
            answered_at    TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (model, prompt_hash, text_hash)
        );
        CREATE SEQUENCE IF NOT EXISTS llm_run_ids START 1;
        CREATE TABLE IF NOT EXISTS llm_runs (
            run_id         BIGINT PRIMARY KEY DEFAULT nextval('llm_run_ids'),
            model_id       VARCHAR NOT NULL,
            purpose        VARCHAR NOT NULL,   -- classify | distill
            endpoint_host  VARCHAR NOT NULL,
            started_at     TIMESTAMPTZ NOT NULL,
            updated_at     TIMESTAMPTZ NOT NULL,
            finished_at    TIMESTAMPTZ,
            status         VARCHAR NOT NULL,   -- running | ok | budget | stopped | interrupted
            posts          BIGINT NOT NULL DEFAULT 0,  -- posts to label in this run
            cached         BIGINT NOT NULL DEFAULT 0,  -- labelled from the cache, no request
            answered       BIGINT NOT NULL DEFAULT 0,  -- labelled from a new answer
            failed         BIGINT NOT NULL DEFAULT 0,  -- no usable answer (reason in llm_answers.error)
            requests       BIGINT NOT NULL DEFAULT 0,
            input_tokens   BIGINT NOT NULL DEFAULT 0,
            output_tokens  BIGINT NOT NULL DEFAULT 0,
            cost           DOUBLE NOT NULL DEFAULT 0,  -- estimated from the configured prices
            note           VARCHAR
        );
        """,
    ),
    (
        8,
        "evaluations: every evaluation of a model kept (data set, its hash, n, metrics, time)",
        # models.metrics holds the latest evaluation, which the prevalence correction uses; this keeps
        # the history, so a later evaluation never erases what an earlier one measured.
        """
        CREATE SEQUENCE IF NOT EXISTS evaluation_ids START 1;
        CREATE TABLE IF NOT EXISTS evaluations (
            evaluation_id  BIGINT PRIMARY KEY DEFAULT nextval('evaluation_ids'),
            model_id       VARCHAR NOT NULL,
            dataset        VARCHAR NOT NULL,   -- what was scored, as `evaluate` describes it
            dataset_sha256 VARCHAR,            -- of the labelled file, where the description names it
            n              JSON NOT NULL,      -- target -> labelled posts scored
            metrics        JSON NOT NULL,
            evaluated_at   TIMESTAMPTZ NOT NULL
        );
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The version recorded in the file; 0 for a file with no leakwatch schema yet."""
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'main' AND table_name = 'schema_version'"
    ).fetchone()[0]
    if not exists:
        return 0
    # fetchall, not fetchone: DuckDB 2 keeps a half-read result open, and a later register() on
    # this connection (the Arrow bulk inserts) then fails with "unfinished result".
    row = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    return int(row[0] or 0)


def check_version(version: int, path: str) -> None:
    if version > LATEST_VERSION:
        raise WarehouseError(
            f"{path} has schema version {version}, newer than this leakwatch understands "
            f"({LATEST_VERSION}); upgrade leakwatch (pip install -U leakwatch) to open it"
        )


def migrate(con: duckdb.DuckDBPyConnection, path: str) -> list[int]:
    """Bring the file up to LATEST_VERSION; return the versions applied."""
    current = schema_version(con)
    check_version(current, path)
    applied = []
    for version, description, sql in MIGRATIONS:
        if version <= current:
            continue
        with transaction(con):
            if version == 1:
                con.execute(
                    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                    "description VARCHAR, applied_at TIMESTAMPTZ NOT NULL)"
                )
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_version VALUES (?, ?, now())", [version, description]
            )
        applied.append(version)
    return applied
