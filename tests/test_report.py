"""The report: valid files, deterministic, and every number equal to independent SQL on the warehouse."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
from trends_data import MODEL, add_post, at, demo_like, metrics, new_warehouse

from analysis import report
from analysis.trends import Window
from leakwatch.report import platform_facts

KEY_DATES = [(date(2024, 11, 26), "Sora leak"), (date(2024, 12, 9), "Sora public release")]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / (1 + Z * Z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def pct_range(k: int, n: int) -> str:
    low, high = wilson(k, n)
    return f"{low * 100:.1f}–{high * 100:.1f}%"


class Tables(HTMLParser):
    """Every <table> of a page as a list of rows of cell texts; also the <img> sources."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def demo_warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "w.duckdb"
    con = new_warehouse(path, metrics())
    demo_like(con)
    # A post labelled by another model must never show up.
    add_post(con, "reddit", "other-model", at("2024-11-27"), {"openai": "favor"}, model="old-model", likes=10**6)
    yield con
    con.close()


def sql_counts(con, bucket: str, since: date, until: date) -> dict[tuple, tuple[int, int, int, int]]:
    """Independent of the views: straight from posts and labels of the current model."""
    result = con.execute(
        f"""
        WITH l AS (
            SELECT {bucket} AS period, l.target, p.platform, l.label
            FROM posts p JOIN labels l USING (platform, post_id)
            WHERE l.model_id = ?
        ), both_platforms AS (SELECT period, target, platform, label FROM l
                              UNION ALL SELECT period, target, 'all', label FROM l)
        SELECT period, target, platform, count(*), count(*) FILTER (label = 'favor'),
               count(*) FILTER (label = 'against'), count(*) FILTER (label = 'none')
        FROM both_platforms WHERE period BETWEEN ? AND ? GROUP BY ALL""",
        [MODEL, since, until],
    ).fetchall()
    return {(r[0], r[1], r[2]): r[3:] for r in result}


DAY = "CAST(p.created_at AT TIME ZONE 'UTC' AS DATE)"
WEEK = f"{DAY} - CAST(isodow({DAY}) - 1 AS INTEGER)"


@pytest.mark.parametrize(("period", "bucket"), [("day", DAY), ("week", WEEK)])
def test_every_number_in_the_report_equals_sql(demo_warehouse, tmp_path, period, bucket):
    con = demo_warehouse
    asked = Window(date(2024, 11, 21), date(2024, 12, 11))
    data = report.gather(con, period=period, window=asked, key_dates=KEY_DATES, bootstrap_samples=200,
                         platforms=platform_facts())
    since, until = data.window.since, data.window.until
    if period == "week":
        assert (since, until) == (date(2024, 11, 18), date(2024, 12, 15))  # whole weeks
    page = report.write_report(data, tmp_path)
    expected = sql_counts(con, bucket, since, until)

    # Per period: counts, shares and Wilson intervals.
    shown = {(r["period"], r["target"], r["platform"]): r for r in data.trends.rows}
    assert {k for k, r in shown.items() if r["posts"]} == set(expected)
    for key, row in shown.items():
        n, favor, against, none = expected.get(key, (0, 0, 0, 0))
        assert (row["posts"], row["favor"], row["against"], row["none"]) == (n, favor, against, none)
        for label, k in (("favor", favor), ("against", against), ("none", none)):
            if n == 0:
                assert row[f"share_{label}"] is None and row[f"share_{label}_low"] is None
            else:
                assert row[f"share_{label}"] == pytest.approx(k / n, abs=1e-12)
                assert (row[f"share_{label}_low"], row[f"share_{label}_high"]) == pytest.approx(wilson(k, n))
    # Periods are contiguous: an empty period is a row, not a hole.
    step = 1 if period == "day" else 7
    periods = sorted({k[0] for k in shown})
    assert all((b - a).days == step for a, b in zip(periods, periods[1:], strict=False))

    # Whole-window totals per platform (the platform comparison).
    totals = {}
    for (_, target, platform), counts in expected.items():
        acc = totals.setdefault((target, platform), [0, 0, 0, 0])
        totals[(target, platform)] = [a + b for a, b in zip(acc, counts, strict=True)]
    assert {(r["target"], r["platform"]): [r["posts"], r["favor"], r["against"], r["none"]]
            for r in data.totals} == totals

    # Volume: every post per UTC day and platform, labelled or not.
    volume = dict(((r[0], r[1]), r[2]) for r in con.execute(
        f"SELECT {DAY}, platform, count(*) FROM posts p WHERE {DAY} BETWEEN ? AND ? GROUP BY ALL",
        [since, until]).fetchall())
    assert {(r["day"], r["platform"]): r["posts"] for r in data.volume if r["posts"]} == volume

    # Most engaged posts: the top 5 per target and label by score + likes + reposts + quotes + replies.
    top = con.execute(
        f"""SELECT l.target, l.label, p.post_id, coalesce(p.like_count, 0) + coalesce(p.score, 0) AS e
            FROM posts p JOIN labels l USING (platform, post_id)
            WHERE l.model_id = ? AND {DAY} BETWEEN ? AND ?
            QUALIFY row_number() OVER (PARTITION BY l.target, l.label ORDER BY e DESC, p.platform, p.post_id) <= 5
        """, [MODEL, since, until]).fetchall()
    assert sorted((p["target"], p["label"], p["post_id"], p["engagement"]) for p in data.top_posts) == sorted(top)

    # The HTML shows exactly those numbers.
    parsed = Tables()
    parsed.feed(page.read_text(encoding="utf-8"))
    cells = [row for table in parsed.tables for row in table]
    for target in ("openai", "artists"):
        for day in periods:
            n, favor, against, none = expected.get((day, target, "all"), (0, 0, 0, 0))
            row_cells = [f"{day:%Y-%m-%d}", f"{n:,}", f"{favor:,}"]
            if n:
                row_cells += [pct(favor / n), pct_range(favor, n), f"{against:,}", pct(against / n),
                              pct_range(against, n), f"{none:,}", pct(none / n), pct_range(none, n)]
            assert any(row[: len(row_cells)] == row_cells for row in cells), (target, day, row_cells)
    for (target, platform), (n, favor, against, none) in totals.items():
        assert [target, platform, f"{n:,}", pct(favor / n), pct_range(favor, n), pct(against / n),
                pct_range(against, n), pct(none / n), pct_range(none, n)] in cells
    for target, label, _, engagement in top:
        assert any(row[0] == f"{engagement:,}" for row in cells), (target, label, engagement)
    assert "other-model" not in page.read_text(encoding="utf-8")


