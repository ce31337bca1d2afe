"""Stance views and the adjusted shares: arithmetic against hand-computed cases, on real DuckDB files."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from trends_data import MODEL, add_post, at, metrics, new_warehouse

import warehouse
from analysis.trends import (
    Window,
    adjusted_shares,
    bootstrap_interval,
    confusion_for_model,
    project_to_simplex,
    stance_trends,
)


def rows(con, sql, params=()):
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


@pytest.fixture
def con(tmp_path):
    con = new_warehouse(tmp_path / "w.duckdb", metrics())
    yield con
    con.close()


# ---------------------------------------------------------------- Wilson intervals


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Hand-computed from the Wilson formula with z = 1.959964.
        (3, 10, 0.107791, 0.603222),
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
        (1, 1, 0.206549, 1.0),
        (50, 100, 0.403832, 0.596168),
    ],
)
def test_wilson_macros_match_hand_computed_values(con, k, n, low, high):
    got_low, got_high = con.execute("SELECT wilson_low(?, ?), wilson_high(?, ?)", [k, n, k, n]).fetchone()
    assert got_low == pytest.approx(low, abs=1e-6)
    assert got_high == pytest.approx(high, abs=1e-6)


def test_wilson_is_null_without_posts(con):
    assert con.execute("SELECT wilson_low(0, 0), wilson_high(0, 0)").fetchone() == (None, None)


# ---------------------------------------------------------------- the period views


def test_daily_counts_shares_and_empty_days(con):
    add_post(con, "reddit", "r1", at("2024-11-26", 1), {"openai": "against"}, author="a")
    add_post(con, "reddit", "r2", at("2024-11-26", 23), {"openai": "against"}, author="b")
    add_post(con, "bluesky", "b1", at("2024-11-26", 5), {"openai": "favor"}, author="c")
    # nothing on the 27th
    add_post(con, "bluesky", "b2", at("2024-11-28", 9), {"openai": "none"}, author="c")
    got = {(r["period"], r["platform"]): r for r in rows(con, "SELECT * FROM stance_daily")}
    assert set(got) == {(date(2024, 11, d), p) for d in (26, 27, 28) for p in ("reddit", "bluesky", "all")}
    all26 = got[(date(2024, 11, 26), "all")]
    assert (all26["posts"], all26["favor"], all26["against"], all26["none"]) == (3, 1, 2, 0)
    assert all26["share_against"] == pytest.approx(2 / 3)
    assert all26["share_none"] == 0.0 and all26["share_none_low"] == 0.0
    assert all26["share_none_high"] == pytest.approx(0.561497, abs=1e-6)  # Wilson 0/3
    # An empty day is a row of zeros with NULL shares, for every platform.
    for platform in ("reddit", "bluesky", "all"):
        empty = got[(date(2024, 11, 27), platform)]
        assert (empty["posts"], empty["favor"], empty["against"], empty["none"]) == (0, 0, 0, 0)
        assert empty["share_favor"] is None and empty["share_against_low"] is None
        assert empty["share_none_high"] is None
    # Reddit had nothing on the 28th: zero, not missing.
    assert got[(date(2024, 11, 28), "reddit")]["posts"] == 0
    assert got[(date(2024, 11, 28), "bluesky")]["share_none"] == 1.0


def test_weekly_buckets_are_utc_iso_weeks_and_empty_weeks_stay(con):
    # Sunday 23:30 UTC belongs to the week of Monday 2024-11-18, whatever the session time zone.
    add_post(con, "reddit", "r1", at("2024-11-24", 23), {"openai": "favor"})
    add_post(con, "reddit", "r2", at("2024-11-25", 0), {"openai": "against"})
    add_post(con, "reddit", "r3", at("2024-12-09", 12), {"openai": "against"})
    con.execute("SET TimeZone = 'America/Los_Angeles'")
    got = rows(con, "SELECT period, posts, favor, against, share_favor FROM stance_weekly "
                    "WHERE platform = 'reddit' ORDER BY period")
    assert [(r["period"], r["posts"], r["favor"], r["against"]) for r in got] == [
        (date(2024, 11, 18), 1, 1, 0),
        (date(2024, 11, 25), 1, 0, 1),
        (date(2024, 12, 2), 0, 0, 0),  # the empty week
        (date(2024, 12, 9), 1, 0, 1),
    ]
    assert got[2]["share_favor"] is None


def test_views_use_only_the_current_model(con):
    add_post(con, "reddit", "r1", at("2024-11-26"), {"openai": "favor"})
    con.execute("INSERT INTO labels VALUES ('reddit', 'r1', 'openai', 'old', 'against', 0, 1, 0, 'h', now())")
    assert con.execute("SELECT favor, against FROM stance_daily WHERE platform = 'all'").fetchone() == (1, 0)
    warehouse.configure(con, ["openai", "artists"], "old")
    assert con.execute("SELECT favor, against FROM stance_daily WHERE platform = 'all'").fetchone() == (0, 1)


def test_author_votes_majority_and_tie_rule(con):
    day = "2024-11-26"
    # a: 3 against, 1 favor -> against. b: 1 favor, 1 against -> tie -> none. c: 1 favor -> favor.
    for i, label in enumerate(["against", "against", "against", "favor"]):
        add_post(con, "reddit", f"a{i}", at(day, i), {"openai": label}, author="a")
    add_post(con, "reddit", "b0", at(day, 1), {"openai": "favor"}, author="b")
    add_post(con, "reddit", "b1", at(day, 2), {"openai": "against"}, author="b")
    add_post(con, "bluesky", "c0", at(day, 3), {"openai": "favor"}, author="c")
    # Posts without an author each count as one voter.
    add_post(con, "bluesky", "n0", at(day, 4), {"openai": "none"}, author=None)
    add_post(con, "bluesky", "n1", at(day, 5), {"openai": "none"}, author=None)
    # The same handle on another platform is another person.
    add_post(con, "bluesky", "a-bsky", at(day, 6), {"openai": "favor"}, author="a")

    by_post = rows(con, "SELECT * FROM stance_daily WHERE platform = 'all'")[0]
    assert (by_post["posts"], by_post["favor"], by_post["against"], by_post["none"]) == (10, 4, 4, 2)

    got = {r["platform"]: r for r in rows(con, "SELECT * FROM stance_daily_authors")}
    assert (got["reddit"]["authors"], got["reddit"]["favor"], got["reddit"]["against"], got["reddit"]["none"]) \
        == (2, 0, 1, 1)
    assert (got["bluesky"]["authors"], got["bluesky"]["favor"], got["bluesky"]["none"]) == (4, 2, 2)
    everyone = got["all"]
    assert (everyone["authors"], everyone["posts"], everyone["favor"], everyone["against"], everyone["none"]) \
        == (6, 10, 2, 1, 3)
    assert everyone["share_favor"] == pytest.approx(2 / 6)
    weekly = rows(con, "SELECT authors, favor FROM stance_weekly_authors WHERE platform = 'all'")
    assert weekly == [{"authors": 6, "favor": 2}]


def test_author_votes_are_per_period(con):
    add_post(con, "reddit", "x1", at("2024-11-25"), {"openai": "favor"}, author="x")
    add_post(con, "reddit", "x2", at("2024-11-26"), {"openai": "against"}, author="x")
    daily = rows(con, "SELECT period, authors, favor, against FROM stance_daily_authors "
                      "WHERE platform = 'all' ORDER BY period")
    assert [(r["authors"], r["favor"], r["against"]) for r in daily] == [(1, 1, 0), (1, 0, 1)]
    weekly = rows(con, "SELECT authors, favor, against, none FROM stance_weekly_authors WHERE platform = 'all'")
    assert weekly == [{"authors": 1, "favor": 0, "against": 0, "none": 1}]  # a tie within the week


def test_old_file_gets_the_new_view_definitions(tmp_path):
    path = tmp_path / "old.duckdb"
    con = new_warehouse(path, metrics())
    add_post(con, "reddit", "r1", at("2024-11-26"), {"openai": "favor"})
    # Make it look like a version-1 file with the old views.
    con.execute("DROP VIEW stance_daily_authors")
    con.execute("CREATE OR REPLACE VIEW stance_daily AS SELECT 1 AS old")
    con.execute("DELETE FROM schema_version WHERE version > 1")
    # ...and the posts table of version 1 (the later migrations add a column and relax one).
    con.execute("ALTER TABLE posts DROP COLUMN quality_flags")
    con.execute("ALTER TABLE posts ALTER COLUMN text SET NOT NULL")
    con.close()
    with warehouse.reading(path) as reader:  # a reader alone upgrades it
        assert warehouse.schema_version(reader) == warehouse.LATEST_VERSION
        assert reader.execute("SELECT posts FROM stance_daily WHERE platform = 'all'").fetchone() == (1,)
        assert reader.execute("SELECT authors FROM stance_daily_authors WHERE platform = 'all'").fetchone() == (1,)


# ---------------------------------------------------------------- adjusted classify-and-count

# True favor/against/none rows; M = [[.8,.1,.1],[.1,.8,.1],[0,0,1]] after row normalisation.
HAND_CONFUSION = np.array([[8, 1, 1], [1, 8, 1], [0, 0, 10]], dtype=float)


def test_adjusted_shares_recover_the_true_mix():
    # True mix (.5, .25, .25) is observed as Mᵀ·p = (.425, .25, .325): 17, 10, 13 of 40 posts.
    assert adjusted_shares(np.array([17, 10, 13]), HAND_CONFUSION) == pytest.approx([0.5, 0.25, 0.25])


def test_adjusted_shares_with_a_perfect_classifier_are_the_observed_shares():
    assert adjusted_shares(np.array([2, 0, 6]), np.eye(3) * 50) == pytest.approx([0.25, 0.0, 0.75])


def test_adjusted_shares_are_clipped_onto_the_simplex():
    # Observed (0, .5, .5) solves to (-5/63, 40/63, 4/9); its projection is (0, 25/42, 17/42).
    got = adjusted_shares(np.array([0, 10, 10]), HAND_CONFUSION)
    assert got == pytest.approx([0.0, 25 / 42, 17 / 42])
    assert project_to_simplex(np.array([-0.1, 0.6, 0.5])) == pytest.approx([0.0, 0.55, 0.45])
    assert project_to_simplex(np.array([[1.5, 0.0, -0.5]]))[0] == pytest.approx([1.0, 0.0, 0.0])


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    counts = np.array([17, 10, 13])
    low1, high1 = bootstrap_interval(counts, HAND_CONFUSION, 500, np.random.default_rng(1))
    low2, high2 = bootstrap_interval(counts, HAND_CONFUSION, 500, np.random.default_rng(1))
    assert (low1 == low2).all() and (high1 == high2).all()
    assert (low1 <= [0.5, 0.25, 0.25]).all() and ([0.5, 0.25, 0.25] <= high1).all()
    assert (high1 - low1 > 0.05).all()  # 40 posts and 30 evaluation posts: wide, honestly


def test_trend_table_adjusted_columns_zero_counts_and_empty_weeks(con):
    for i, label in enumerate(["favor"] * 17 + ["against"] * 10 + ["none"] * 13):
        add_post(con, "reddit", f"p{i}", at("2024-11-26"), {"openai": label}, author=f"u{i}")
    add_post(con, "reddit", "late", at("2024-12-10"), {"openai": "none"})
    con.execute("UPDATE models SET metrics = ?", [
        '{"openai": {"labels": ["none", "favor", "against"], '  # another label order, reordered on read
        '"confusion": [[10, 0, 0], [1, 8, 1], [1, 1, 8]]}}'])
    table = stance_trends(con, period="week", platforms=["all"], bootstrap_samples=200)
    assert table.notes == []
    first, empty, last = table.rows
    assert first["adjusted_share_favor"] == pytest.approx(0.5)
    assert first["adjusted_share_against"] == pytest.approx(0.25)
    assert first["adjusted_share_favor_low"] < 0.5 < first["adjusted_share_favor_high"]
    assert empty["period"] == date(2024, 12, 2) and empty["posts"] == 0
    assert empty["adjusted_share_favor"] is None and empty["adjusted_share_none_high"] is None
    # One 'none' post: predicted (0, 0, 1) is consistent only with true (0, 0, 1).
    assert last["adjusted_share_none"] == pytest.approx(1.0) and last["adjusted_share_favor"] == pytest.approx(0.0)
    # Same call, same numbers: the bootstrap is seeded per row.
    again = stance_trends(con, period="week", platforms=["all"], bootstrap_samples=200)
    assert again.rows == table.rows
    # A narrower window does not change a row's interval.
    narrow = stance_trends(con, period="week", platforms=["all"], bootstrap_samples=200,
                           window=Window(date(2024, 11, 26), date(2024, 11, 26)))
    assert narrow.rows == [first]


def test_missing_metrics_are_said_and_adjusted_left_out(tmp_path):
    con = new_warehouse(tmp_path / "w.duckdb", model_metrics=None)
    add_post(con, "reddit", "r1", at("2024-11-26"), {"openai": "favor"})
    table = stance_trends(con, period="day")
    assert "adjusted_share_favor" not in table.columns
    assert any(f"current model {MODEL} has no evaluation metrics" in n for n in table.notes)


def test_unusable_confusion_matrices_are_reported(con):
    con.execute("UPDATE models SET metrics = ?", [
        '{"openai": {"labels": ["favor", "against", "none"], "confusion": [[0, 0, 0], [1, 8, 1], [0, 0, 10]]},'
        ' "artists": {"labels": ["favor", "against", "none"], "confusion": [[5, 5, 0], [5, 5, 0], [0, 0, 9]]}}'])
    matrices, notes = confusion_for_model(con, MODEL)
    assert matrices == {}
    assert any("openai" in n and "no posts whose true label is favor" in n for n in notes)
    assert any("artists" in n and "singular" in n for n in notes)


def test_author_unit_has_no_adjusted_shares(con):
    add_post(con, "reddit", "r1", at("2024-11-26"), {"openai": "favor"})
    table = stance_trends(con, period="day", unit="authors")
    assert "adjusted_share_favor" not in table.columns
    assert any("post counts only" in n for n in table.notes)
