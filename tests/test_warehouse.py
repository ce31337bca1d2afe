"""Warehouse: migrations, idempotent upsert with edit/deletion tracking, runs and checkpoints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest

import warehouse
from warehouse.records import Checkpoint, Page, Post
from warehouse.schema import LATEST_VERSION, MIGRATIONS

T0 = datetime(2024, 11, 26, 15, 0, tzinfo=UTC)


def post(post_id: str, text: str = "Sora leaked on Hugging Face", **changes) -> Post:
    fields = dict(platform="reddit", post_id=post_id, kind="submission", created_at=T0, text=text,
                  title="Artists leak Sora", community="OpenAI", author_id="mira", score=10,
                  matched_queries=("sora leak",), raw={"id": post_id})
    fields.update(changes)
    return Post(**fields)


@pytest.fixture
def db(tmp_path):
    con = warehouse.open_writer(tmp_path / "w.duckdb")
    yield con
    con.close()


def rows(con, sql, params=None):
    return con.execute(sql, params or []).fetchall()


# -- migrations -----------------------------------------------------------------------------------

def test_fresh_file_gets_latest_schema_and_views(tmp_path):
    path = tmp_path / "fresh.duckdb"
    warehouse.open_writer(path).close()
    con = duckdb.connect(str(path), read_only=True)
    assert warehouse.schema_version(con) == LATEST_VERSION
    names = {r[0] for r in rows(con, "SELECT table_name FROM information_schema.tables")}
    for table in ("posts", "post_versions", "runs", "checkpoints", "labels", "models", "annotations",
                  "posts_labeled", "stance_labels", "stance_daily", "stance_weekly"):
        assert table in names, table
    con.close()


@pytest.mark.parametrize("old_version", range(0, LATEST_VERSION))
def test_older_file_upgrades_on_open_and_keeps_data(tmp_path, old_version):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE my_notes (note VARCHAR)")  # a user's own table must survive
    con.execute("INSERT INTO my_notes VALUES ('keep me')")
    if old_version:
        con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description VARCHAR, "
                    "applied_at TIMESTAMPTZ NOT NULL)")
        for version, description, sql in MIGRATIONS[:old_version]:
            con.execute(sql)
            con.execute("INSERT INTO schema_version VALUES (?, ?, now())", [version, description])
    con.close()

    with warehouse.reading(path) as con:  # even a reader upgrades an older file first
        assert warehouse.schema_version(con) == LATEST_VERSION
        assert rows(con, "SELECT note FROM my_notes") == [("keep me",)]
        assert rows(con, "SELECT count(*) FROM posts") == [(0,)]


def test_newer_file_is_a_clear_error(tmp_path):
    path = tmp_path / "new.duckdb"
    warehouse.open_writer(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO schema_version VALUES (?, 'from the future', now())", [LATEST_VERSION + 1])
    con.close()
    for opener in (warehouse.open_writer, warehouse.open_reader):
        with pytest.raises(warehouse.WarehouseError, match=r"newer than this leakwatch.*upgrade"):
            opener(path)


def test_reader_on_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(warehouse.WarehouseError, match="no warehouse at .*leakwatch collect"):
        warehouse.open_reader(tmp_path / "absent.duckdb")


def test_not_a_duckdb_file_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.duckdb"
    path.write_text("this is not a database")
    with pytest.raises(warehouse.WarehouseError, match="cannot open warehouse"):
        warehouse.open_writer(path)


# -- upsert ---------------------------------------------------------------------------------------

def test_same_posts_twice_makes_no_duplicates_and_moves_last_seen(db):
    batch = [post("t3_a"), post("t3_b", kind="submission"), post("t1_c", kind="comment", title=None,
                                                                 parent_id="t3_a", thread_id="t3_a")]
    first = warehouse.upsert_posts(db, batch, seen_at=T0)
    again = warehouse.upsert_posts(db, batch, seen_at=T0 + timedelta(hours=1))
    assert (first.inserted, first.updated, first.versions) == (3, 0, 3)
    assert (again.inserted, again.updated, again.versions) == (0, 0, 0)
    assert rows(db, "SELECT count(*) FROM posts") == [(3,)]
    seen = rows(db, "SELECT DISTINCT first_seen_at, last_seen_at FROM posts")
    assert seen == [(T0, T0 + timedelta(hours=1))]
    assert rows(db, "SELECT count(*) FROM post_versions") == [(3,)]


def test_duplicate_within_one_batch_keeps_the_last_copy(db):
    result = warehouse.upsert_posts(db, [post("t3_a", text="first"), post("t3_a", text="second")])
    assert result.inserted == 1
    assert rows(db, "SELECT text FROM posts") == [("second",)]


def test_edit_adds_a_version_and_a_new_content_hash(db):
    warehouse.upsert_posts(db, [post("t3_a", text="original")], seen_at=T0)
    (old_hash,) = rows(db, "SELECT content_hash FROM posts")[0]
    result = warehouse.upsert_posts(db, [post("t3_a", text="original\n\nEDIT: pay the artists", edited=True)],
                                    seen_at=T0 + timedelta(days=1))
    assert (result.inserted, result.updated, result.versions) == (0, 1, 1)
    text, edited, new_hash = rows(db, "SELECT text, edited, content_hash FROM posts")[0]
    assert text.endswith("pay the artists") and edited and new_hash != old_hash
    history = rows(db, "SELECT change, text FROM post_versions ORDER BY observed_at")
    assert history == [("created", "original"), ("edited", "original\n\nEDIT: pay the artists")]


def test_deletion_is_recorded_and_last_known_text_kept(db):
    warehouse.upsert_posts(db, [post("t1_x", kind="comment", text="OpenAI owes them")], seen_at=T0)
    warehouse.upsert_posts(db, [post("t1_x", kind="comment", text="[deleted]", deleted=True)],
                           seen_at=T0 + timedelta(days=2))
    assert rows(db, "SELECT text, deleted FROM posts") == [("OpenAI owes them", True)]
    assert rows(db, "SELECT change FROM post_versions ORDER BY observed_at") == [("created",), ("deleted",)]
    # Seeing it deleted again records nothing new.
    again = warehouse.upsert_posts(db, [post("t1_x", kind="comment", text="[deleted]", deleted=True)])
    assert again.versions == 0 and again.updated == 0


def test_score_change_updates_without_a_version(db):
    warehouse.upsert_posts(db, [post("t3_a", score=10)])
    result = warehouse.upsert_posts(db, [post("t3_a", score=250)])
    assert (result.updated, result.versions) == (1, 0)
    assert rows(db, "SELECT score FROM posts") == [(250,)]


def test_matched_queries_accumulate(db):
    warehouse.upsert_posts(db, [post("t3_a", matched_queries=("sora leak",))])
    warehouse.upsert_posts(db, [post("t3_a", matched_queries=("sora artists", "sora leak"))])
    assert rows(db, "SELECT matched_queries FROM posts") == [(["sora artists", "sora leak"],)]


def test_quality_flags_follow_the_latest_copy_but_survive_a_deletion(db):
    warehouse.upsert_posts(db, [post("t3_a", quality_flags=("text_repaired",))])
    assert rows(db, "SELECT quality_flags FROM posts") == [(["text_repaired"],)]
    warehouse.upsert_posts(db, [post("t3_a")])  # the same post, now served clean
    assert rows(db, "SELECT quality_flags FROM posts") == [([],)]
    warehouse.upsert_posts(db, [post("t3_a", quality_flags=("created_at_after_indexed_at",))])
    warehouse.upsert_posts(db, [post("t3_a", text="", deleted=True)])
    assert rows(db, "SELECT quality_flags, deleted FROM posts") == [(["created_at_after_indexed_at"], True)]


def test_lone_surrogates_never_reach_arrow_from_the_bluesky_collector():
    from collectors.bluesky_normalize import decode_page, scrub

    body, dirty = decode_page(b'{"posts": [{"text": "a\\ud800b"}, {"text": "c\xffd"}, {"text": "ok"}]}')
    assert dirty
    fixed = [scrub(view) for view in body["posts"]]
    assert fixed == [({"text": "a\ufffdb"}, 1), ({"text": "c\ufffdd"}, 1), ({"text": "ok"}, 0)]
    table = warehouse.posts_to_arrow([post("t3_a", text=fixed[0][0]["text"], raw=fixed[1][0])])
    assert table.column("text").to_pylist() == ["a\ufffdb"]


def test_times_are_stored_as_utc_timestamptz(db):
    warehouse.upsert_posts(db, [post("t3_a", created_at=datetime(2024, 11, 26, 23, 30, tzinfo=UTC))])
    (day,) = rows(db, "SELECT CAST(created_at AS DATE) FROM posts")[0]
    assert str(day) == "2024-11-26"


# -- runs and checkpoints -------------------------------------------------------------------------

def test_page_and_checkpoint_commit_together(db):
    run_id = warehouse.start_run(db, "reddit", ["r/all:sora leak"])
    checkpoint = Checkpoint("reddit", "r/all:sora leak", newest_created_at=T0, newest_id="t3_b")
    result = warehouse.commit_page(db, run_id, Page("reddit", "r/all:sora leak", [post("t3_a"), post("t3_b")],
                                                    checkpoint, skipped=1, rate_limit_waits=2, cap_hit=True))
    assert result.inserted == 2
    warehouse.finish_run(db, run_id, "ok")
    assert warehouse.get_checkpoints(db, "reddit")["r/all:sora leak"].newest_id == "t3_b"
    assert rows(db, "SELECT status, pages, fetched, inserted, skipped, rate_limit_waits, caps_hit FROM runs") == [
        ("ok", 1, 2, 2, 1, 2, 1)]


def test_failed_page_rolls_back_posts_and_checkpoint(db):
    run_id = warehouse.start_run(db, "reddit", ["q"])
    bad = post("t3_bad", kind=None)  # violates NOT NULL inside the transaction
    checkpoint = Checkpoint("reddit", "q", newest_created_at=T0, newest_id="t3_bad")
    with pytest.raises(warehouse.WarehouseError, match="could not write to the warehouse: .*NOT NULL") as caught:
        warehouse.commit_page(db, run_id, Page("reddit", "q", [post("t3_ok"), bad], checkpoint))
    assert isinstance(caught.value.__cause__, duckdb.Error)
    assert rows(db, "SELECT count(*) FROM posts") == [(0,)]
    assert warehouse.get_checkpoints(db, "reddit") == {}
    assert rows(db, "SELECT pages FROM runs") == [(0,)]


def test_abandoned_running_runs_are_marked_interrupted(db):
    warehouse.start_run(db, "reddit", ["q"])
    assert warehouse.close_abandoned_runs(db, "reddit") == 1
    assert rows(db, "SELECT status FROM runs") == [("interrupted",)]


def test_posts_labeled_has_one_column_per_target_for_the_current_model(db):
    warehouse.configure(db, ["openai", "artists"], "model-b")
    warehouse.upsert_posts(db, [post("t3_a")])
    db.execute("""INSERT INTO labels VALUES
        ('reddit', 't3_a', 'openai', 'model-a', 'favor', 0.8, 0.1, 0.1, 'h', now()),
        ('reddit', 't3_a', 'openai', 'model-b', 'against', 0.1, 0.7, 0.2, 'h', now()),
        ('reddit', 't3_a', 'artists', 'model-b', 'favor', 0.6, 0.3, 0.1, 'h', now())""")
    assert rows(db, "SELECT openai, openai_confidence, artists FROM posts_labeled") == [("against", 0.7, "favor")]
    warehouse.configure(db, ["openai"], "model-a")  # another model and target set: views follow
    assert rows(db, "SELECT * EXCLUDE (platform, post_id, kind, community, author_handle, title, text, "
                    "created_at, url, deleted) FROM posts_labeled") == [("favor", 0.8)]
