"""Configuration: a TOML file validated into typed settings, secrets only from the environment."""

from __future__ import annotations

import os
import tomllib
from dataclasses import replace
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from collectors import registry
from collectors.settings import SourceSettings

from .errors import ConfigError

if TYPE_CHECKING:
    from analysis.llm_stance import LlmSettings
    from analysis.models import StanceSetup

DEFAULT_CONFIG_NAME = "default.toml"
CONFIG_ENV = "LEAKWATCH_CONFIG"

PSEUDONYM_KEY_ENV = "LEAKWATCH_PSEUDONYM_KEY"  # the key of `export --pseudonymize-authors`
LLM_KEY_ENV = "LEAKWATCH_LLM_API_KEY"  # the `llm:` stance backend's endpoint
# Loopback servers (Ollama, vLLM, llama.cpp on this machine) usually need no key; the client needs one.
LOOPBACK_KEY = "no-key-needed"


def secret_env_vars() -> list[str]:
    """Every environment variable whose value is a secret: each source's, the pseudonym key and the LLM key."""
    return [name for source in registry.sources() for name in source.secrets] + [PSEUDONYM_KEY_ENV, LLM_KEY_ENV]


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default; no inf or nan.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class WarehouseSettings(_Section):
    path: str = "leakwatch.duckdb"


class Target(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)


class LlmSection(_Section):
    """`llm:<model>` stance backend; the key comes from $LEAKWATCH_LLM_API_KEY, never from here."""

    base_url: str = Field("http://localhost:11434/v1", pattern=r"^https?://")
    concurrency: int = Field(4, ge=1, le=64)
    timeout_seconds: float = Field(60, gt=0)
    max_retries: int = Field(4, ge=0, le=20)  # after a 429, 5xx, timeout or dropped connection
    answer_retries: int = Field(2, ge=0, le=10)  # after a malformed or refused answer
    backoff_seconds: float = Field(1.0, ge=0)
    max_rate_limit_wait_seconds: float = Field(300, ge=0)
    response_format: Literal["json_schema", "json_object"] = "json_schema"
    logprobs: bool = True
    max_output_tokens: int = Field(400, ge=16)
    examples_per_label: int = Field(1, ge=0, le=10)  # few-shot examples per target and label
    # Estimated cost: prices per 1M tokens in any currency; 0 = free (local servers).
    price_input_per_million: float = Field(0, ge=0)
    price_output_per_million: float = Field(0, ge=0)
    max_cost: float | None = Field(None, ge=0)  # per run; the run stops cleanly before passing it
    max_tokens_per_run: int | None = Field(None, ge=1)


class StanceSettings(_Section):
    model: str = ""
    llm: LlmSection = LlmSection()
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
    jitter_seconds: float = Field(60, ge=0, le=3600)
    # The weekly export, as a crontab line in UTC (minute hour day month weekday).
    export_cron: str = "15 0 * * mon"
    # On SIGTERM, how long a running job may take to reach a clean stopping point.
    shutdown_grace_seconds: float = Field(20, gt=0, le=3600)
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
    # Periods with fewer posts (authors) than this are greyed out in plots and tables as too small.
    min_posts: int = Field(10, ge=1, le=100_000)


class Settings(_Section):
    """The sections every config has; `settings_model()` adds one section per registered source."""

    data_dir: str = "leakwatch-data"
    warehouse: WarehouseSettings = WarehouseSettings()
    stance: StanceSettings
    export: ExportSettings = ExportSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    report: ReportSettings = ReportSettings()


def settings_model() -> type[Settings]:
    """Settings with a `[<name>]` section per registered source (required unless it has all defaults)."""
    sections: dict[str, Any] = {}
    for source in registry.sources():
        try:
            sections[source.name] = (source.settings_model, source.settings_model())
        except ValidationError:
            sections[source.name] = (source.settings_model, ...)
    return create_model("Settings", __base__=Settings, **sections)


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

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    def stance_setup(self) -> StanceSetup:
        """The [stance] section as analysis takes it, for finding, training and registering models."""
        from analysis.models import StanceSetup

        stance = self.settings.stance
        return StanceSetup(self.models_dir, tuple((t.name, t.description) for t in stance.targets),
                           stance.model, stance.batch_size, stance.precision)

    def stance_setup_to_run(self, model: str | None = None) -> StanceSetup:
        """stance_setup() for running a model (`model`, else stance.model): when that is an llm: one,
        with the endpoint's settings and key, so the key is needed only when posts go to the endpoint."""
        from analysis.models import chosen_model, is_llm_spec

        setup = self.stance_setup()
        if is_llm_spec(chosen_model(setup, model)):
            setup = replace(setup, llm=self.llm_settings())
        return setup

    def llm_settings(self) -> LlmSettings:
        """[stance.llm] plus the key from $LEAKWATCH_LLM_API_KEY (not needed for a server on this machine)."""
        from analysis.llm_classify import endpoint_host, is_loopback
        from analysis.llm_stance import LlmSettings

        s = self.settings.stance.llm
        key = os.environ.get(LLM_KEY_ENV, "").strip()
        if not key:
            host = endpoint_host(s.base_url)
            if not is_loopback(host):
                raise ConfigError(f"environment variable {LLM_KEY_ENV} is not set; export the API key of "
                                  f"{host} before running the llm: backend")
            key = LOOPBACK_KEY
        return LlmSettings(
            base_url=s.base_url, api_key=key, concurrency=s.concurrency, timeout_seconds=s.timeout_seconds,
            max_retries=s.max_retries, answer_retries=s.answer_retries, backoff_seconds=s.backoff_seconds,
            max_rate_limit_wait=s.max_rate_limit_wait_seconds, response_format=s.response_format,
            logprobs=s.logprobs, max_output_tokens=s.max_output_tokens, examples_per_label=s.examples_per_label,
            price_input_per_million=s.price_input_per_million, price_output_per_million=s.price_output_per_million,
            max_cost=s.max_cost, max_tokens_per_run=s.max_tokens_per_run,
        )

    def source_settings(self, name: str) -> SourceSettings:
        return getattr(self.settings, name)

    def enabled_sources(self) -> list[str]:
        """Names of the registered sources this config collects, in registry order."""
        return [s.name for s in registry.sources() if getattr(self.settings, s.name, None) is not None
                and self.source_settings(s.name).enabled]


def _describe(error: dict[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key (check its spelling against the shipped default config)"
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    got = error.get("input")
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) else ""
    message = error["msg"]
    for prefix in _PYDANTIC_PREFIXES:  # "Value error, must be ..." -> "must be ..."
        message = message.removeprefix(prefix)
    return f"{where}: {message}{shown}"


_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def parse_config(text: str, source: str, base_dir: Path) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    try:
        settings = settings_model().model_validate(data)
    except ValidationError as exc:
        # Every problem, unknown keys (typos) first, on one line.
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        problems = [_describe(e) for e in errors]
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        raise ConfigError(f"{source}: {count}{'; '.join(problems)}") from None
    names = [t.name for t in settings.stance.targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: stance.targets: target names must be unique (got {names})")
    config = Config(settings, source, base_dir)
    _check_data_dir(config, source)
    return config


def _check_data_dir(config: Config, source: str) -> None:
    """data_dir must be a folder, or creatable as one: its nearest existing ancestor is a folder."""
    path = config.data_dir
    for existing in (path, *path.parents):
        if existing.exists():
            break
    if not existing.is_dir():
        why = "" if existing == path else f" cannot be created: {existing}"
        raise ConfigError(f"{source}: data_dir: {path}{why} is a file, not a folder")


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
