"""Human coding: samples of posts, the coders' annotations, and the gold labels drawn from them.

An annotation is never updated or deleted: coding a post again appends a row, and the latest row per
(coder, post, target) is that coder's label. Storing commits before returning, so a caller may tell
the coder "saved" only once this module has returned.

Gold labels (what a post "really" is, for validation and correction) come from the latest labels of
every coder, `unsure` left out: a label from the reserved coder `adjudicator` wins; otherwise the
label a strict majority of coders gave (two coders: they must agree); a post with no majority has no
gold label and waits for adjudication.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pyarrow as pa

from .errors import WarehouseError

SAMPLE_KINDS = ("random", "active")
CODED_LABELS = ("favor", "against", "none", "unsure")
ADJUDICATOR = "adjudicator"


class AnnotationError(WarehouseError):
    """An annotation or sample request the warehouse cannot store as asked."""


@dataclass(frozen=True)
class SampleInfo:
    sample_id: int
    kind: str
    seed: int
    model_id: str | None
    query: dict[str, Any]
    size: int
    double_fraction: float
    created_at: datetime


@dataclass(frozen=True)
class SamplePost:
    """A post as a coder sees it, with what is needed to judge it."""

    sample_id: int
    position: int
    platform: str
    post_id: str
    coders_needed: int
    kind: str
    community: str | None
    author_handle: str | None
    created_at: datetime
    title: str | None
    text: str
    url: str | None
    parent_text: str | None  # the post or comment this one answers
    thread_title: str | None  # the submission title of a Reddit comment's thread
    deleted: bool


@dataclass(frozen=True)
class Annotation:
    platform: str
    post_id: str
    target: str
    label: str
    annotator: str
    sample_id: int | None = None
    guideline_version: str | None = None
    note: str | None = None


_SAMPLE_POST_SCHEMA = pa.schema([
    ("sample_id", pa.int64()), ("position", pa.int64()), ("platform", pa.string()), ("post_id", pa.string()),
    ("coders_needed", pa.int32()), ("stratum", pa.string()),
])

_ANNOTATION_SCHEMA = pa.schema([
    ("sample_id", pa.int64()), ("platform", pa.string()), ("post_id", pa.string()), ("target", pa.string()),
    ("label", pa.string()), ("annotator", pa.string()), ("guideline_version", pa.string()),
    ("annotated_at", pa.timestamp("us", tz="UTC")), ("note", pa.string()),
])


# ------------------------------------------------------------------------------- drawing samples

def _window_sql(since: datetime | None, until: datetime | None, column: str = "p.created_at") -> tuple[str, list]:
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{column} >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{column} < ?")
        params.append(until)
    return (" AND ".join(clauses) or "true"), params


def random_candidates(con: duckdb.DuckDBPyConnection, since: datetime | None, until: datetime | None
                      ) -> list[tuple[str, str, str]]:
    """(platform, post_id, stratum) of every post that may enter a random sample, in a stable order.

    Deleted posts are left out (nothing to judge), and so are posts already in a sample: those of
    active samples are trained on, so they cannot validate, and a post is coded in one sample only.
    The stratum is the post's ISO week (UTC) and platform."""
    where, params = _window_sql(since, until)
    return [tuple(r) for r in con.execute(
        f"""
        SELECT p.platform, p.post_id,
               strftime(timezone('UTC', p.created_at), '%G-W%V') || ' ' || p.platform AS stratum
        FROM posts p
        WHERE NOT p.deleted AND {where}
          AND NOT EXISTS (SELECT 1 FROM sample_posts sp WHERE sp.platform = p.platform AND sp.post_id = p.post_id)
        ORDER BY p.platform, p.post_id
        """, params).fetchall()]


