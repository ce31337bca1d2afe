"""Stance views and the adjusted shares: arithmetic against hand-computed cases, on real DuckDB files."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest
from trends_data import CONFUSION, MODEL, add_post, at, metrics, new_warehouse

import warehouse
from analysis.trends import (
    Window,
    adjusted_shares,
    bootstrap_interval,
    confusion_for_model,
    project_to_simplex,
    stance_trends,
    widen_to_width,
    wilson_interval,
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


SMALL_PERIODS = [[0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 1, 0], [0, 2, 0], [0, 0, 2],
                 [0, 3, 2], [0, 5, 0], [1, 2, 2], [5, 0, 0]]


@pytest.mark.parametrize("counts", SMALL_PERIODS, ids=lambda c: "-".join(map(str, c)))
@pytest.mark.parametrize("target", sorted(CONFUSION))
def test_adjusted_interval_is_never_narrower_than_wilson_on_small_periods(counts, target):
    counts = np.array(counts, dtype=float)
    confusion = np.array(CONFUSION[target], dtype=float)
    n = int(counts.sum())
    low, high = bootstrap_interval(counts, confusion, 1000, np.random.default_rng(3))
    point = adjusted_shares(counts, confusion)
    wilson_low, wilson_high = wilson_interval(counts, n)
    assert (high - low >= wilson_high - wilson_low - 1e-12).all()  # never narrower than sampling noise
    assert (high - low > 0.3).all()  # five posts or fewer: nothing is known to within +-15 points
    assert ((low <= point) & (point <= high)).all()
    assert ((0 <= low) & (high <= 1)).all()
    # A class the period never showed still may be there: its upper bound is well above 0.
    assert (high[counts == 0] >= wilson_high[counts == 0] - 1e-12).all()


def test_one_post_is_not_certain():
    # Before: one 'against' post gave against 100.0 (100.0-100.0) and favor, none 0.0 (0.0-0.0).
    low, high = bootstrap_interval(np.array([0, 1, 0]), np.array(CONFUSION["openai"], float), 1000,
                                   np.random.default_rng(5))
    wilson_low, wilson_high = wilson_interval(np.array([0, 1, 0]), 1)
    assert wilson_low[1] == pytest.approx(0.206549, abs=1e-6) and wilson_high[0] == pytest.approx(0.793451, abs=1e-6)
    assert low[1] <= wilson_low[1] and high[1] == 1.0
    assert high[0] >= 0.79 and high[2] >= 0.79


def test_a_perfect_classifier_floors_the_interval_at_wilson():
    # Perfect classifier, 0 of 5 posts favor: the Dirichlet draws alone give an upper bound near 0.37
    # (Beta(0.5, 5.5)); the Wilson floor lifts it to Wilson's width, 0.434, from 0.
    counts = np.array([0, 2, 3])
    low, high = bootstrap_interval(counts, np.eye(3) * 10_000, 2000, np.random.default_rng(2))
    wilson_low, wilson_high = wilson_interval(counts, 5)
    assert (low[0], high[0]) == pytest.approx((0.0, wilson_high[0]), abs=1e-9)
    assert wilson_high[0] == pytest.approx(0.434482, abs=1e-6)
    # Many posts, many evaluation posts: the interval narrows to a few points, as it should.
    low, high = bootstrap_interval(np.array([400, 300, 300]), HAND_CONFUSION * 100, 1000, np.random.default_rng(2))
    assert (high - low < 0.12).all() and (high - low > 0.04).all()


def test_widen_to_width_by_hand():
    low, high = widen_to_width(np.array([0.0, 0.9, 0.4, 0.1]), np.array([0.0, 1.0, 0.5, 0.9]),
                               np.array([0.5, 0.4, 0.2, 0.2]), np.array([0.0, 1.0, 0.45, 0.5]))
    assert low == pytest.approx([0.0, 0.6, 0.35, 0.1])  # stuck at 0: all of it goes up; at 1: down
    assert high == pytest.approx([0.5, 1.0, 0.55, 0.9])  # the last was wide enough already
    # The point estimate is always inside.
    low, high = widen_to_width(np.array([0.2]), np.array([0.3]), np.array([0.05]), np.array([0.5]))
    assert (low[0], high[0]) == pytest.approx((0.2, 0.5))


def test_periods_of_0_1_2_and_5_posts_through_the_views(con):
    # Week 1: one post; week 2: none; week 3: two; week 4: five.
    weeks = {"2024-11-18": ["against"], "2024-12-02": ["favor", "against"],
             "2024-12-09": ["against", "against", "against", "none", "none"]}
    for day, labels in weeks.items():
        for i, label in enumerate(labels):
            add_post(con, "reddit", f"{day}-{i}", at(day, i), {"openai": label}, author=f"u{day}{i}")
    table = stance_trends(con, period="week", targets=["openai"], platforms=["all"])
    assert [r["posts"] for r in table.rows] == [1, 0, 2, 5]
    for row in table.rows:
        for label in ("favor", "against", "none"):
            low, high = row[f"adjusted_share_{label}_low"], row[f"adjusted_share_{label}_high"]
            if row["posts"] == 0:
                assert row[f"adjusted_share_{label}"] is None and low is None and high is None
                continue
            # Against the views' own Wilson interval (SQL), not the Python one.
            assert high - low >= row[f"share_{label}_high"] - row[f"share_{label}_low"] - 1e-12
            assert low <= row[f"adjusted_share_{label}"] <= high and high > 0.3
    one = table.rows[0]
    assert one["adjusted_share_favor_high"] > 0.5 and one["adjusted_share_none_high"] > 0.5


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


def test_metrics_that_are_not_an_object_are_said_and_adjusted_left_out(con):
    add_post(con, "reddit", "r1", at("2024-11-26"), {"openai": "favor"})
    con.execute("UPDATE models SET metrics = ?", ['[[5, 5, 0], [5, 5, 0], [0, 0, 9]]'])
    matrices, notes = confusion_for_model(con, MODEL)
    assert matrices == {} and notes == [f"model {MODEL}: its metrics are not a valid JSON object; "
                                        "adjusted shares are left out"]
    table = stance_trends(con, period="day")
    assert "adjusted_share_favor" not in table.columns and notes[0] in table.notes


def test_author_unit_has_no_adjusted_shares(con):
    add_post(con, "reddit", "r1", at("2024-11-26"), {"openai": "favor"})
    table = stance_trends(con, period="day", unit="authors")
    assert "adjusted_share_favor" not in table.columns
    assert any("post counts only" in n for n in table.notes)


def test_incomplete_and_small_periods_are_marked(con):
    for i in range(12):
        add_post(con, "reddit", f"a{i}", at("2024-11-19", i), {"openai": "favor"}, author=f"a{i}")
    for i in range(3):
        add_post(con, "reddit", f"b{i}", at("2024-11-26", i), {"openai": "against"}, author=f"b{i}")
    add_post(con, "reddit", "c0", at("2024-12-03"), {"openai": "none"})
    # The last successful collection started on Wednesday 2024-12-04; a later failed run does not count.
    con.execute("INSERT INTO runs (platform, queries, started_at, status) VALUES "
                "('reddit', ['sora'], TIMESTAMPTZ '2024-12-04 10:00:00+00', 'ok'), "
                "('reddit', ['sora'], TIMESTAMPTZ '2024-12-20 10:00:00+00', 'failed')")
    weekly = stance_trends(con, period="week", targets=["openai"], platforms=["all"], min_posts=10)
    assert {"incomplete", "below_min_posts"} <= set(weekly.columns)
    assert [(r["posts"], r["incomplete"], r["below_min_posts"]) for r in weekly.rows] == [
        (12, False, False), (3, False, True), (1, True, True)]
    daily = stance_trends(con, period="day", targets=["openai"], platforms=["all"], min_posts=1)
    last = daily.rows[-1]
    assert last["period"] == date(2024, 12, 3) and not last["incomplete"]  # the day ended before the run
    assert [r["period"] for r in daily.rows if r["below_min_posts"]] == [
        date(2024, 11, d) for d in range(20, 26)] + [date(2024, 11, d) for d in range(27, 31)] + [
        date(2024, 12, d) for d in (1, 2)]  # the empty days
    # Seen from an earlier "now", the week of the 25th was still running too.
    earlier = stance_trends(con, period="week", targets=["openai"], platforms=["all"],
                            now=datetime(2024, 11, 28, tzinfo=UTC))
    assert [r["incomplete"] for r in earlier.rows] == [False, True, True]
    # No collection runs recorded (data loaded another way): only "now" decides.
    con.execute("DELETE FROM runs")
    assert not any(r["incomplete"] for r in stance_trends(con, period="week", platforms=["all"]).rows)
