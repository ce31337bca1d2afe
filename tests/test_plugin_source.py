"""Done-when of the registry: a third, made-up platform (tests/forum) registered from the outside
runs through collect, status, classify, export and report — the functions the CLI calls — with no
other module knowing it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import query
from forum.replay import TOKEN, ForumReplay, Thread
from forum.source import SOURCE
from rich.console import Console
from test_stance import NLI_LABELS, make_tiny_model

from analysis.trends import Window
from collectors import registry
from leakwatch import status
from leakwatch.classify import run_classification
from leakwatch.collect import make_collector, run_collection
from leakwatch.errors import ConfigError
from leakwatch.export import export_weeks
from leakwatch.report import write_report_for

T0 = datetime(2024, 11, 26, 10, 0, tzinfo=UTC)


@pytest.fixture
def forum():
    registry.register(SOURCE)
    yield SOURCE
    registry.unregister(SOURCE.name)


def _threads(first: int, count: int) -> list[Thread]:
    return [Thread(f"t{n}", T0 + timedelta(hours=n), f"user{n % 3}", f"Sora leak thread {n}", likes=n)
            for n in range(first, first + count)]


def test_a_registered_source_runs_through_every_step(forum, make_config, monkeypatch, tmp_path):
    threads = _threads(0, 5)
    with ForumReplay(threads) as server:
        path, config = make_config(reddit={"enabled": False}, bluesky={"enabled": False},
                                   forum={"base_url": server.url, "queries": ["sora leak"]})
        assert config.enabled_sources() == ["forum"]
        with pytest.raises(ConfigError, match="FORUM_TOKEN"):
            make_collector(config, "forum")
        monkeypatch.setenv("FORUM_TOKEN", TOKEN)

        first = run_collection(config, make_collector(config, "forum"))
        assert (first.status, first.pages, first.inserted) == ("ok", 3, 5)
        threads += _threads(5, 1)  # one new thread: the next pass reads down to the checkpoint only
        second = run_collection(config, make_collector(config, "forum"))
        assert (second.status, second.pages, second.inserted) == ("ok", 1, 1)

    db = config.warehouse_path
    assert query(db, "SELECT platform, kind, count(*) FROM posts GROUP BY ALL") == [("forum", "thread", 6)]
    info = status.gather(db)
    assert [(r["platform"], r["posts"]) for r in info["posts"]] == [("forum", 6)]
    assert [(c["query_key"], c["mid_backfill"]) for c in info["checkpoints"]] == [("forum:sora leak", False)]

    model = make_tiny_model(tmp_path / "tiny-nli", NLI_LABELS)
    labelled = run_classification(config, model=f"nli:{model}")
    assert labelled.labelled == 6
    assert query(db, "SELECT count(DISTINCT post_id) FROM stance_labels WHERE platform = 'forum'") == [(6,)]

    done = export_weeks(config, now=datetime(2024, 12, 9, tzinfo=UTC))
    assert [str(w.week) for w in done] == ["2024-W48"] and done[0].posts == 6
    manifest = json.loads((done[0].folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["query_set"]["configured"]["forum"] == {"queries": ["sora leak"]}
    posts_csv = (done[0].folder / "posts.csv").read_text(encoding="utf-8").splitlines()
    assert len(posts_csv) == 7 and all(line.startswith("forum,forum:t") for line in posts_csv[1:])

    page = write_report_for(config, tmp_path / "report", Window(), None, False, Console(stderr=True))
    text = page.read_text(encoding="utf-8")
    assert "Engagement = Reddit score + comments; Bluesky likes + reposts + quotes + replies; Forum likes." in text
    assert "forum" in text


def test_an_old_retry_key_names_its_new_name(make_config):
    with pytest.raises(ConfigError, match=r"bluesky: max_retries was renamed to retries"):
        make_config(bluesky={"max_retries": 2})
