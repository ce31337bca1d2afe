"""What distillation reads: the sampling frame (every post with its ISO week and platform), the texts
of chosen posts, and human codings from `annotations`."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

_TEXT = """CASE WHEN coalesce(title, '') = '' THEN text
                WHEN text = '' THEN title ELSE title || chr(10) || chr(10) || text END"""


def sampling_frame(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """(platform, post_id, ISO week) of every post that is not deleted and has text."""
    return con.execute(
        f"""SELECT platform, post_id, strftime(created_at, '%G-W%V') FROM posts
            WHERE NOT deleted AND trim({_TEXT}) <> '' ORDER BY platform, post_id"""
    ).fetchall()


def posts_by_key(con: duckdb.DuckDBPyConnection, keys: Sequence[tuple[str, str]]) -> pa.Table:
    """platform, post_id, content_hash, text of these posts (title and body together), in key order."""
    wanted = pa.table({"platform": [k[0] for k in keys], "post_id": [k[1] for k in keys],
                       "position": list(range(len(keys)))})
    con.register("wanted_posts", wanted)
    try:
        return con.sql(
            f"""SELECT p.platform, p.post_id, p.content_hash, {_TEXT} AS text
                FROM posts p JOIN wanted_posts w USING (platform, post_id) ORDER BY w.position"""
        ).to_arrow_table()
    finally:
        con.unregister("wanted_posts")


def coded_labels(con: duckdb.DuckDBPyConnection, targets: Sequence[str]) -> dict[tuple[str, str], dict[str, str]]:
    """Human codings of posts coded for every target: the most frequent label across annotators."""
    rows = con.execute(
        """SELECT platform, post_id, target, mode(label ORDER BY annotator) FROM annotations
           WHERE target IN (SELECT unnest(?)) GROUP BY ALL""", [list(targets)]
    ).fetchall()
    coded: dict[tuple[str, str], dict[str, str]] = {}
    for platform, post_id, target, label in rows:
        coded.setdefault((platform, post_id), {})[target] = label
    return {k: v for k, v in coded.items() if len(v) == len(targets)}


def model_labels(con: duckdb.DuckDBPyConnection, model_id: str,
                 targets: Sequence[str]) -> dict[tuple[str, str], dict[str, str]]:
    """One model's current labels, for posts labelled for every target (text unchanged since)."""
    rows = con.execute(
        """SELECT l.platform, l.post_id, l.target, l.label FROM labels l
           JOIN posts p ON p.platform = l.platform AND p.post_id = l.post_id AND p.content_hash = l.content_hash
           WHERE l.model_id = ? AND l.target IN (SELECT unnest(?))""", [model_id, list(targets)]
    ).fetchall()
    out: dict[tuple[str, str], dict[str, str]] = {}
    for platform, post_id, target, label in rows:
        out.setdefault((platform, post_id), {})[target] = label
    return {k: v for k, v in out.items() if len(v) == len(targets)}