def active_candidates(con: duckdb.DuckDBPyConnection, model_id: str, targets: list[str],
                      since: datetime | None, until: datetime | None) -> list[dict[str, Any]]:
    """Posts labelled by `model_id` for every target and in no sample yet, with each target's label
    and certainty (its highest probability). Posts already sampled are left out, so a validation
    post never becomes a training post."""
    where, params = _window_sql(since, until)
    rows = con.execute(
        f"""
        SELECT p.platform, p.post_id, l.target, l.label, greatest(l.p_favor, l.p_against, l.p_none)
        FROM posts p JOIN labels l ON l.platform = p.platform AND l.post_id = p.post_id
        WHERE l.model_id = ? AND l.target IN (SELECT unnest(?)) AND NOT p.deleted AND {where}
          AND NOT EXISTS (SELECT 1 FROM sample_posts sp WHERE sp.platform = p.platform AND sp.post_id = p.post_id)
        ORDER BY p.platform, p.post_id, l.target
        """, [model_id, targets, *params]).fetchall()
    posts: dict[tuple[str, str], dict[str, Any]] = {}
    for platform, post_id, target, label, certainty in rows:
        entry = posts.setdefault((platform, post_id), {"platform": platform, "post_id": post_id, "labels": {},
                                                       "certainty": {}})
        entry["labels"][target] = label
        entry["certainty"][target] = float(certainty) if certainty is not None else 0.0
    return [p for p in posts.values() if len(p["labels"]) == len(targets)]


def create_sample(con: duckdb.DuckDBPyConnection, kind: str, seed: int, model_id: str | None,
                  query: dict[str, Any], double_fraction: float,
                  posts: list[tuple[str, str, int, str | None]]) -> int:
    """Store a sample: posts are (platform, post_id, coders_needed, stratum) in coding order."""
    if kind not in SAMPLE_KINDS:
        raise AnnotationError(f"sample kind {kind!r} is not one of {', '.join(SAMPLE_KINDS)}")
    if not posts:
        raise AnnotationError("no posts to sample: the warehouse has no eligible post in that window")
    con.execute("BEGIN TRANSACTION")
    try:
        sample_id = con.execute(
            "INSERT INTO samples (kind, seed, model_id, query, size, double_fraction, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING sample_id",
            [kind, seed, model_id, json.dumps(query, sort_keys=True, default=str), len(posts), double_fraction,
             datetime.now(UTC)]).fetchone()[0]
        table = pa.table({
            "sample_id": [sample_id] * len(posts), "position": list(range(1, len(posts) + 1)),
            "platform": [p[0] for p in posts], "post_id": [p[1] for p in posts],
            "coders_needed": [p[2] for p in posts], "stratum": [p[3] for p in posts],
        }, schema=_SAMPLE_POST_SCHEMA)
        con.register("sample_batch", table)
        try:
            con.execute("INSERT INTO sample_posts BY NAME SELECT * FROM sample_batch")
        finally:
            con.unregister("sample_batch")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return int(sample_id)


_SAMPLE_COLUMNS = "sample_id, kind, seed, model_id, query, size, double_fraction, created_at"


def _sample_from_row(row: tuple) -> SampleInfo:
    sample_id, kind, seed, model_id, query, size, fraction, created_at = row
    return SampleInfo(int(sample_id), kind, int(seed), model_id, json.loads(query) if query else {}, int(size),
                      float(fraction), created_at)


def list_samples(con: duckdb.DuckDBPyConnection) -> list[SampleInfo]:
    rows = con.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples ORDER BY sample_id").fetchall()
    return [_sample_from_row(r) for r in rows]


def get_sample(con: duckdb.DuckDBPyConnection, sample_id: int) -> SampleInfo:
    row = con.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE sample_id = ?", [sample_id]).fetchone()
    if row is None:
        raise AnnotationError(f"there is no sample {sample_id}; `leakwatch annotate sample` draws one")
    return _sample_from_row(row)


# ------------------------------------------------------------------------------- posts to code

_POST_SELECT = """
SELECT sp.sample_id, sp.position, p.platform, p.post_id, sp.coders_needed, p.kind, p.community,
       p.author_handle, p.created_at, p.title, p.text, p.url,
       CASE WHEN parent.post_id IS NULL THEN NULL
            WHEN coalesce(parent.title, '') = '' THEN parent.text
            ELSE parent.title || chr(10) || chr(10) || parent.text END AS parent_text,
       CASE WHEN root.post_id IS NOT NULL AND root.post_id <> coalesce(parent.post_id, '') THEN root.title END
           AS thread_title,
       p.deleted
FROM sample_posts sp
JOIN posts p ON p.platform = sp.platform AND p.post_id = sp.post_id
LEFT JOIN posts parent ON parent.platform = p.platform AND parent.post_id = p.parent_id
LEFT JOIN posts root ON root.platform = p.platform AND root.post_id = p.thread_id
"""


