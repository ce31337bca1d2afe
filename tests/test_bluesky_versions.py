"""Edits and deletions upstream reach post_versions when recent hours are revisited; the demo collects."""

from __future__ import annotations

import re
from datetime import timedelta

from bluesky_support import SEARCH, T0, THREAD, collect, item, query, serving, stored_ids, uris

from collectors.replay.bluesky_api import post_uri
from collectors.replay.corpus import Edit, load_sample_corpus, matches


def test_revisit_records_edits_and_deletions(tmp_path):
    later = T0 + timedelta(hours=3)
    kept = [item(i, T0 + timedelta(minutes=i), f"sora leak note {i}") for i in range(6)]
    edited = item(10, T0 + timedelta(minutes=10), "sora leak: first take",
                  edits=(Edit(later, "sora leak: second take, after reading the letter"),))
    drifted = item(11, T0 + timedelta(minutes=11), "sora leak aside",
                   edits=(Edit(later, "never mind, this was about something else"),))
    deleted = item(12, T0 + timedelta(minutes=12), "sora leak hot take", deleted_at=later)
    corpus = [*kept, edited, drifted, deleted]
    with serving(tmp_path, corpus, now=T0 + timedelta(hours=1), revisit_hours=24,
                 revisit_every_hours=0) as (server, config):
        assert collect(config).returncode == 0
        assert stored_ids(tmp_path) == uris(corpus)

        server.now = later + timedelta(minutes=1)
        server.requests.clear()
        result = collect(config)
        assert result.returncode == 0, result.stderr
        # One search, and one thread lookup for each post the search no longer returns.
        assert len(server.requests_to(SEARCH)) == 1
        assert {r.arg("uri") for r in server.requests_to(THREAD)} == uris([drifted, deleted])

    versions = query(tmp_path, "SELECT post_id, change, text FROM post_versions WHERE change <> 'created'")
    assert sorted(versions) == sorted([
        (post_uri(edited), "edited", "sora leak: second take, after reading the letter"),
        (post_uri(drifted), "edited", "never mind, this was about something else"),
        (post_uri(deleted), "deleted", None)])
    rows = dict((r[0], r[1:]) for r in query(tmp_path, "SELECT post_id, deleted, text, author_handle FROM posts"))
    assert rows[post_uri(deleted)] == (True, "sora leak hot take", deleted.author)  # the last text seen is kept
    assert rows[post_uri(edited)][:2] == (False, "sora leak: second take, after reading the letter")

    # Deletions are recorded once: a third pass finds nothing more to say.
    with serving(tmp_path, corpus, now=later + timedelta(minutes=2), revisit_hours=24,
                 revisit_every_hours=0) as (server, config):
        assert collect(config).returncode == 0
    assert query(tmp_path, "SELECT count(*) FROM post_versions WHERE change = 'deleted'") == [(1,)]


def test_demo_collects_the_sample_corpus_bluesky_posts(demo_run):
    assert re.search(r"bluesky: run \d+ ok", demo_run.result.stdout)
    sample = [i for i in load_sample_corpus() if i.platform == "bluesky"]
    end = max(i.created_at for i in sample) + timedelta(days=1)
    queries = ("sora leak", "sora artists", '"PR puppets"', "sora openai")
    matched = {i.id for i in sample if i.created_at <= end and any(matches(q, i, end) for q in queries)}
    import duckdb

    con = duckdb.connect(str(demo_run.db), read_only=True)
    rows = con.execute("SELECT post_id, len(matched_queries) > 0 FROM posts WHERE platform = 'bluesky'").fetchall()
    con.close()
    searched = {uri.rsplit("/", 1)[1] for uri, was_matched in rows if was_matched}
    assert searched == matched and len(matched) > 20
    assert len(rows) > len(searched)  # the reply threads came along