def test_report_files_are_valid_self_contained_and_deterministic(demo_warehouse, tmp_path):
    import matplotlib.image

    data = report.gather(demo_warehouse, period="day", key_dates=KEY_DATES, bootstrap_samples=200,
                         platforms=platform_facts())
    page = report.write_report(data, tmp_path / "a")
    pngs = sorted(p.name for p in page.parent.glob("*.png"))
    assert pngs == ["platforms.png", "stance_artists.png", "stance_openai.png", "volume.png"]
    for name in pngs:
        raw = (page.parent / name).read_bytes()
        assert raw.startswith(PNG_MAGIC)
        height, width, _ = matplotlib.image.imread(page.parent / name).shape
        assert width >= 800 and height >= 300
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    parsed = Tables()
    parsed.feed(text)
    # Every picture is embedded: the page needs no other file.
    assert len(parsed.images) == 4
    embedded = {base64.b64decode(src.split(",", 1)[1]) for src in parsed.images}
    assert embedded == {(page.parent / name).read_bytes() for name in pngs}
    assert not re.search(r'src="(?!data:)', text)
    assert "Adjusted" in text and "Wilson" in text
    # The same warehouse gives byte-identical files.
    again = report.write_report(report.gather(demo_warehouse, period="day", key_dates=KEY_DATES,
                                              bootstrap_samples=200, platforms=platform_facts()), tmp_path / "b")
    for name in [*pngs, "report.html"]:
        assert (tmp_path / "a" / name).read_bytes() == (again.parent / name).read_bytes(), name


BUNDLED = "test split of analysis/data/stance_dataset.csv (sha256 0123456789ab)"


