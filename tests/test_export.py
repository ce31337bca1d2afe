"""`leakwatch export`: weekly folders, manifest, determinism, formula neutralization, atomicity."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from daemon_support import cli, post, seed, warehouse_path, write_config

W48 = datetime(2024, 11, 26, 14, 0, tzinfo=UTC)  # Tuesday of ISO week 2024-W48
W49 = datetime(2024, 12, 3, 9, 30, tzinfo=UTC)


def _read_csv(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def seeded(tmp_path):
    config = write_config(tmp_path)
    now = datetime.now(UTC)
    posts = [
        post("t3_b", W48 + timedelta(hours=2), "Sora leak: artists were unpaid", author_handle="alice",
             author_id="alice", title="PR puppets", score=12, community="OpenAI"),
        post("t3_a", W48, 'A "quoted" line,\nwith a comma and a newline', author_handle="bob", author_id="bob",
             score=-3),
        post("at://did:plc:x/app.bsky.feed.post/1", W48 + timedelta(days=1), "=HYPERLINK(\"http://evil\")",
             platform="bluesky", author_handle="@evil.bsky.social", author_id="did:plc:x"),
        post("t1_c", W48 + timedelta(days=2), "+1 for the artists", author_handle="-dash", author_id="-dash",
             title="@mention title", kind="comment", thread_id="t3_a", parent_id="t3_a"),
        post("t3_d", W49, "Sora is out now", author_handle="alice", author_id="alice"),
        post("t3_now", now - timedelta(minutes=5), "this week, not over yet", author_handle="carol"),
    ]
    seed(warehouse_path(tmp_path), posts, {
        "t3_a": ("against", "favor"), "t3_b": ("against", "favor"),
        "at://did:plc:x/app.bsky.feed.post/1": ("none", "none"), "t3_d": ("favor", "none"),
    })
    return config


def test_default_export_writes_complete_weeks_with_labels_and_matching_manifest(tmp_path, seeded):
    result = cli(seeded, "export", check=True)
    root = tmp_path / "data" / "exports"
    assert sorted(p.name for p in root.iterdir()) == ["2024-W48", "2024-W49"]  # the current week waits
    assert "2024-W48: 4 posts" in result.stdout

    week = root / "2024-W48"
    rows = _read_csv(week / "posts.csv")
    assert [r["post_id"] for r in rows] == ["t3_a", "t3_b", "at://did:plc:x/app.bsky.feed.post/1", "t1_c"]
    by_id = {r["post_id"]: r for r in rows}
    assert by_id["t3_a"]["text"] == 'A "quoted" line,\nwith a comma and a newline'  # RFC 4180 round trip
    assert by_id["t3_a"]["score"] == "-3"  # a number, not neutralized
    assert by_id["t3_a"]["created_at"] == "2024-11-26T14:00:00Z"
    assert by_id["t3_a"]["openai"] == "against" and by_id["t3_a"]["artists"] == "favor"
    assert by_id["t3_a"]["openai_confidence"] == "0.800000"
    assert by_id["t1_c"]["openai"] == "" and by_id["t1_c"]["openai_confidence"] == ""  # not labelled yet
    assert (week / "posts.csv").read_bytes().count(b"\r\n") >= 5  # CRLF records

    manifest = json.loads((week / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["week"] == "2024-W48" and manifest["complete"] is True
    assert manifest["model_id"] == "test-model-1" and manifest["targets"] == ["openai", "artists"]
    for name in ("posts.csv", "stance_daily.csv"):
        assert manifest["files"][name]["sha256"] == _sha(week / name)
    assert manifest["files"]["posts.csv"]["rows"] == 4
    daily = _read_csv(week / "stance_daily.csv")
    assert manifest["files"]["stance_daily.csv"]["rows"] == len(daily) > 0
    # Every day of the week from the first labelled one on; empty days are kept as zero counts.
    assert sorted({r["period"] for r in daily}) == [f"2024-11-{d}" for d in range(26, 31)] + ["2024-12-01"]
    assert {r["posts"] for r in daily if r["period"] == "2024-11-28"} == {"0"}
    all_openai_26 = next(r for r in daily if r["period"] == "2024-11-26" and r["target"] == "openai"
                         and r["platform"] == "all")
    assert all_openai_26["posts"] == "2" and all_openai_26["against"] == "2"
    assert manifest["query_set"]["configured"]["reddit"]["queries"] == ["sora leak"]
    assert not any(p.name.endswith(".tmp") for p in week.iterdir())


def test_spreadsheet_formulas_are_neutralized(tmp_path, seeded):
    cli(seeded, "export", "--week", "2024-W48", check=True)
    rows = {r["post_id"]: r for r in _read_csv(tmp_path / "data" / "exports" / "2024-W48" / "posts.csv")}
    bsky = rows["at://did:plc:x/app.bsky.feed.post/1"]
    assert bsky["text"] == "'=HYPERLINK(\"http://evil\")"
    assert bsky["author_handle"] == "'@evil.bsky.social"
    assert rows["t1_c"]["text"] == "'+1 for the artists"
    assert rows["t1_c"]["author_handle"] == "'-dash" and rows["t1_c"]["title"] == "'@mention title"
    for row in rows.values():
        for column, value in row.items():
            if column != "score":
                assert not value.startswith(("=", "+", "-", "@")), (column, value)


def test_two_exports_are_byte_identical(tmp_path, seeded):
    cli(seeded, "export", "--out", str(tmp_path / "one"), check=True)
    cli(seeded, "export", "--out", str(tmp_path / "two"), check=True)
    for week in ("2024-W48", "2024-W49"):
        for name in ("posts.csv", "stance_daily.csv", "manifest.json"):
            assert (tmp_path / "one" / week / name).read_bytes() == (tmp_path / "two" / week / name).read_bytes()


def test_default_skips_exported_weeks_and_redoes_weeks_whose_labels_changed(tmp_path, seeded):
    cli(seeded, "export", check=True)
    again = cli(seeded, "export", check=True)
    assert "nothing to export" in again.stdout

    con = duckdb.connect(str(warehouse_path(tmp_path)))
    con.execute("INSERT INTO labels VALUES ('reddit', 't1_c', 'openai', 'test-model-1', 'favor', 0.9, 0.05, 0.05,"
                " 'h', TIMESTAMPTZ '2024-12-22 00:00:00+00')")
    con.close()
    redo = cli(seeded, "export", check=True)
    assert "2024-W48" in redo.stdout and "2024-W49" not in redo.stdout
    rows = {r["post_id"]: r for r in _read_csv(tmp_path / "data" / "exports" / "2024-W48" / "posts.csv")}
    assert rows["t1_c"]["openai"] == "favor"


def test_explicit_current_week_is_marked_partial(tmp_path, seeded):
    year, number, _ = datetime.now(UTC).isocalendar()
    week = f"{year}-W{number:02d}"
    result = cli(seeded, "export", "--week", week, check=True)
    assert "partial" in result.stdout
    manifest = json.loads((tmp_path / "data" / "exports" / week / "manifest.json").read_text())
    assert manifest["complete"] is False and manifest["files"]["posts.csv"]["rows"] == 1


def test_bad_week_is_one_clear_line(tmp_path, seeded):
    result = cli(seeded, "export", "--week", "2024-48")
    assert result.returncode == 1
    assert result.stderr.strip() == "leakwatch: error: week '2024-48' is not an ISO week; write it like 2024-W48"
    result = cli(seeded, "export", "--week", "2021-W53")
    assert result.returncode == 1 and "has no ISO week 53" in result.stderr


def test_pseudonymized_authors_use_a_keyed_hash(tmp_path, seeded):
    missing = cli(seeded, "export", "--pseudonymize-authors", env={"LEAKWATCH_PSEUDONYM_KEY": ""})
    assert missing.returncode == 1 and "LEAKWATCH_PSEUDONYM_KEY" in missing.stderr
    assert "Traceback" not in missing.stderr

    def export(key: str, out: str) -> dict[str, dict[str, str]]:
        cli(seeded, "export", "--pseudonymize-authors", "--out", str(tmp_path / out),
            env={"LEAKWATCH_PSEUDONYM_KEY": key}, check=True)
        rows = _read_csv(tmp_path / out / "2024-W48" / "posts.csv")
        rows += _read_csv(tmp_path / out / "2024-W49" / "posts.csv")
        return rows

    rows = export("a long secret key", "a")
    text = "".join((tmp_path / "a" / "2024-W48" / name).read_text() for name in ("posts.csv", "manifest.json"))
    for handle in ("alice", "bob", "evil.bsky.social", "did:plc:x\"", "a long secret key"):
        assert handle not in text
    alice = [r for r in rows if r["post_id"] in ("t3_b", "t3_d")]
    assert alice[0]["author_handle"] == alice[1]["author_handle"] and alice[0]["author_handle"].startswith("anon-")
    other_key = export("another key", "b")
    assert other_key[0]["author_handle"] != rows[0]["author_handle"]


def test_manifest_lists_failed_runs_caps_and_schedule_gaps(tmp_path, seeded):
    con = duckdb.connect(str(warehouse_path(tmp_path)))
    runs = [  # platform, started, status, caps_hit, error
        ("reddit", datetime(2024, 11, 25, 1, tzinfo=UTC), "ok", 0, None),
        ("reddit", datetime(2024, 11, 25, 2, tzinfo=UTC), "failed", 0, "ServerError: 503 after 5 retries"),
        ("reddit", datetime(2024, 11, 27, 0, tzinfo=UTC), "ok", 2, None),  # 2 days later: a gap
        ("bluesky", datetime(2024, 11, 25, 1, tzinfo=UTC), "interrupted", 0, "stopped by the user"),
    ]
    for platform, started, status, caps, error in runs:
        con.execute("INSERT INTO runs (platform, queries, started_at, finished_at, status, caps_hit, error) "
                    "VALUES (?, ['OpenAI:sora leak'], ?, ?, ?, ?, ?)",
                    [platform, started, started + timedelta(minutes=5), status, caps, error])
    con.close()
    cli(seeded, "export", "--week", "2024-W48", check=True)
    manifest = json.loads((tmp_path / "data" / "exports" / "2024-W48" / "manifest.json").read_text())
    collection = manifest["collection"]
    assert [(r["platform"], r["status"]) for r in collection["failed_runs"]] == [
        ("reddit", "failed"), ("bluesky", "interrupted")]
    assert collection["failed_runs"][0]["error"] == "ServerError: 503 after 5 retries"
    assert [(c["platform"], c["caps_hit"]) for c in collection["caps_hit"]] == [("reddit", 2)]
    assert collection["runs"]["reddit"] == {"ok": 2, "failed": 1}
    reddit_gaps = [g for g in collection["gaps"] if g["platform"] == "reddit"]
    assert [(g["from"], g["to"]) for g in reddit_gaps] == [
        ("2024-11-25T01:05:00Z", "2024-11-27T00:05:00Z"), ("2024-11-27T00:05:00Z", "2024-12-02T00:00:00Z")]
    assert manifest["query_set"]["run_query_keys"] == ["bluesky:OpenAI:sora leak", "reddit:OpenAI:sora leak"]


# `leakwatch export` in a subprocess whose CSV sink pauses once the header and the first row are on
# disk, so the test can kill it mid-file. The pause is patched in here: production code has no hook.
_PAUSING_EXPORT = """
import sys, time
from analysis.export import csv_file
write = csv_file.HashingSink.write

