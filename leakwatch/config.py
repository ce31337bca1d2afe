"""Configuration: a TOML file validated into typed settings, secrets only from the environment."""

from __future__ import annotations

import os
import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CONFIG_NAME = "default.toml"
CONFIG_ENV = "LEAKWATCH_CONFIG"

SECRET_ENV_VARS = (
    "REDDIT_CLIENT_ID",
    "REDDIT_CLIENT_SECRET",
    "REDDIT_USER_AGENT",
    "BLUESKY_HANDLE",
    "BLUESKY_APP_PASSWORD",
    "LEAKWATCH_PSEUDONYM_KEY",  # the key of `export --pseudonymize-authors`
)


class ConfigError(Exception):
    """The configuration or environment is wrong; the message names what and where."""


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class WarehouseSettings(_Section):
    path: str = "leakwatch.duckdb"


class RedditSettings(_Section):
    enabled: bool = True
    queries: list[str] = Field(min_length=1)
    subreddits: list[str] = Field(min_length=1)
    interval_minutes: float = Field(60, gt=0)
    # API endpoints; the demo and tests point these at the local replay server.
    oauth_url: str = Field("https://oauth.reddit.com", pattern=r"^https?://")
    reddit_url: str = Field("https://www.reddit.com", pattern=r"^https?://")
    # Submissions per search request (Reddit serves at most 100).
    page_size: int = Field(100, ge=1, le=100)
    # Reddit stops every listing near this many items; a scan ending there is recorded as a cap hit.
    listing_cap: int = Field(1000, ge=1)
    # `more` links resolved per thread (one request each); 0 keeps only the first answer's comments.
    replace_more_limit: int = Field(32, ge=0)
    # Threads younger than this are refetched on later passes (new comments, edits, deletions); 0 = never.
    refresh_days: float = Field(3, ge=0)
    # Seconds to wait for an answer before prawcore retries.
    timeout_seconds: float = Field(16, gt=0)
    # Extra attempts, with exponential backoff and jitter, once prawcore's own retries gave up.
    retries: int = Field(3, ge=0)
    backoff_seconds: float = Field(2, ge=0)
    # The longest Retry-After the collector waits out; a longer one ends the run as failed.
    max_wait_seconds: float = Field(600, ge=0)


class BlueskySettings(_Section):
    enabled: bool = True
    queries: list[str] = Field(min_length=1)
    interval_minutes: float = Field(30, gt=0)
    # The PDS/entryway that serves createSession and searchPosts; the demo and tests use a replay server.
    service_url: str = "https://bsky.social"
    # The first pass (no checkpoint yet) searches back to this day (UTC).
    start_date: date = date(2024, 11, 20)
    page_size: int = Field(100, ge=1, le=100)  # searchPosts `limit`
    # searchPosts stops paging after a bounded number of results; a window that reaches this many
    # (or whose hitsTotal says more) is sliced by time so a long backfill stays complete.
    search_result_cap: int = Field(10000, ge=1)
    fetch_threads: bool = True  # also store the reply threads of matched posts (getPostThread)
    # Re-search this many hours before the checkpoint on every pass, to notice edits, deletions,
    # new counts and (with fetch_threads) new replies; 0 = only what is new (one request per query).
    revisit_hours: float = Field(0, ge=0)
    thread_depth: int = Field(10, ge=1, le=1000)
    timeout_seconds: float = Field(30, gt=0)
    max_retries: int = Field(5, ge=0, le=50)  # retries of a request after 5xx, timeouts, malformed answers
    retry_base_seconds: float = Field(1.0, ge=0)  # first backoff; doubles per retry, with jitter
    max_rate_limit_wait_seconds: float = Field(900, ge=0)  # a 429 asking for longer fails the run


class Target(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)


class StanceSettings(_Section):
    model: str = ""
    # Posts per inference batch (length-sorted); larger is a little faster and uses more memory.
    batch_size: int = Field(64, ge=1, le=4096)
    # Inference arithmetic: auto = bfloat16 only where a one-off probe at first use (per process)
    # measured it faster than fp32, else fp32; int8 = dynamically quantized encoder (CPU).
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    targets: list[Target] = Field(min_length=1)