def _post_from_row(row: tuple) -> SamplePost:
    values = list(row)
    values[0], values[1], values[4] = int(values[0]), int(values[1]), int(values[4])
    return SamplePost(*values)


def sample_posts(con: duckdb.DuckDBPyConnection, sample_id: int) -> list[SamplePost]:
    """A sample's posts in coding order, each with its parent text and thread title."""
    get_sample(con, sample_id)
    rows = con.execute(_POST_SELECT + " WHERE sp.sample_id = ? ORDER BY sp.position", [sample_id]).fetchall()
    return [_post_from_row(r) for r in rows]


def sample_post(con: duckdb.DuckDBPyConnection, sample_id: int, position: int) -> SamplePost | None:
    row = con.execute(_POST_SELECT + " WHERE sp.sample_id = ? AND sp.position = ?", [sample_id, position]).fetchone()
    return _post_from_row(row) if row else None


def next_position(con: duckdb.DuckDBPyConnection, sample_id: int, annotator: str, after: int = 0) -> int | None:
    """The next post (after `after`, wrapping round) this coder should code: one they have not coded
    whose assignment still needs a coder. None when the coder has nothing left in the sample."""
    rows = con.execute(
        """
        WITH coders AS (
            SELECT platform, post_id, count(DISTINCT annotator) FILTER (annotator <> ?) AS others,
                   bool_or(annotator = ?) AS mine
            FROM annotations WHERE sample_id = ? GROUP BY ALL
        )
        SELECT sp.position FROM sample_posts sp
        LEFT JOIN coders c ON c.platform = sp.platform AND c.post_id = sp.post_id
        WHERE sp.sample_id = ? AND NOT coalesce(c.mine, false) AND coalesce(c.others, 0) < sp.coders_needed
        ORDER BY sp.position > ? DESC, sp.position
        LIMIT 1
        """, [annotator, annotator, sample_id, sample_id, after]).fetchall()
    return int(rows[0][0]) if rows else None


def progress(con: duckdb.DuckDBPyConnection, sample_id: int, annotator: str) -> dict[str, int]:
    """Posts in the sample, posts this coder coded, and coding slots (coders_needed) still open."""
    row = con.execute(
        """
        WITH coders AS (
            SELECT platform, post_id, count(DISTINCT annotator) AS coders, bool_or(annotator = ?) AS mine
            FROM annotations WHERE sample_id = ? GROUP BY ALL
        )
        SELECT count(*), count(*) FILTER (coalesce(c.mine, false)),
               coalesce(sum(greatest(sp.coders_needed - coalesce(c.coders, 0), 0)), 0)
        FROM sample_posts sp LEFT JOIN coders c ON c.platform = sp.platform AND c.post_id = sp.post_id
        WHERE sp.sample_id = ?
        """, [annotator, sample_id, sample_id]).fetchone()
    return {"posts": int(row[0]), "coded_by_you": int(row[1]), "open_slots": int(row[2])}


def last_coded_position(con: duckdb.DuckDBPyConnection, sample_id: int, annotator: str) -> int | None:
    """Where this coder last stored an annotation in the sample (what `undo` reopens)."""
    rows = con.execute(
        """
        SELECT sp.position FROM annotations a
        JOIN sample_posts sp ON sp.sample_id = a.sample_id AND sp.platform = a.platform AND sp.post_id = a.post_id
        WHERE a.sample_id = ? AND a.annotator = ? ORDER BY a.annotation_id DESC LIMIT 1
        """, [sample_id, annotator]).fetchall()
    return int(rows[0][0]) if rows else None


# ------------------------------------------------------------------------------- storing

def known_posts(con: duckdb.DuckDBPyConnection, sample_id: int) -> set[tuple[str, str]]:
    return {(p, i) for p, i in con.execute(
        "SELECT platform, post_id FROM sample_posts WHERE sample_id = ?", [sample_id]).fetchall()}


