"""Tests for the replay corpus: the hand-written sample, the generator and search."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from collectors.replay.corpus import (
    BLUESKY_DEFAULT_QUERIES,
    KINDS,
    REDDIT_DEFAULT_QUERIES,
    CorpusItem,
    Edit,
    did_for,
    dump_jsonl,
    generate_corpus,
    load_sample_corpus,
    make_tid,
    matches,
    parse_query,
    read_jsonl,
)

LEAK_DAY = datetime(2024, 11, 26, tzinfo=UTC)
RELEASE_DAY = datetime(2024, 12, 9, tzinfo=UTC)
AFTER_ALL = datetime(2025, 1, 1, tzinfo=UTC)
TID_RE = re.compile(r"^[2-7a-z]{13}$")
QUERIES = {"reddit": REDDIT_DEFAULT_QUERIES, "bluesky": BLUESKY_DEFAULT_QUERIES}


@pytest.fixture(scope="module")
def sample() -> list[CorpusItem]:
    return load_sample_corpus()


@pytest.fixture(scope="module")
def generated() -> list[CorpusItem]:
    return generate_corpus(5_000, seed=7)


def make_item(**overrides: object) -> CorpusItem:
    values: dict[str, object] = dict(
        platform="reddit",
        id="1h0abcd",
        kind="submission",
        author="someone",
        community="OpenAI",
        title=None,
        text="",
        url=None,
        created_at=LEAK_DAY,
        parent_id=None,
        root_id=None,
        quote_of=None,
        lang="en",
        score=1,
        reposts=0,
    )
    values.update(overrides)
    return CorpusItem(**values)  # type: ignore[arg-type]


def matches_any(item: CorpusItem, when: datetime) -> bool:
    return any(matches(query, item, when) for query in QUERIES[item.platform])


# --- shared structural checks, run on both the sample and a generated corpus ---


def assert_well_formed(items: list[CorpusItem]) -> None:
    assert items == sorted(items, key=lambda i: (i.created_at, i.id))
    for item in items:
        assert item.platform in KINDS and item.kind in KINDS[item.platform]
        assert item.created_at.tzinfo is not None
        assert item.created_at.utcoffset() == timedelta(0)
        if item.platform == "reddit":
            assert item.community and item.reposts == 0
            assert (item.title is not None) == (item.kind == "submission")
            pattern = r"1h[0-9a-z]{5}" if item.kind == "submission" else r"[0-9a-z]{7}"
            assert re.fullmatch(pattern, item.id), item.id
        else:
            assert item.community is None and item.title is None and not item.removed
            assert TID_RE.match(item.id), item.id
            assert len(item.text) <= 300
        assert item.removed is False or item.deleted_at is not None
        previous = item.created_at
        for edit in item.edits:
            assert edit.at > previous
            previous = edit.at
        if item.deleted_at is not None:
            assert item.deleted_at > previous


def assert_unique_ids(items: list[CorpusItem]) -> None:
    keys = [(i.platform, i.id) for i in items]
    assert len(keys) == len(set(keys))


def assert_references_resolve(items: list[CorpusItem]) -> None:
    """Parents, roots and quoted posts exist on the same platform and came first."""
    by_key = {(i.platform, i.id): i for i in items}
    position = {(i.platform, i.id): n for n, i in enumerate(items)}
    for n, item in enumerate(items):
        key = (item.platform, item.id)
        is_child = item.kind in ("comment", "reply")
        assert (item.parent_id is not None) == is_child, key
        assert (item.root_id is not None) == is_child, key
        assert (item.quote_of is not None) == (item.kind == "quote"), key
        for ref in (item.parent_id, item.root_id, item.quote_of):
            if ref is None:
                continue
            target = by_key[(item.platform, ref)]
            assert target.created_at < item.created_at, (key, ref)
            assert position[(item.platform, ref)] < n
        if is_child:
            root = by_key[(item.platform, item.root_id)]
            assert root.root_id is None and root.kind in ("submission", "post", "quote")
            parent = by_key[(item.platform, item.parent_id)]
            assert parent.root_id in (None, item.root_id)
            assert item.parent_id == item.root_id or parent.root_id == item.root_id
            if item.platform == "reddit":
                assert item.community == root.community


# --- sample corpus ---


def test_sample_size_and_mix(sample: list[CorpusItem]) -> None:
    assert 280 <= len(sample) <= 360
    kinds = Counter((i.platform, i.kind) for i in sample)
    assert kinds[("reddit", "submission")] >= 30
    assert kinds[("reddit", "comment")] >= 130
    assert kinds[("bluesky", "quote")] >= 8
    assert kinds[("bluesky", "reply")] >= 50
    assert 160 <= sum(1 for i in sample if i.platform == "reddit") <= 220
    assert 110 <= sum(1 for i in sample if i.platform == "bluesky") <= 160
    assert {"de", "es", "fr", "pt", "ja"} <= {i.lang for i in sample if i.platform == "bluesky"}
    assert sum(1 for i in sample if i.lang != "en") >= 12


def test_sample_well_formed(sample: list[CorpusItem]) -> None:
    assert_well_formed(sample)
    assert_unique_ids(sample)
    assert_references_resolve(sample)


def test_sample_time_shape(sample: list[CorpusItem]) -> None:
    assert min(i.created_at for i in sample) >= LEAK_DAY
    assert max(i.created_at for i in sample) < AFTER_ALL
    per_day = Counter(i.created_at.date() for i in sample)
    assert per_day[LEAK_DAY.date()] == max(per_day.values())  # the leak day is the busiest
    assert per_day[RELEASE_DAY.date()] > per_day[(RELEASE_DAY - timedelta(days=1)).date()] * 3


def test_sample_has_big_nested_threads(sample: list[CorpusItem]) -> None:
    by_id = {i.id: i for i in sample if i.platform == "reddit"}
    sizes = Counter(i.root_id for i in sample if i.kind == "comment")
    assert sum(1 for size in sizes.values() if size >= 15) >= 3

    def depth(item: CorpusItem) -> int:
        return 0 if item.parent_id is None else 1 + depth(by_id[item.parent_id])

    assert max(depth(i) for i in by_id.values()) >= 5


@pytest.mark.parametrize("platform", ["reddit", "bluesky"])
def test_sample_default_queries_match_many(sample: list[CorpusItem], platform: str) -> None:
    items = [i for i in sample if i.platform == platform]
    for query in QUERIES[platform]:
        assert sum(matches(query, i, AFTER_ALL) for i in items) >= 10, query


def test_sample_submissions_mostly_match(sample: list[CorpusItem]) -> None:
    submissions = [i for i in sample if i.kind == "submission"]
    matching = [i for i in submissions if matches_any(i, i.created_at)]
    assert len(matching) >= 0.85 * len(submissions)


def test_sample_has_off_topic_noise(sample: list[CorpusItem]) -> None:
    # Items that say "Sora" or "leak" without being about the Sora leak, and that
    # no default query finds.
    noise = [
        i
        for i in sample
        if re.search(r"\b(sora|leak)", f"{i.title or ''} {i.text}", re.IGNORECASE) and not matches_any(i, AFTER_ALL)
    ]
    text = " ".join(f"{i.title or ''} {i.text}" for i in noise)
    for marker in ("KH4", "keyblade", "kitchen sink", "ceiling leak", "空", "my cat Sora", "GTA 6"):
        assert marker in text, marker
    assert {"KingdomHearts", "Plumbing"} <= {i.community for i in noise}
    # ...and at least one off-topic post that a naive search does pick up.
    assert any("fan art" in i.text and matches("sora leak", i, AFTER_ALL) for i in sample)


def test_sample_edits_and_deletions(sample: list[CorpusItem]) -> None:
    edited = [i for i in sample if i.edits]
    deleted = [i for i in sample if i.deleted_at and not i.removed]
    removed = [i for i in sample if i.removed]
    assert len(edited) >= 8 and any(len(i.edits) == 2 for i in edited)
    assert len(deleted) >= 6 and {i.platform for i in deleted} == {"reddit", "bluesky"}
    assert len(removed) >= 3 and {i.platform for i in removed} == {"reddit"}
    assert any("EDIT" in i.edits[-1].text for i in edited)
    december = datetime(2024, 12, 1, tzinfo=UTC)
    for item in edited + deleted + removed:
        for moment in [e.at for e in item.edits] + [item.deleted_at]:
            if moment is not None:
                assert december <= moment < AFTER_ALL
    # A deleted comment with replies keeps its place in the tree.
    deleted_ids = {i.id for i in deleted + removed}
    assert any(i.parent_id in deleted_ids for i in sample)


def test_sample_edit_can_flip_stance(sample: list[CorpusItem]) -> None:
    item = next(i for i in sample if i.text.startswith("Entitled. They applied"))
    before, after = item.edits[0].at - timedelta(seconds=1), item.edits[0].at
    assert "should have been paid" not in item.text_at(before)
    assert "should have been paid" in item.text_at(after)
    assert item.edited_at(before) is None and item.edited_at(after) == after


def test_sample_is_cached_but_list_is_fresh() -> None:
    first, second = load_sample_corpus(), load_sample_corpus()
    assert first == second and first is not second
    first.clear()
    assert load_sample_corpus() == second


def test_sample_jsonl_round_trip(sample: list[CorpusItem], tmp_path) -> None:
    path = tmp_path / "sample.jsonl"
    dump_jsonl(sample, path)
    assert read_jsonl(path) == sample


# --- item behaviour ---


def test_text_at_and_edited_at() -> None:
    t1, t2 = LEAK_DAY + timedelta(days=6), LEAK_DAY + timedelta(days=8)
    item = make_item(text="v0", edits=[Edit(t1, "v1"), Edit(t2, "v2")])
    assert isinstance(item.edits, tuple)  # lists are frozen into tuples
    assert item.text_at(LEAK_DAY) == "v0" and item.edited_at(LEAK_DAY) is None
    assert item.text_at(t1) == "v1" and item.edited_at(t1) == t1
    assert item.text_at(t2 - timedelta(seconds=1)) == "v1"
    assert item.text_at(t2 + timedelta(days=1)) == "v2" and item.edited_at(AFTER_ALL) == t2


def test_is_deleted_and_visible() -> None:
    gone = LEAK_DAY + timedelta(days=3)
    item = make_item(deleted_at=gone)
    assert not item.is_deleted(gone - timedelta(seconds=1))
    assert item.is_deleted(gone) and item.is_deleted(AFTER_ALL)
    assert not make_item().is_deleted(AFTER_ALL)
    assert not item.visible(LEAK_DAY - timedelta(seconds=1))
    assert item.visible(LEAK_DAY)


# --- search semantics ---


def test_parse_query() -> None:
    assert parse_query('sora "Hugging  Face"') == ["sora", "hugging face"]
    assert parse_query('"PR puppets"') == ["pr puppets"]
    assert parse_query('  leak  "unclosed phrase') == ["leak", "unclosed phrase"]
    assert parse_query('"" sora') == ["sora"]


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("sora leak", "The Sora LEAK is wild", True),
        ("sora leak", "sora leaked on Hugging Face", True),  # prefix of a word
        ("sora leak", "Sora-Leak: Künstler protestieren", True),  # punctuation is a boundary
        ("leak", "what a bleak day for Sora", False),  # not the start of a word
        ("sora leak", "Sora is out", False),  # every term must occur
        ("leak sora", "the leak of Sora", True),  # order does not matter
        ('"PR puppets"', "we are not your PR Puppets.", True),
        ('"PR puppets"', "PR for the puppets", False),  # a phrase is contiguous
        ('"PR puppets"', "pr\npuppets", True),  # any whitespace inside a phrase
        ('sora "hugging face"', "Sora was on Hugging Face", True),
        ('sora "hugging face"', "Sora was on HuggingFace", False),
        ("artists", "the artist was paid", False),  # the term is longer than the word
        ("sora openai", "OpenAIのSoraがリークされた", True),  # CJK text has no spaces
        ("sora", "空 (sora) がきれい", True),
    ],
)
def test_matches_semantics(query: str, text: str, expected: bool) -> None:
    assert matches(query, make_item(platform="bluesky", kind="post", text=text), AFTER_ALL) is expected


def test_matches_uses_title_and_text_at_time() -> None:
    edited_at = LEAK_DAY + timedelta(days=7)
    item = make_item(title="Sora thread", text="nothing yet", edits=[Edit(edited_at, "it leaked")])
    assert not matches("sora leak", item, edited_at - timedelta(seconds=1))
    assert matches("sora leak", item, edited_at)
    assert matches("thread leaked", item, edited_at)  # title and text together


def test_deleted_items_never_match() -> None:
    gone = LEAK_DAY + timedelta(days=6)
    item = make_item(title="Sora leak", deleted_at=gone, removed=True)
    assert matches("sora leak", item, gone - timedelta(seconds=1))
    assert not matches("sora leak", item, gone)
    assert not matches("", item, gone)


# --- ids ---


def test_did_for() -> None:
    did = did_for("mira-draws.bsky.social")
    assert did == did_for("mira-draws.bsky.social")
    assert re.fullmatch(r"did:plc:[a-z2-7]{24}", did)
    assert did != did_for("juno-animates.bsky.social")


def test_make_tid_sorts_by_time() -> None:
    early, late = make_tid(1_732_633_200_000_000), make_tid(1_732_633_200_000_001)
    assert TID_RE.match(early) and early < late
    assert make_tid(1_732_633_200_000_000, clock_id=5) != early


# --- generated corpus ---


def test_generate_exact_size() -> None:
    for n in (0, 1, 2, 17, 1234):
        assert len(generate_corpus(n, seed=3)) == n


def test_generate_is_deterministic() -> None:
    assert generate_corpus(2_000, seed=1) == generate_corpus(2_000, seed=1)
    assert generate_corpus(2_000, seed=1) != generate_corpus(2_000, seed=2)


def test_generated_well_formed(generated: list[CorpusItem]) -> None:
    assert_well_formed(generated)
    assert_unique_ids(generated)
    assert_references_resolve(generated)


def test_generated_shape(generated: list[CorpusItem]) -> None:
    platforms = Counter(i.platform for i in generated)
    assert platforms["reddit"] == round(5_000 * 0.55)
    kinds = Counter(i.kind for i in generated)
    assert kinds["submission"] > 20 and kinds["quote"] > 20 and kinds["reply"] > kinds["post"]
    assert any(i.edits for i in generated) and any(i.deleted_at for i in generated)
    assert any(i.removed for i in generated)
    assert len({i.lang for i in generated}) >= 4
    assert len({i.text for i in generated}) > 0.5 * len(generated)  # texts vary
    start, end = datetime(2024, 11, 26, tzinfo=UTC), datetime(2024, 12, 31, tzinfo=UTC)
    assert all(start <= i.created_at < end for i in generated)
    first_week = sum(1 for i in generated if i.created_at < start + timedelta(days=7))
    assert first_week > len(generated) * 0.4  # most activity right after the leak


def test_generated_roots_match_a_default_query(generated: list[CorpusItem]) -> None:
    roots = [i for i in generated if i.root_id is None]
    assert all(matches_any(i, i.created_at) for i in roots)


def test_generated_has_large_threads() -> None:
    items = generate_corpus(30_000, seed=0)
    sizes = Counter(i.root_id for i in items if i.kind == "comment")
    assert max(sizes.values()) > 200


def test_generate_custom_range() -> None:
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 3, tzinfo=UTC)
    items = generate_corpus(500, seed=4, start=start, end=end)
    assert len(items) == 500 and all(start <= i.created_at < end for i in items)
    assert_references_resolve(items)
    with pytest.raises(ValueError):
        generate_corpus(10, start=end, end=start)


def test_generated_jsonl_round_trip(generated: list[CorpusItem], tmp_path) -> None:
    path = tmp_path / "generated.jsonl"
    dump_jsonl(generated, path)
    assert read_jsonl(path) == generated


def test_read_jsonl_rejects_unknown_fields(tmp_path) -> None:
    path = tmp_path / "bad.jsonl"
    dump_jsonl([make_item()], path)
    path.write_text(path.read_text().replace('"lang"', '"language"'))
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        read_jsonl(path)
