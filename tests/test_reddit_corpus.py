"""The enlarged Reddit corpus (sample corpus + real API shapes) through real praw into DuckDB, compared
with the corpus post by post: every valid post stored with the right fields, the rest skipped and counted."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from conftest import query, reddit_section

from collectors.replay.corpus import load_sample_corpus, matches
from collectors.replay.reddit_api import DROP
from collectors.replay.reddit_shapes import install, reddit_shapes
from leakwatch.collect import make_collector, run_collection

QUERIES = ["sora leak", "sora artists"]
MARKERS = ("[removed]", "[deleted]")


def served(server, item, now):
    """The JSON the replay server sends for an item (its own rendering), without the subtree."""
    if item.kind == "submission":
        data = server._submission_data(item, now)
    else:
        data = server._comment_data(item, now, server._depth(item))
    data.pop("replies", None)
    return data


def representable(stamp) -> bool:
    try:
        datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, ValueError, OSError):
        return False
    return True


def expected_row(data: dict, now: datetime) -> dict:
    name, is_submission = data["name"], data["name"].startswith("t3_")
    text = data["selftext"] if is_submission else data["body"]
    author = None if data["author"] == "[deleted]" else data["author"]
    gone = text == "[removed]" or (text == "[deleted]" and author is None)
    created = datetime.fromtimestamp(data["created_utc"], UTC)
    flags = []
    if created.timestamp() > now.timestamp() + 300:
        flags.append("created_at_in_future")
    elif created.year < 2005:
        flags.append("created_at_before_reddit")
    repaired = re.sub("[\ud800-\udfff]", "\ufffd", text)
    title = re.sub("[\ud800-\udfff]", "\ufffd", data["title"]) if is_submission else None
    if repaired != text or (is_submission and title != data["title"]):
        flags.append("text_repaired")
    if "permalink" in data:
        url = "https://www.reddit.com" + data["permalink"]
    else:
        url = f"https://www.reddit.com/r/{data['subreddit']}/comments/{data['link_id'][3:]}/_/{data['id']}/"
    return {
        "kind": "submission" if is_submission else "comment",
        "text": None if gone else repaired,
        "title": title,
        "author_id": author,
        "parent_id": None if is_submission else data["parent_id"],
        "thread_id": None if is_submission else data["link_id"],
        "community": data["subreddit"],
        "created_at": created,
        "url": url,
        "deleted": gone or bool(data.get("removed_by_category")),
        "quality_flags": sorted(flags),
        "post_id": name,
    }


def test_enlarged_corpus_is_stored_post_by_post(reddit_env, reddit_server, make_config, caplog):
    shapes = reddit_shapes()
    corpus = [i for i in load_sample_corpus() if i.platform == "reddit"]
    server = reddit_server(corpus)
    install(server, shapes)
    now = server.now = max(max(i.created_at for i in corpus), max(s.item.created_at for s in shapes))
    _, config = make_config(reddit=reddit_section(server, page_size=100, subreddits=["all", "OpenAI"],
                                                  queries=QUERIES))
    summary = run_collection(config, make_collector(config, "reddit", clock=lambda: server.now))
    assert summary.status == "ok"

    # What Reddit serves: every submission a query finds, with every comment of its thread.
    items = corpus + [s.item for s in shapes]
    found = {i.id for i in items if i.kind == "submission" and i.visible(now)
             and any(matches(q, i, now) for q in QUERIES)}
    sent = [i for i in items if i.visible(now) and (i.id in found or (i.kind == "comment" and i.root_id in found))]
    payloads = {i.id: served(server, i, now) for i in sent}
    readable = {k: v for k, v in payloads.items() if representable(v["created_utc"])}
    unreadable = set(payloads) - set(readable)
    assert len(unreadable) == 4  # NaN, inf and 1e12 on comments, NaN on a submission

    rows = query(config.warehouse_path, """
        SELECT post_id, kind, text, title, author_id, parent_id, thread_id, community, created_at, url, deleted,
               list_sort(quality_flags), raw, matched_queries FROM posts""")
    stored = {r[0]: r for r in rows}
    expected_ids = {v["name"] for v in readable.values()}
    assert set(stored) == expected_ids  # every valid post, nothing else
    columns = ["post_id", "kind", "text", "title", "author_id", "parent_id", "thread_id", "community",
               "created_at", "url", "deleted", "quality_flags"]
    mismatches = []
    for data in readable.values():
        want = expected_row(data, now)
        got = dict(zip(columns, stored[data["name"]][:12], strict=True))
        got["created_at"] = got["created_at"].astimezone(UTC)
        for column in columns:
            if got[column] != want[column]:
                mismatches.append((data["name"], column, str(got[column])[:60], str(want[column])[:60]))
        raw = json.loads(stored[data["name"]][12])
        if set(raw) != set(data):
            mismatches.append((data["name"], "raw keys", sorted(set(raw) ^ set(data)), ""))
    assert mismatches == []

    # The shaped fields praw would turn into objects are in raw exactly as sent.
    by_id = {s.item.id: s for s in shapes}
    for item_id, shaped in by_id.items():
        prefix = "t3_" if shaped.item.kind == "submission" else "t1_"
        if prefix + item_id not in stored:
            continue
        raw = json.loads(stored[prefix + item_id][12])
        for name, value in shaped.fields.items():
            if name.startswith("_"):
                continue
            if value is DROP:
                assert name not in raw, (shaped.shape, name)
            elif not (isinstance(value, str) and re.search("[\ud800-\udfff]", value)):
                assert raw[name] == value, (shaped.shape, name)

    # Marker texts are never stored as text, and those posts are never queued for a stance label.
    assert not [r for r in rows if r[2] in MARKERS]
    import duckdb

    import warehouse
    con = duckdb.connect(str(config.warehouse_path), read_only=True)
    try:
        to_label = set(warehouse.posts_to_label(con, "any-model", ["openai"]).column("post_id").to_pylist())
    finally:
        con.close()
    assert to_label == {r[0] for r in rows if r[2] is not None}

    # Skipped: each unreadable item once, each with its reason in the log.
    assert summary.skipped == len(unreadable) == query(config.warehouse_path, "SELECT skipped FROM runs")[0][0]
    reasons = [r.getMessage() for r in caplog.records if "skipped an item" in r.getMessage()]
    assert len(reasons) == 4 and all("not a representable time" in r for r in reasons)
    # The broken submission's healthy comment is stored.
    bad = next(s.item for s in shapes if s.shape == "submission with created_utc=NaN")
    assert query(config.warehouse_path, "SELECT count(*) FROM posts WHERE thread_id = ?", [f"t3_{bad.id}"])[0][0] == 1
    print(f"corpus: {len(payloads)} posts served, {len(stored)} stored, {summary.skipped} skipped "
          f"({len(unreadable)} unreadable created_utc); {len(items)} corpus items in all")