def store_annotations(con: duckdb.DuckDBPyConnection, annotations: list[Annotation]) -> int:
    """Append annotations in one committed transaction; returns how many were stored.

    Every row is checked first (label, sample membership); nothing is stored if one is wrong."""
    if not annotations:
        return 0
    for a in annotations:
        if a.label not in CODED_LABELS:
            raise AnnotationError(f"label {a.label!r} is not one of {', '.join(CODED_LABELS)}")
        if not a.annotator.strip():
            raise AnnotationError("an annotation needs a coder name")
    for sample_id in {a.sample_id for a in annotations if a.sample_id is not None}:
        members = known_posts(con, sample_id)
        for a in annotations:
            if a.sample_id == sample_id and (a.platform, a.post_id) not in members:
                raise AnnotationError(f"post {a.platform} {a.post_id} is not in sample {sample_id}")
    now = datetime.now(UTC)
    table = pa.table({
        "sample_id": [a.sample_id for a in annotations], "platform": [a.platform for a in annotations],
        "post_id": [a.post_id for a in annotations], "target": [a.target for a in annotations],
        "label": [a.label for a in annotations], "annotator": [a.annotator for a in annotations],
        "guideline_version": [a.guideline_version for a in annotations],
        "annotated_at": [now] * len(annotations), "note": [a.note for a in annotations],
    }, schema=_ANNOTATION_SCHEMA)
    con.complete()
    con.execute("BEGIN TRANSACTION")
    con.register("annotation_batch", table)
    try:
        con.execute("INSERT INTO annotations BY NAME SELECT * FROM annotation_batch ORDER BY post_id, target")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("annotation_batch")
    return len(annotations)


# ------------------------------------------------------------------------------- reading labels

_LATEST = """
SELECT * EXCLUDE (rank) FROM (
    SELECT a.*, row_number() OVER (PARTITION BY a.sample_id, a.platform, a.post_id, a.target, a.annotator
                                   ORDER BY a.annotation_id DESC) AS rank
    FROM annotations a
) WHERE rank = 1
"""


def latest_annotations(con: duckdb.DuckDBPyConnection, sample_id: int | None = None,
                       kind: str | None = None) -> list[dict[str, Any]]:
    """The latest label per sample, coder, post and target; optionally of one sample or sample kind."""
    rows = con.execute(
        f"""
        SELECT l.sample_id, s.kind, l.platform, l.post_id, l.target, l.label, l.annotator, l.guideline_version,
               l.annotated_at, l.annotation_id
        FROM ({_LATEST}) l LEFT JOIN samples s USING (sample_id)
        WHERE (? IS NULL OR l.sample_id = ?) AND (? IS NULL OR s.kind = ?)
        ORDER BY l.sample_id, l.platform, l.post_id, l.target, l.annotator
        """, [sample_id, sample_id, kind, kind]).fetchall()
    keys = ("sample_id", "kind", "platform", "post_id", "target", "label", "annotator", "guideline_version",
            "annotated_at", "annotation_id")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def annotation_history(con: duckdb.DuckDBPyConnection, platform: str, post_id: str) -> list[dict[str, Any]]:
    """Every annotation ever stored for a post, oldest first."""
    rows = con.execute(
        "SELECT annotation_id, sample_id, target, label, annotator, guideline_version, annotated_at "
        "FROM annotations WHERE platform = ? AND post_id = ? ORDER BY annotation_id", [platform, post_id]).fetchall()
    keys = ("annotation_id", "sample_id", "target", "label", "annotator", "guideline_version", "annotated_at")
    return [dict(zip(keys, r, strict=True)) for r in rows]


