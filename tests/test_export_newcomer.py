"""Exports a newcomer can use (issue 13.12): post_url, model_id in stance_daily.csv, --excel,
deleted posts' text left out, and relabelling with the same model rewrites nothing."""

from __future__ import annotations

import csv
import hashlib
import json

import duckdb
from daemon_support import cli, warehouse_path
from test_export import seeded  # noqa: F401  (the fixture)

from collectors.bluesky_normalize import post_web_url
from collectors.bluesky_source import POST_WEB_URL_SQL

BSKY = "at://did:plc:x/app.bsky.feed.post/1"


def rows_of(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_post_url_is_the_posts_own_address_and_url_stays(tmp_path, seeded):  # noqa: F811
    cli(seeded, "export", "--week", "2024-W48", check=True)
    rows = {r["post_id"]: r for r in rows_of(tmp_path / "data" / "exports" / "2024-W48" / "posts.csv")}
    assert rows[BSKY]["post_url"] == "https://bsky.app/profile/did:plc:x/post/1"
    assert rows[BSKY]["url"] == ""  # the link the post carries: none here
    for post_id in ("t3_a", "t3_b", "t1_c"):
        assert rows[post_id]["post_url"] == rows[post_id]["url"]  # Reddit's url is the permalink


def test_the_sql_and_python_bluesky_addresses_agree():
    uris = [BSKY, "at://did:plc:abc123/app.bsky.feed.post/3lbx2yq", "at://did:web:example.com/app.bsky.feed.post/z",
            "at://did:plc:abc123/app.bsky.feed.like/3lbx", "t3_abc"]
    con = duckdb.connect()
    con.execute("CREATE TABLE posts (post_id VARCHAR)")
    con.executemany("INSERT INTO posts VALUES (?)", [[u] for u in uris])
    from_sql = dict(con.execute(f"SELECT post_id, {POST_WEB_URL_SQL} FROM posts p").fetchall())
    assert from_sql == {u: post_web_url(u) for u in uris}
    assert from_sql["at://did:plc:abc123/app.bsky.feed.like/3lbx"] is None and from_sql["t3_abc"] is None


def test_stance_daily_carries_adjusted_shares_and_the_model_id(tmp_path, seeded):  # noqa: F811
    from trends_data import metrics

    import warehouse

    with warehouse.writing(warehouse_path(tmp_path)) as con:
        warehouse.set_model_metrics(con, "test-model-1", metrics())
    cli(seeded, "export", "--week", "2024-W48", check=True)
    week = tmp_path / "data" / "exports" / "2024-W48"
    daily = rows_of(week / "stance_daily.csv")
    manifest = json.loads((week / "manifest.json").read_text())
    assert daily and {r["model_id"] for r in daily} == {manifest["model_id"]} == {"test-model-1"}
    assert "adjusted_share_against_low" in daily[0]
    # The seeded test model has evaluation metrics: labelled days carry adjusted shares inside [0, 1].
    labelled = [r for r in daily if r["posts"] != "0"]
    assert labelled and all(0 <= float(r["adjusted_share_against"]) <= 1 for r in labelled)
    assert all(float(r["adjusted_share_against_low"]) <= float(r["adjusted_share_against_high"]) for r in labelled)
    assert all(r["adjusted_share_favor"] == "" for r in daily if r["posts"] == "0")


def test_excel_export_starts_with_a_bom_and_the_manifest_hashes_it(tmp_path, seeded):  # noqa: F811
    cli(seeded, "export", "--week", "2024-W48", "--excel", check=True)
    week = tmp_path / "data" / "exports" / "2024-W48"
    data = (week / "posts.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfplatform,post_id,")
    manifest = json.loads((week / "manifest.json").read_text())
    assert manifest["files"]["posts.csv"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["encoding"].startswith("utf-8 with BOM")
    plain = tmp_path / "plain"
    cli(seeded, "export", "--week", "2024-W48", "--out", str(plain), check=True)
    assert not (plain / "2024-W48" / "posts.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_deleted_posts_lose_their_text_unless_asked(tmp_path, seeded):  # noqa: F811
    con = duckdb.connect(str(warehouse_path(tmp_path)))
    con.execute("UPDATE posts SET deleted = true WHERE post_id = 't3_b'")
    con.close()
    cli(seeded, "export", "--week", "2024-W48", check=True)
    rows = {r["post_id"]: r for r in rows_of(tmp_path / "data" / "exports" / "2024-W48" / "posts.csv")}
    assert rows["t3_b"]["deleted"] == "true" and rows["t3_b"]["text"] == "" and rows["t3_b"]["title"] == ""
    assert rows["t3_a"]["text"].startswith('A "quoted" line')
    cli(seeded, "export", "--week", "2024-W48", "--include-deleted", "--out", str(tmp_path / "all"), check=True)
    rows = {r["post_id"]: r for r in rows_of(tmp_path / "all" / "2024-W48" / "posts.csv")}
    assert rows["t3_b"]["text"] == "Sora leak: artists were unpaid" and rows["t3_b"]["title"] == "PR puppets"


def test_relabelling_with_the_same_model_rewrites_no_week(tmp_path, seeded):  # noqa: F811
    cli(seeded, "export", check=True)
    con = duckdb.connect(str(warehouse_path(tmp_path)))
    con.execute("UPDATE labels SET labelled_at = now()")  # what `classify --relabel` does to unchanged labels
    con.close()
    again = cli(seeded, "export", check=True)
    assert "nothing to export" in again.stdout
    con = duckdb.connect(str(warehouse_path(tmp_path)))
    con.execute("UPDATE labels SET label = 'favor', p_favor = 0.9, p_against = 0.05, p_none = 0.05 "
                "WHERE post_id = 't3_d' AND target = 'artists'")
    con.close()
    changed = cli(seeded, "export", check=True)
    assert "2024-W49" in changed.stdout and "2024-W48" not in changed.stdout


def test_the_demos_weekly_manifests_record_the_runs_that_collected_them(demo_run):
    manifest = json.loads((demo_run.folder / "leakwatch-data" / "exports" / "2024-W48" / "manifest.json").read_text())
    assert manifest["collection"]["runs"].get("reddit") == {"ok": 1}  # the pass "as of 2024-11-27"
    con = duckdb.connect(str(demo_run.db), read_only=True)
    started = [r[0] for r in con.execute("SELECT started_at FROM runs ORDER BY run_id").fetchall()]
    con.close()
    assert started and all(t.year == 2024 for t in started)  # the replay's clock, not today


def test_the_export_summary_counts_in_words_that_agree_with_the_number(tmp_path):
    from analysis.export.calendar import Week
    from analysis.export.weekly import WeekExport

    week = Week.parse("2024-W48")
    one = WeekExport(week, tmp_path, posts=1, daily_rows=1, complete=True)
    assert one.summary() == "2024-W48: 1 post, 1 daily stance row"
    many = WeekExport(week, tmp_path, posts=0, daily_rows=14, complete=False)
    assert many.summary() == "2024-W48: 0 posts, 14 daily stance rows (week not over yet: partial)"