def test_quality_caveats_small_and_incomplete_periods_and_bluesky_links(tmp_path):
    model_metrics = metrics()
    for entry in model_metrics.values():
        entry["data"] = BUNDLED
    model_metrics["openai"]["macro_f1"] = 0.757
    con = new_warehouse(tmp_path / "w.duckdb", model_metrics)
    for i in range(12):
        add_post(con, "reddit", f"r{i}", at("2024-11-19", i), {"openai": "against"}, author=f"u{i}")
    uri = "at://did:plc:abcdefghijklmnopqrstuvwx/app.bsky.feed.post/3lbzq7k2xyz2a"
    add_post(con, "bluesky", uri, at("2024-11-26"), {"openai": "favor"}, likes=99)
    add_post(con, "bluesky", "at://did:plc:q/app.bsky.feed.post/3k", at("2024-12-03"), {"openai": "none"})
    # The last collection started on Wednesday 2024-12-04: that week is still being collected.
    con.execute("INSERT INTO runs (platform, queries, started_at, status) VALUES "
                "('bluesky', ['sora'], TIMESTAMPTZ '2024-12-04 08:00:00+00', 'ok')")
    data = report.gather(con, period="week", key_dates=KEY_DATES, bootstrap_samples=200, min_posts=10,
                         platforms=platform_facts())
    text = report.write_report(data, tmp_path / "out").read_text(encoding="utf-8")
    con.close()
    # Model quality comes first: before the first plot, with the bundled-data caveat.
    top = text[: text.index("<h2>Volume</h2>")]
    assert "macro-F1 (favor, against) artists 0.700 (n = 250), openai 0.757 (n = 300)" in top
    assert f"measured on {BUNDLED}" in top
    assert "measured on the bundled test split, written in the training data&#x27;s voice" in top
    assert "code a sample of your own posts" in top
    # Small and unfinished weeks are marked in the table (and greyed out), not shown as plain numbers.
    parsed = Tables()
    parsed.feed(text)
    rows = {r[0]: r for table in parsed.tables for r in table if r and r[0].startswith("2024-")}
    assert rows["2024-11-18"][1] == "12" and rows["2024-11-18"][-1] == ""
    assert rows["2024-11-25"][-1] == "fewer than 10 posts"
    assert rows["2024-12-02"][-1] == "incomplete week (still being collected); fewer than 10 posts"
    assert text.count('<tr class="muted">') == 2  # only 'openai' has labels here
    # Bluesky posts link to bsky.app; the long id is cut by CSS with the whole id as its title.
    assert ('<a href="https://bsky.app/profile/did:plc:abcdefghijklmnopqrstuvwx/post/3lbzq7k2xyz2a">'
            f'<span class="id" title="{uri}">{uri}</span></a>') in text
    assert "text-overflow: ellipsis" in text


def test_report_without_metrics_says_quality_is_unmeasured(tmp_path):
    con = new_warehouse(tmp_path / "w.duckdb", model_metrics=None)
    add_post(con, "reddit", "r1", at("2024-11-26"), {"openai": "favor"})
    text = report.write_report(report.gather(con, period="week"), tmp_path / "out").read_text(encoding="utf-8")
    con.close()
    top = text[: text.index("<h2>Volume</h2>")]
    assert f"model {MODEL}: quality not measured (run `leakwatch evaluate`)" in top
    assert "Caveat" not in top


def test_report_on_a_warehouse_without_labels(tmp_path):
    con = new_warehouse(tmp_path / "w.duckdb", model=None)
    data = report.gather(con, key_dates=KEY_DATES)
    page = report.write_report(data, tmp_path / "out")
    con.close()
    assert (tmp_path / "out" / "volume.png").read_bytes().startswith(PNG_MAGIC)
    assert "no current model is set" in page.read_text(encoding="utf-8")


# ---------------------------------------------------------------- through the CLI


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "leakwatch", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def config(tmp_path):
    con = new_warehouse(tmp_path / "data" / "leakwatch.duckdb", metrics())
    for i, label in enumerate(["against", "against", "favor", "none"]):
        add_post(con, "reddit", f"r{i}", at("2024-11-26", i), {"openai": label, "artists": "favor"},
                 author="prolific" if i < 3 else "quiet", likes=10 * i)
    add_post(con, "bluesky", "b0", at("2024-12-03"), {"openai": "favor", "artists": "none"}, author="did:x")
    con.close()
    path = tmp_path / "leakwatch.toml"
    path.write_text(
        'data_dir = "data"\n[reddit]\nqueries = ["sora"]\nsubreddits = ["all"]\n[bluesky]\nqueries = ["sora"]\n'
        '[[stance.targets]]\nname = "openai"\ndescription = "OpenAI"\n'
        '[[stance.targets]]\nname = "artists"\ndescription = "artists"\n'
        '[report]\nperiod = "week"\nbootstrap_samples = 200\n'
        'key_dates = [{date = 2024-11-26, label = "leak"}]\n', encoding="utf-8")
    return path


def test_cli_report_writes_files_and_prints_the_path(config, tmp_path):
    out = tmp_path / "my report" / ("a folder with a long name " * 3).strip()  # longer than the terminal
    done = cli(config, "report", "--out", str(out), "--since", "2024-11-20", "--until", "2024-12-31")
    assert done.returncode == 0, done.stderr
    assert f"report: {out / 'report.html'}" in done.stdout.splitlines()  # one line, whole: it can be copied
    assert (out / "stance_openai.png").read_bytes().startswith(PNG_MAGIC)
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "week starting" in text and "2024-11-25" in text and "2024-12-02" in text
    default = cli(config, "report")
    assert default.returncode == 0, default.stderr
    assert (tmp_path / "data" / "report" / "report.html").is_file()