# The latest label per coder, post and target over every sample of one kind, `unsure` left out.
_GOLD = f"""
WITH latest AS (
    SELECT * EXCLUDE (rank) FROM (
        SELECT a.platform, a.post_id, a.target, a.label, a.annotator,
               row_number() OVER (PARTITION BY a.platform, a.post_id, a.target, a.annotator
                                  ORDER BY a.annotation_id DESC) AS rank
        FROM annotations a JOIN samples s USING (sample_id) WHERE s.kind = $kind
    ) WHERE rank = 1
),
coded AS (SELECT * FROM latest WHERE label <> 'unsure'),
adjudicated AS (
    SELECT platform, post_id, target, label FROM coded WHERE annotator = '{ADJUDICATOR}'
),
coders AS (
    SELECT platform, post_id, target, count(DISTINCT annotator) AS coders
    FROM coded WHERE annotator <> '{ADJUDICATOR}' GROUP BY ALL
),
votes AS (
    SELECT platform, post_id, target, label, count(DISTINCT annotator) AS votes
    FROM coded WHERE annotator <> '{ADJUDICATOR}' GROUP BY ALL
),
majority AS (
    SELECT v.platform, v.post_id, v.target, v.label, c.coders
    FROM votes v JOIN coders c USING (platform, post_id, target)
    WHERE 2 * v.votes > c.coders
)
SELECT coalesce(a.platform, m.platform) AS platform, coalesce(a.post_id, m.post_id) AS post_id,
       coalesce(a.target, m.target) AS target, coalesce(a.label, m.label) AS label,
       coalesce(m.coders, 0) AS coders, a.label IS NOT NULL AS adjudicated
FROM majority m FULL OUTER JOIN adjudicated a USING (platform, post_id, target)
"""


def gold_labels(con: duckdb.DuckDBPyConnection, kind: str = "random") -> list[dict[str, Any]]:
    """One gold label per post and target of the samples of `kind` (see the module docstring), with the
    post's platform, creation time and the current model's label where there is one."""
    rows = con.execute(
        f"""
        WITH gold AS ({_GOLD})
        SELECT g.platform, g.post_id, g.target, g.label, g.coders, g.adjudicated, p.created_at, l.label AS model_label
        FROM gold g JOIN posts p USING (platform, post_id)
        LEFT JOIN labels l ON l.platform = g.platform AND l.post_id = g.post_id AND l.target = g.target
             AND l.model_id = (SELECT value FROM settings WHERE key = 'current_model')
        ORDER BY g.target, g.platform, g.post_id
        """, {"kind": kind}).fetchall()
    keys = ("platform", "post_id", "target", "label", "coders", "adjudicated", "created_at", "model_label")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def human_confusion(con: duckdb.DuckDBPyConnection, model_id: str, labels: tuple[str, ...] = ("favor", "against",
                    "none")) -> dict[str, dict[str, Any]]:
    """Per target: the confusion counts of `model_id` against the gold labels of the random samples
    (rows human, columns model, in `labels` order) and n, the posts with both labels."""
    rows = con.execute(
        f"""
        WITH gold AS ({_GOLD})
        SELECT g.target, g.label, l.label, count(*)
        FROM gold g JOIN labels l ON l.platform = g.platform AND l.post_id = g.post_id AND l.target = g.target
        WHERE l.model_id = $model_id
        GROUP BY ALL
        """, {"kind": "random", "model_id": model_id}).fetchall()
    out: dict[str, dict[str, Any]] = {}
    index = {label: i for i, label in enumerate(labels)}
    for target, human, model, count in rows:
        entry = out.setdefault(target, {"confusion": [[0] * len(labels) for _ in labels], "n": 0,
                                        "labels": list(labels)})
        if human in index and model in index:
            entry["confusion"][index[human]][index[model]] += int(count)
            entry["n"] += int(count)
    return out


def training_annotations(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Gold labels of the `active` samples with the post text: what `train --with-annotations` adds."""
    rows = con.execute(
        f"""
        WITH gold AS ({_GOLD})
        SELECT g.platform, g.post_id, g.target, g.label,
               CASE WHEN coalesce(p.title, '') = '' THEN p.text WHEN p.text = '' THEN p.title
                    ELSE p.title || chr(10) || chr(10) || p.text END AS text,
               (SELECT list(DISTINCT sp.sample_id ORDER BY sp.sample_id) FROM sample_posts sp JOIN samples s
                USING (sample_id) WHERE s.kind = 'active' AND sp.platform = g.platform AND sp.post_id = g.post_id)
                   AS samples
        FROM gold g JOIN posts p USING (platform, post_id)
        ORDER BY g.platform, g.post_id, g.target
        """, {"kind": "active"}).fetchall()
    keys = ("platform", "post_id", "target", "label", "text", "samples")
    return [dict(zip(keys, r, strict=True)) for r in rows]
