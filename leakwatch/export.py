"""Wiring for `leakwatch export` and the daemon's weekly export: config and registry in, weeks out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from analysis.export import ExportJob, Pseudonymizer, Week, WeekExport
from analysis.export import export_weeks as _export
from collectors import registry

from .config import PSEUDONYM_KEY_ENV, Config, require_env


def post_url_sql() -> str:
    """Each post's own web address, as every registered source builds it from its row."""
    cases = " ".join(f"WHEN '{s.name}' THEN ({s.post_url_sql})" for s in registry.sources())
    return f"CASE p.platform {cases} END" if cases else "NULL"


def export_weeks(
    config: Config,
    weeks: Sequence[Week] | None = None,
    out_dir: Path | None = None,
    pseudonymize: bool | None = None,
    now: datetime | None = None,
    include_deleted: bool = False,
    excel: bool = False,
) -> list[WeekExport]:
    """Export the given weeks, or by default every complete week not exported yet or changed since."""
    if pseudonymize is None:
        pseudonymize = config.settings.export.pseudonymize_authors
    sources = [s for s in registry.sources() if getattr(config.settings, s.name, None) is not None]
    job = ExportJob(
        warehouse_path=config.warehouse_path,
        root=(out_dir or config.export_dir).resolve(),
        now=now or datetime.now(UTC),
        pseudonymizer=Pseudonymizer(require_env(PSEUDONYM_KEY_ENV)) if pseudonymize else None,
        configured_queries={s.name: s.describe_queries(config.source_settings(s.name)) for s in sources},
        intervals={s.name: config.source_settings(s.name).interval_minutes for s in sources},
        post_url_sql=post_url_sql(),
        include_deleted=include_deleted,
        excel=excel,
        bootstrap_samples=config.settings.report.bootstrap_samples,
        seed=config.settings.report.seed,
    )
    return _export(job, weeks)