def test_cli_author_votes_change_the_counts(config):
    by_post = json.loads(cli(config, "trends", "--json", "--platform", "all", "--target", "openai").stdout)
    by_author = json.loads(cli(config, "trends", "--json", "--authors", "--platform", "all",
                               "--target", "openai").stdout)
    first_post, first_author = by_post[0], by_author[0]
    assert (first_post["posts"], first_post["against"], first_post["favor"]) == (4, 2, 1)
    # 'prolific' (2 against, 1 favor) casts one 'against' vote; 'quiet' votes none.
    assert (first_author["authors"], first_author["against"], first_author["favor"], first_author["none"]) \
        == (2, 1, 0, 1)
    assert "adjusted_share_favor" in first_post and "adjusted_share_favor" not in first_author
    table = cli(config, "trends", "--platform", "all")
    assert table.returncode == 0 and "stance_weekly" in table.stdout and "2024-12-02" in table.stdout
    # The header line says how good the model is and on what; the small weeks are marked.
    # (wrapped at the terminal's width: compare the words)
    words = " ".join(table.stdout.split())
    assert words.startswith(f"quality: model {MODEL}: macro-F1 (favor, against) artists 0.700 (n = 250), "
                            "openai 0.700 (n = 300), measured on test set")
    assert "2024-12-02*" in table.stdout and "* = fewer than 10 posts (report.min_posts)" in words
    # Machine-readable output stays clean: the header goes to stderr.
    as_json = cli(config, "trends", "--json", "--platform", "all", "--target", "openai")
    assert as_json.stderr.startswith("quality: model test-model") and json.loads(as_json.stdout)
    assert json.loads(as_json.stdout)[0]["below_min_posts"] is True


def test_cli_report_bad_input_is_one_clear_line(config, tmp_path):
    bad_date = cli(config, "report", "--since", "26/11/2024")
    assert bad_date.returncode == 2 and "YYYY-MM-DD" in bad_date.stderr
    backwards = cli(config, "trends", "--since", "2024-12-10", "--until", "2024-12-01")
    assert backwards.returncode == 2 and "after --until" in backwards.stderr
    (tmp_path / "a-file").write_text("x")
    onto_file = cli(config, "report", "--out", str(tmp_path / "a-file"))
    assert onto_file.returncode == 2 and "is a file" in onto_file.stderr
    onto_file = cli(config, "report", "--out", str(tmp_path / "a-file" / "inside"))
    assert onto_file.returncode == 1
    assert "cannot write the report" in onto_file.stderr
    assert onto_file.stderr.strip().startswith("leakwatch: error:") and "Traceback" not in onto_file.stderr
    (tmp_path / "data" / "leakwatch.duckdb").unlink()
    missing = cli(config, "report")
    assert missing.returncode == 1 and "no warehouse" in missing.stderr and "Traceback" not in missing.stderr


def test_demo_ends_with_the_report(demo_run):
    page = demo_run.folder / "leakwatch-data" / "report" / "report.html"
    assert f"Report: {page}" in demo_run.result.stdout.splitlines()
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert (page.parent / "volume.png").read_bytes().startswith(PNG_MAGIC)
    text = page.read_text(encoding="utf-8")
    assert "period: ISO week" in text and "week starting" in text  # weekly: a day of the sample is a handful
    # The demo's model was scored on the bundled test split only: the page says what that means.
    assert "measured on test split of analysis/data/stance_dataset.csv" in text
    assert "measured on the bundled test split" in text


def test_quality_caveat_only_when_every_figure_comes_from_the_bundled_data():
    from analysis.quality import quality_from_metrics

    own = "my_gold.csv (sha256 feedbeef)"
    mixed = quality_from_metrics("m", {"openai": {"macro_f1": 0.5, "n": 40, "data": BUNDLED},
                                       "artists": {"macro_f1": 0.61, "n": 35, "data": own}})
    assert mixed.caveat() is None
    assert mixed.summary() == (f"model m: macro-F1 (favor, against) artists 0.610 (n = 35), openai 0.500 (n = 40), "
                               f"measured on {own}; {BUNDLED}")
    bundled = quality_from_metrics("m", {"openai": {"macro_f1": 0.5, "n": 40, "data": BUNDLED}})
    assert bundled.caveat() and "bundled test split" in bundled.caveat()
    # Entries without a score are not quality figures.
    assert quality_from_metrics("m", {"openai": "broken", "artists": {"n": 3}}).summary().startswith(
        "model m: quality not measured")
