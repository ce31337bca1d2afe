"""One post dated 0001-01-01 or 9999-12-31 must not break the outputs: posts outside the plausible
range (the earliest source's launch to now plus a day) are kept, flagged (`posts_out_of_range`),
counted in status and the report, and left out of the series, the volume plot and the weekly exports."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime

import duckdb
import pytest
from daemon_support import cli, post, seed, warehouse_path, write_config

IN_RANGE = datetime(2024, 11, 26, 14, tzinfo=UTC)
ODD = {"t3_ancient": datetime(1, 1, 1, tzinfo=UTC), "t3_doomsday": datetime(9999, 12, 31, 23, tzinfo=UTC),
       "t3_future": datetime(2099, 1, 1, tzinfo=UTC), "t3_prehistory": datetime(1970, 1, 1, tzinfo=UTC)}


@pytest.fixture
def odd_dates(tmp_path):
    config = write_config(tmp_path)
    posts = [post("t3_ok", IN_RANGE, "an ordinary post"), post("t3_ok2", datetime(2024, 12, 3, tzinfo=UTC))]
    posts += [post(post_id, created, f"oddly dated {post_id}") for post_id, created in ODD.items()]
    seed(warehouse_path(tmp_path), posts, {p.post_id: ("against", "favor") for p in posts})
    return config


def timed(config, *args, env=None):
    started = time.monotonic()
    result = cli(config, *args, env=env)
    assert result.returncode == 0, (args, result.stderr)
    assert "Traceback" not in result.stderr
    return result, time.monotonic() - started


def test_views_trends_report_export_and_status_finish_quickly_and_leave_odd_dates_out(tmp_path, odd_dates):
    db = warehouse_path(tmp_path)
    # Views: the odd posts are in posts and posts_labeled, flagged, and in no series.
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM posts").fetchone() == (6,)
        assert con.execute("SELECT count(*) FROM posts_labeled").fetchone() == (6,)
        flagged = dict(con.execute("SELECT post_id, reason FROM posts_out_of_range").fetchall())
        assert set(flagged) == set(ODD) and flagged["t3_future"] == "in the future"
        assert flagged["t3_ancient"].startswith("before ")
        daily = con.execute("SELECT min(period), max(period), count(*) FROM stance_daily").fetchone()
        weekly = con.execute("SELECT min(period), max(period), sum(posts) FROM stance_weekly "
                             "WHERE platform = 'all' AND target = 'openai'").fetchone()
    finally:
        con.close()
    assert str(daily[0]) == "2024-11-26" and str(daily[1]) == "2024-12-03"
    assert daily[2] == 8 * 2 * 2  # 8 days x 2 targets x (reddit, all)
    assert weekly[2] == 2

    trends, seconds = timed(odd_dates, "trends", "--period", "day")
    assert seconds < 60 and not re.search(r"\b(0001|9999|2099|1970)-\d\d-\d\d", trends.stdout)
    assert "2024-11-26" in trends.stdout

    _, seconds = timed(odd_dates, "report", "--out", str(tmp_path / "report"))
    assert seconds < 90
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "4 posts dated outside the plausible range" in page and "2024-11-26 to 2024-12-03" in page

    _, seconds = timed(odd_dates, "export")  # the daemon's default export
    assert seconds < 60
    root = tmp_path / "data" / "exports"
    assert sorted(p.name for p in root.iterdir()) == ["2024-W48", "2024-W49"]
    exported = sum(json.loads((w / "manifest.json").read_text())["files"]["posts.csv"]["rows"]
                   for w in root.iterdir())
    assert exported == 2

    status, _ = timed(odd_dates, "status", "--json")
    info = json.loads(status.stdout)
    assert info["out_of_range"] == [{"platform": "reddit", "posts": 4, "earliest": "0001-01-01 00:00:00+00:00",
                                     "latest": "9999-12-31 23:00:00+00:00"}]
    human, _ = timed(odd_dates, "status")
    assert "4 posts dated outside the plausible range" in human.stdout


def test_the_range_starts_at_the_earliest_source_launch_written_by_the_edge(reddit_corpus, reddit_server,
                                                                           make_config):
    """A collection writes the registry's earliest `launched` date as the lower bound, so a post dated
    2001 (after the warehouse's own 1990 default, before any registered platform) is out of range."""
    from conftest import REDDIT_ENV, cli_env, reddit_section, run_cli

    import warehouse
    from collectors import registry

    reddit_corpus.submission(10)
    server = reddit_server(reddit_corpus.items, now=reddit_corpus.at(100))
    path, config = make_config(reddit=reddit_section(server), bluesky={"enabled": False})
    earliest = min(s.launched for s in registry.sources() if s.launched is not None)
    assert earliest > datetime(2001, 9, 1).date()
    result = run_cli(path, "collect", "--platform", "reddit", env=cli_env(REDDIT_ENV))
    assert result.returncode == 0, result.stderr
    with warehouse.writing(config.warehouse_path) as con:
        warehouse.upsert_posts(con, [post("t3_early", datetime(2001, 9, 1, tzinfo=UTC))])
        assert con.execute("SELECT value FROM settings WHERE key = 'plausible_since'").fetchone() == (
            earliest.isoformat(),)
        assert con.execute("SELECT post_id FROM posts_out_of_range").fetchall() == [("t3_early",)]
        assert con.execute("SELECT count(*) FROM posts").fetchone() == (2,)