class ExportSettings(_Section):
    dir: str = "exports"
    # Replace author ids and handles with a keyed hash (key from $LEAKWATCH_PSEUDONYM_KEY).
    pseudonymize_authors: bool = False


class ScheduleSettings(_Section):
    """`leakwatch run`: collection intervals live with each platform; these are the rest."""

    # Each collection start is shifted by up to this many seconds, so runs do not all land on the hour.
    jitter_seconds: float = Field(60, ge=0)
    # The weekly export, as a crontab line in UTC (minute hour day month weekday).
    export_cron: str = "15 0 * * mon"
    # On SIGTERM, how long a running job may take to reach a clean stopping point.
    shutdown_grace_seconds: float = Field(20, gt=0)
    # Label new posts after each collection.
    classify_after_collect: bool = True

    @field_validator("export_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a crontab line (minute hour day month weekday): {exc}") from None
        return value


class KeyDate(_Section):
    date: date
    label: str = Field(min_length=1, max_length=60)


class ReportSettings(_Section):
    # Folder for report.html and its PNGs, relative to data_dir.
    dir: str = "report"
    # Period of the stance plots and tables: "day" or "week" (ISO weeks, Monday to Sunday, UTC).
    period: Literal["day", "week"] = "day"
    # Dates marked on every time plot.
    key_dates: list[KeyDate] = [
        KeyDate(date=date(2024, 11, 26), label="Sora leak"),
        KeyDate(date=date(2024, 12, 9), label="Sora public release"),
    ]
    # Bootstrap resamples for the adjusted shares' intervals, and the seed that makes them repeatable.
    bootstrap_samples: int = Field(1000, ge=100, le=100_000)
    seed: int = Field(20241126, ge=0)
    # Most-engaged posts listed per target and stance.
    top_posts: int = Field(5, ge=0, le=100)


class Settings(_Section):
    data_dir: str = "leakwatch-data"
    warehouse: WarehouseSettings = WarehouseSettings()
    reddit: RedditSettings
    bluesky: BlueskySettings
    stance: StanceSettings
    export: ExportSettings = ExportSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    report: ReportSettings = ReportSettings()


class Config:
    """Validated settings plus where they came from, with paths resolved."""

    def __init__(self, settings: Settings, source: str, base_dir: Path):
        self.settings = settings
        self.source = source
        self.base_dir = base_dir

    @property
    def data_dir(self) -> Path:
        return (self.base_dir / self.settings.data_dir).resolve()

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / self.settings.warehouse.path

    @property
    def export_dir(self) -> Path:
        return self.data_dir / self.settings.export.dir

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "leakwatch.log"

    @property
    def report_dir(self) -> Path:
        return self.data_dir / self.settings.report.dir

    @property
    def target_names(self) -> list[str]:
        return [t.name for t in self.settings.stance.targets]


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (check its spelling against the shipped default config)"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    got = error.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    return f"{where}: {error['msg']}{shown}"


def parse_config(text: str, source: str, base_dir: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        first = _describe(exc.errors()[0])
        more = len(exc.errors()) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{source}: {first}{tail}") from None
    names = [t.name for t in settings.stance.targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: stance.targets: target names must be unique (got {names})")
    return Config(settings, source, base_dir)


def default_config_text() -> str:
    return resources.files("leakwatch").joinpath(DEFAULT_CONFIG_NAME).read_text(encoding="utf-8")


def load_config(path: str | Path | None = None) -> Config:
    """Load --config PATH, else $LEAKWATCH_CONFIG, else the shipped default."""
    chosen = path or os.environ.get(CONFIG_ENV)
    if not chosen:
        return parse_config(default_config_text(), "default config", Path.cwd())
    file = Path(chosen).expanduser()
    if not file.is_file():
        origin = "--config" if path else CONFIG_ENV
        raise ConfigError(f"config file {file} (from {origin}) does not exist")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {file}: {exc}") from None
    return parse_config(text, str(file), file.resolve().parent)


def require_env(name: str) -> str:
    """A secret from the environment, or one clear line saying which variable to set."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is not set; export it before running this command")
    return value