def pausing_write(self, text):
    written = write(self, text)
    self.lines = getattr(self, "lines", 0) + 1
    if self.lines == 2:
        self.handle.flush()
        time.sleep(60)
    return written

csv_file.HashingSink.write = pausing_write
from leakwatch.cli import main
sys.argv[0] = "leakwatch"
main()
"""


def test_killed_export_leaves_no_partial_file(tmp_path, seeded):
    week = tmp_path / "data" / "exports" / "2024-W48"
    process = subprocess.Popen([sys.executable, "-c", _PAUSING_EXPORT, "--config", str(seeded), "export",
                                "--week", "2024-W48"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        root = week.parent  # the week is written in a temporary folder beside it, then swapped in
        while not list(root.glob(".2024-W48.*.tmp/.posts.csv.*.tmp")):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the export never started writing"
            time.sleep(0.05)
        temp = next(root.glob(".2024-W48.*.tmp/.posts.csv.*.tmp"))
        assert temp.stat().st_size > 0  # half written, under its temporary name
    finally:
        process.kill()
        process.communicate()
    assert not (week / "posts.csv").exists() and not (week / "manifest.json").exists()

    cli(seeded, "export", check=True)  # the next export completes the week and clears the leftover
    assert sorted(p.name for p in week.iterdir()) == ["manifest.json", "posts.csv", "stance_daily.csv"]
    assert not [p for p in root.iterdir() if p.name.startswith(".")]
    manifest = json.loads((week / "manifest.json").read_text())
    assert manifest["files"]["posts.csv"]["sha256"] == _sha(week / "posts.csv")
    assert len(_read_csv(week / "posts.csv")) == 4
    assert io.StringIO((week / "posts.csv").read_text(encoding="utf-8")).readline().startswith("platform,")


def check_demo_exports(demo_dir) -> None:
    """`leakwatch demo` ends with the weekly exports of its data: every post in exactly one week.

    Called from the foundation's demo test, so the suite runs the demo once for both."""
    assert (demo_dir / "leakwatch-data" / "exports").is_dir()
    exports = demo_dir / "leakwatch-data" / "exports"
    con = duckdb.connect(str(demo_dir / "leakwatch-data" / "leakwatch.duckdb"), read_only=True)
    weeks = [w for (w,) in con.execute("SELECT DISTINCT strftime(created_at, '%G-W%V') FROM posts ORDER BY 1")
             .fetchall()]
    total = con.execute("SELECT count(*) FROM posts").fetchone()[0]
    labelled = con.execute("SELECT count(DISTINCT post_id) FROM stance_labels").fetchone()[0]
    con.close()
    assert total > 0 and sorted(p.name for p in exports.iterdir()) == weeks
    exported = with_labels = 0
    for week in weeks:
        manifest = json.loads((exports / week / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["files"]["posts.csv"]["sha256"] == _sha(exports / week / "posts.csv")
        exported += manifest["files"]["posts.csv"]["rows"]
        with_labels += sum(1 for r in _read_csv(exports / week / "posts.csv") if r["openai"])
    assert exported == total and with_labels == labelled
