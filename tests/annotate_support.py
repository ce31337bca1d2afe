"""A small warehouse for the human-coding tests: posts on both platforms over several weeks, a
current model with labels for every post, and helpers to add posts and read annotations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

import warehouse
from warehouse.records import Post

MODEL = "test-model-1"
T0 = datetime(2024, 11, 25, 12, 0, tzinfo=UTC)  # a Monday


def make_post(i: int, platform: str = "reddit", text: str | None = None, **changes) -> Post:
    if platform == "reddit":
        post_id, kind = f"t3_p{i:03d}", "submission"
    else:
        post_id, kind = f"at://did:plc:coder{i:03d}/app.bsky.feed.post/3k{i:03d}", "post"
    fields = dict(platform=platform, post_id=post_id, kind=kind, created_at=T0 + timedelta(days=i % 21, hours=i),
                  text=text or f"post number {i} about the sora leak and the artists", community="OpenAI"
                  if platform == "reddit" else None, author_id=f"author{i % 7}", author_handle=f"writer{i % 7}",
                  title=f"thread {i}" if platform == "reddit" else None,
                  url=f"https://www.reddit.com/r/OpenAI/comments/p{i:03d}/" if platform == "reddit" else None,
                  matched_queries=("sora leak",), raw={"i": i})
    fields.update(changes)
    return Post(**fields)


def label_rows(posts: list[Post], labels: dict[str, list[str]], certainty: list[float] | None = None) -> pa.Table:
    """Model labels for the posts: labels[target][i] with probability certainty[i] on the chosen label."""
    rows: dict[str, list] = {name: [] for name in warehouse.LABEL_SCHEMA.names}
    for target, values in labels.items():
        for i, (p, label) in enumerate(zip(posts, values, strict=True)):
            top = certainty[i] if certainty else 0.9
            probs = {k: (1 - top) / 2 for k in ("favor", "against", "none")}
            probs[label] = top
            for name, value in (("platform", p.platform), ("post_id", p.post_id), ("target", target),
                                ("model_id", MODEL), ("label", label), ("p_favor", probs["favor"]),
                                ("p_against", probs["against"]), ("p_none", probs["none"]),
                                ("content_hash", "h"), ("labelled_at", T0)):
                rows[name].append(value)
    return pa.table(rows, schema=warehouse.LABEL_SCHEMA)


def build_warehouse(path: Path, posts: list[Post], labels: dict[str, list[str]] | None = None,
                    certainty: list[float] | None = None) -> None:
    with warehouse.writing(path) as con:
        warehouse.upsert_posts(con, posts)
        warehouse.register_model(con, warehouse.ModelInfo(MODEL, "test", None, None, None, T0))
        warehouse.configure(con, ["openai", "artists"], MODEL)
        if labels:
            warehouse.write_labels(con, label_rows(posts, labels, certainty))
        # write_labels leaves the post's content hash unchecked here: labels only need to exist.


def default_posts(count: int = 24) -> list[Post]:
    return [make_post(i, "reddit" if i % 2 == 0 else "bluesky") for i in range(count)]
