"""Configuration: a TOML file validated into typed settings, secrets only from the environment."""

from __future__ import annotations

import os
import tomllib
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from collectors import registry
from collectors.settings import SourceSettings

from .errors import ConfigError

if TYPE_CHECKING:
    from analysis.models import StanceSetup

DEFAULT_CONFIG_NAME = "default.toml"
CONFIG_ENV = "LEAKWATCH_CONFIG"

PSEUDONYM_KEY_ENV = "LEAKWATCH_PSEUDONYM_KEY"  # the key of `export --pseudonymize-authors`


def secret_env_vars() -> list[str]:
    """Every environment variable whose value is a secret: each source's, and the pseudonym key."""
    return [name for source in registry.sources() for name in source.secrets] + [PSEUDONYM_KEY_ENV]


class _Section(BaseModel):
    # Unknown keys are errors: a typo must not silently fall back to a default.
    model_config = ConfigDict(extra="forbid")


class WarehouseSettings(_Section):
    path: str = "leakwatch.duckdb"


class Target(_Section):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)


class StanceSettings(_Section):
    model: str = ""
    # Posts per inference batch (length-sorted); larger is a little faster and uses more memory.
    batch_size: int = Field(64, ge=1, le=4096)
    # Inference arithmetic: auto = bfloat16 where the CPU has bf16 instructions, else fp32.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
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
        """The [stance] section as analysis takes it."""
        from analysis.models import StanceSetup

        stance = self.settings.stance
        return StanceSetup(self.models_dir, tuple((t.name, t.description) for t in stance.targets),
                           stance.model, stance.batch_size, stance.precision)

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
