"""Shared fixtures: config files in tmp_path, the CLI as a subprocess, warehouse queries, and
per-platform replay servers with small corpora built in the test.

Platform sections below are independent; add a platform's fixtures beside the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from collectors import registry
from collectors.replay.corpus import CorpusItem, Edit, base36
from leakwatch.config import Config, load_config

REPO = Path(__file__).resolve().parent.parent

# -- config files ----------------------------------------------------------------------------------

def _base_config() -> dict[str, dict[str, Any]]:
    """A minimal valid section for every registered source."""
    return {source.name: dict(source.example_settings) for source in registry.sources()}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # strings and lists of strings are valid TOML this way


def write_config(directory: Path, **sections: dict[str, Any]) -> Path:
    """A leakwatch.toml in `directory`: defaults for every platform, overridden per section."""
    lines = ['data_dir = "data"']
    base = _base_config()
    for name in sorted(set(base) | set(sections)):
        values = {**base.get(name, {}), **sections.get(name, {})}
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_toml_value(value)}" for key, value in values.items())
    lines += ["[stance]", "[[stance.targets]]", 'name = "openai"', 'description = "OpenAI, the company"',
              "[[stance.targets]]", 'name = "artists"', 'description = "the artists who leaked Sora"']
    path = directory / "leakwatch.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., tuple[Path, Config]]:
    """make_config(reddit={...}, bluesky={...}) -> (path of the file, loaded Config)."""

    def make(**sections: dict[str, Any]) -> tuple[Path, Config]:
        path = write_config(tmp_path, **sections)
        return path, load_config(path)

    return make


# -- the CLI and the warehouse ------------------------------------------------------------------------

def cli_env(extra: dict[str, str] | None = None, drop: tuple[str, ...] = ()) -> dict[str, str]:
    secrets = {name for source in registry.sources() for name in source.secrets}
    env = {k: v for k, v in os.environ.items() if k not in drop and k not in secrets}
    env.pop("LEAKWATCH_CONFIG", None)
    env.update(extra or {})
    return env


def run_cli(config: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "leakwatch", "--config", str(config), *args],
                          capture_output=True, text=True, env=env or cli_env(), timeout=timeout, cwd=REPO)


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


# -- Reddit -------------------------------------------------------------------------------------------

REDDIT_T0 = datetime(2024, 11, 26, 15, 0, tzinfo=UTC)
REDDIT_ENV = {"REDDIT_CLIENT_ID": "leakwatch-demo", "REDDIT_CLIENT_SECRET": "leakwatch-demo-secret",
              "REDDIT_USER_AGENT": "leakwatch-tests/0.1 by u/leakwatch"}


class RedditCorpus:
    """Builds Reddit corpus items minutes after REDDIT_T0; ids grow with creation order."""

    def __init__(self) -> None:
        self.items: list[CorpusItem] = []
        self._submissions = int("1g00000", 36)
        self._comments = int("l000000", 36)

    def at(self, minutes: float) -> datetime:
        return REDDIT_T0 + timedelta(minutes=minutes)

    def submission(self, minutes: float, title: str = "Sora leak: artists protest", text: str = "What happened?",
                   community: str = "OpenAI", author: str = "pixel_otter", **changes: Any) -> CorpusItem:
        self._submissions += 1
        item = CorpusItem(platform="reddit", id=base36(self._submissions), kind="submission", author=author,
                          community=community, title=title, text=text, url=None, created_at=self.at(minutes),
                          parent_id=None, root_id=None, quote_of=None, lang="en", score=10, reposts=0)
        item = replace(item, **changes)
        self.items.append(item)
        return item

    def comment(self, parent: CorpusItem, minutes: float, text: str = "Testers should be paid.",
                author: str = "ink_badger", **changes: Any) -> CorpusItem:
        self._comments += 1
        root = parent.id if parent.kind == "submission" else parent.root_id
        item = CorpusItem(platform="reddit", id=base36(self._comments), kind="comment", author=author,
                          community=parent.community, title=None, text=text, url=None, created_at=self.at(minutes),
                          parent_id=parent.id, root_id=root, quote_of=None, lang="en", score=3, reposts=0)
        item = replace(item, **changes)
        self.items.append(item)
        return item

    @staticmethod
    def edit(minutes_after_t0: float, text: str) -> Edit:
        return Edit(REDDIT_T0 + timedelta(minutes=minutes_after_t0), text)


@pytest.fixture
def reddit_corpus() -> RedditCorpus:
    return RedditCorpus()


@pytest.fixture
def reddit_server() -> Iterator[Callable[..., Any]]:
    """reddit_server(items, now=..., **options) -> a started RedditReplayServer, stopped afterwards."""
    from collectors.replay.reddit_api import RedditReplayServer

    started: list[RedditReplayServer] = []

    def start(items: list[CorpusItem], **options: Any) -> RedditReplayServer:
        server = RedditReplayServer(items, **options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def reddit_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in REDDIT_ENV.items():
        monkeypatch.setenv(name, value)
    return REDDIT_ENV


def reddit_section(server: Any, **values: Any) -> dict[str, Any]:
    """The [reddit] config section pointing praw at `server`, quick to fail in tests."""
    return {"oauth_url": server.url, "reddit_url": server.url, "page_size": 5, "backoff_seconds": 0.05,
            "timeout_seconds": 5, **values}


# -- stance -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _quick_demo_model(tmp_path_factory: pytest.TempPathFactory):
    # Subprocesses inherit os.environ: `leakwatch demo` then trains in seconds, not minutes, and
    # never touches the user's model cache.
    saved = {k: os.environ.get(k) for k in ("LEAKWATCH_DEMO_QUICK_MODEL", "LEAKWATCH_CACHE_DIR")}
    os.environ["LEAKWATCH_DEMO_QUICK_MODEL"] = "1"
    os.environ["LEAKWATCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("model-cache"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# -- the demo ---------------------------------------------------------------------------------------


@dataclass
class DemoRun:
    result: subprocess.CompletedProcess[str]
    folder: Path  # the demo's --dir
    cache: Path  # its own model cache, empty before the run

    @property
    def db(self) -> Path:
        return self.folder / "leakwatch-data" / "leakwatch.duckdb"


@pytest.fixture(scope="session")
def demo_run(_quick_demo_model: None, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """`leakwatch demo` run once, as a subprocess, for the whole suite: every feature's test checks its
    own step of the same run instead of paying for the whole pipeline again."""
    root = tmp_path_factory.mktemp("demo-run")
    env = cli_env({"HF_HUB_OFFLINE": "1", "LEAKWATCH_CACHE_DIR": str(root / "cache")})
    result = subprocess.run([sys.executable, "-m", "leakwatch", "demo", "--dir", str(root / "demo")],
                            capture_output=True, text=True, env=env, timeout=600, cwd=root)
    assert result.returncode == 0, result.stderr
    return DemoRun(result, root / "demo", root / "cache")
