"""The `leakwatch` command line: thin wiring of collectors, warehouse and analysis."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from rich.console import Console

from collectors import registry

from . import sql as sql_mod
from . import status as status_mod
from .config import Config, load_config
from .errors import USER_ERRORS

log = logging.getLogger("leakwatch")


class App:
    """Per-invocation state: the config, loaded on first use so `--help` never needs it."""

    def __init__(self, config_path: str | None, verbose: bool):
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None
        self.console = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


pass_app = click.make_pass_decorator(App)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", metavar="PATH",
              help="Config file (default: $LEAKWATCH_CONFIG, else the shipped default).")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(package_name="leakwatch")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """Follow the discourse about the November 2024 Sora leak on Reddit and Bluesky."""
    from .logs import setup_logging

    setup_logging(verbose)
    ctx.obj = App(config_path, verbose)


def _parse_day(value: str | None, option: str):
    if value is None:
        return None
    from datetime import UTC, datetime

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD or an ISO 8601 time",
                                 param_hint=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@cli.command()
@click.option("--platform", type=click.Choice(registry.names()),
              help="Only this platform (default: every enabled one).")
@click.option("--since", help="Backfill from this date (YYYY-MM-DD, UTC).")
@click.option("--until", help="Collect nothing newer than this date (YYYY-MM-DD, UTC).")
@pass_app
def collect(app: App, platform: str | None, since: str | None, until: str | None) -> int:
    """One incremental collection pass, newest first, stopping at each query's checkpoint."""
    from .collect import make_collector, run_collection

    start, end = _parse_day(since, "--since"), _parse_day(until, "--until")
    if platform:
        summary = run_collection(app.config, make_collector(app.config, platform, start, end), app.err)
        app.console.print(summary.line(), soft_wrap=True)
        return 0 if summary.status == "ok" else 1
    # Every enabled platform is tried, and each reported: one platform's missing credentials or
    # failure does not keep the others from collecting.
    failed = False
    for name in app.config.enabled_sources():
        try:
            summary = run_collection(app.config, make_collector(app.config, name, start, end), app.err)
        except USER_ERRORS as exc:
            click.echo(f"leakwatch: error: {exc}", err=True)
            failed = True
            continue
        app.console.print(summary.line(), soft_wrap=True)
        failed = failed or summary.status != "ok"
    return 1 if failed else 0


@cli.command()
@click.argument("query", required=False)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV instead of a table.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records instead of a table.")
@click.option("--max-rows", default=200, show_default=True, help="Rows shown in table output.")
@click.option("--table", "table_specs", multiple=True, metavar="NAME=PATH",
              help="Read a local .csv, .parquet or .json file as table NAME (repeatable); SQL cannot read files.")
@pass_app
def sql(app: App, query: str | None, as_csv: bool, as_json: bool, max_rows: int,
        table_specs: tuple[str, ...]) -> int:
    """Run read-only SQL on the warehouse; with no QUERY, an interactive prompt."""
    path = app.config.warehouse_path
    tables = dict(sql_mod.parse_table_option(spec) for spec in table_specs)
    if query is None:
        if not sys.stdin.isatty():
            query = sys.stdin.read()
        else:
            return sql_mod.interactive(path, app.console, max_rows, tables)
    for result in sql_mod.run_query(path, query, tables):
        if as_csv:
            sql_mod.write_csv(result)
        elif as_json:
            sql_mod.write_json(result)
        else:
            sql_mod.print_table(result, app.console, max_rows)
    return 0


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status(app: App, as_json: bool) -> int:
    """Counts, schema version, last runs, checkpoints and label coverage."""
    info = status_mod.gather(app.config.warehouse_path)
    if as_json:
        click.echo(json.dumps(info, default=str, indent=1))
    else:
        status_mod.show(info, app.console)
    return 0


def _window(since: str | None, until: str | None):
    from analysis.trends import Window

    start, end = _parse_day(since, "--since"), _parse_day(until, "--until")
    window = Window(start.date() if start else None, end.date() if end else None)
    if window.since and window.until and window.since > window.until:
        raise click.BadParameter(f"--since {since} is after --until {until}", param_hint="--since")
    return window


_PERIOD = click.option("--period", type=click.Choice(["day", "week"]),
                       help="Days or ISO weeks (default: report.period in the config).")
_AUTHORS = click.option("--authors", is_flag=True,
                        help="One vote per author per period (their most frequent label; ties count as none).")
_SINCE = click.option("--since", help="First UTC date (YYYY-MM-DD); weekly figures widen it to its Monday.")
_UNTIL = click.option("--until", help="Last UTC date (YYYY-MM-DD); weekly figures widen it to its Sunday.")


@cli.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for report.html and the PNGs (default: report.dir in the data folder).")
@_SINCE
@_UNTIL
@_PERIOD
@_AUTHORS
@pass_app
def report(app: App, out_dir: Path | None, since: str | None, until: str | None, period: str | None,
           authors: bool) -> int:
    """Stance-over-time plots (PNG) and one self-contained HTML page."""
    from .report import write_report_for

    page = write_report_for(app.config, out_dir, _window(since, until), period, authors, app.err)
    app.console.print(f"report: {page}", soft_wrap=True)
    return 0


@cli.command()
@_PERIOD
@_AUTHORS
@_SINCE
@_UNTIL
@click.option("--target", "targets", multiple=True, help="Only this target (repeatable).")
@click.option("--platform", "platforms", multiple=True, type=click.Choice([*registry.names(), "all"]),
              help="Only this platform; 'all' is every platform together (repeatable).")
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV with every column.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records with every column.")
@pass_app
def trends(app: App, period: str | None, authors: bool, since: str | None, until: str | None,
           targets: tuple[str, ...], platforms: tuple[str, ...], as_csv: bool, as_json: bool) -> int:
    """Stance shares per period, target and platform, as classified and adjusted for classifier errors."""
    from .report import print_trends

    print_trends(app.config, _window(since, until), period, authors, list(targets), list(platforms),
                 "csv" if as_csv else "json" if as_json else "table", app.console, app.err)
    return 0


@cli.command()
@click.option("--once", is_flag=True, help="Run every job once (collect → classify per platform, export) and exit.")
@pass_app
def run(app: App, once: bool) -> int:
    """The scheduler daemon: collect and label on intervals, export weekly. SIGTERM stops it cleanly."""
    from .daemon import run_daemon
    from .logs import add_file_logging

    add_file_logging(app.config.log_path, app.verbose)
    code = run_daemon(app.config, once, app.err)
    if code and once:
        click.echo(f"leakwatch: error: run --once: a job failed (details above and in {app.config.log_path})",
                   err=True)
    return code


@cli.command()
@click.option("--week", "weeks", multiple=True, metavar="YYYY-Www",
              help="Export this ISO week (repeatable). Default: every complete week not yet exported "
                   "or whose labels changed since.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the week folders (default: export.dir in the data folder).")
@click.option("--pseudonymize-authors", is_flag=True,
              help="Replace author ids and handles with a keyed hash (key: $LEAKWATCH_PSEUDONYM_KEY).")
@click.option("--excel", is_flag=True, help="UTF-8 with a byte-order mark, so Excel shows non-English text.")
@click.option("--include-deleted", is_flag=True,
              help="Keep the title and text of posts deleted upstream (left out by default, per platform terms).")
@pass_app
def export(app: App, weeks: tuple[str, ...], out_dir: Path | None, pseudonymize_authors: bool, excel: bool,
           include_deleted: bool) -> int:
    """Weekly CSV exports: posts.csv, stance_daily.csv and manifest.json per ISO week."""
    from analysis.export import Week

    from .export import export_weeks

    chosen = [Week.parse(w) for w in weeks] or None
    done = export_weeks(app.config, chosen, out_dir, pseudonymize_authors or None,
                        include_deleted=include_deleted, excel=excel)
    for week in done:
        app.console.print(week.line())
    if not done:
        app.console.print("nothing to export: every complete week is already exported and unchanged")
    return 0


@cli.command()
@click.option("--data", "data_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled CSV (id,platform,text and a column per target; optional split). "
                   "Default: the bundled dataset.")
@click.option("--epochs", type=click.IntRange(1, 100), default=None, help="Training epochs.")
@click.option("--seed", type=int, default=None, help="Random seed (same seed, same model).")
@click.option("--limit", type=click.IntRange(1), default=None,
              help="Train on the first N training examples only (a quick smoke run).")
@click.option("--with-annotations", is_flag=True,
              help="Add the posts people coded in active samples (never the random validation samples).")
@click.option("--teacher", metavar="llm:MODEL",
              help="Distil: this LLM labels a stratified sample of the warehouse, added to the training data.")
@click.option("--sample", type=click.IntRange(1), default=1000, show_default=True,
              help="With --teacher: posts the teacher labels (stratified by ISO week and platform).")
@click.option("--base", default=None, metavar="PATH_OR_HUB_ID",
              help="Encoder to fine-tune: a local folder or a Hugging Face hub id "
                   "(default: the bundled MiniLM, offline).")
@click.option("--layers", type=click.IntRange(1, 48), default=None, metavar="N",
              help="Keep only the encoder's lowest N layers: fewer label faster, more score higher "
                   "(default: 3 of the bundled MiniLM's 6, all layers of a --base encoder).")
@click.option("--force", is_flag=True, help="Train again even if this model is in the data folder or user cache.")
@click.option("--set-current", is_flag=True,
              help="Make the new model current even if it scores lower on validation than the current one.")
@pass_app
def train(app: App, data_csv: Path | None, epochs: int | None, seed: int | None, limit: int | None,
          with_annotations: bool, teacher: str | None, sample: int, base: str | None,
          layers: int | None, force: bool, set_current: bool) -> int:
    """Fine-tune an encoder (by default the bundled MiniLM, offline) into a stance classifier."""
    app.config  # a config problem is said before seconds of importing torch  # noqa: B018
    from analysis.train import HyperParameters

    from .training import choose_current, print_evaluation, train_or_reuse

    defaults = HyperParameters()
    hp = HyperParameters(epochs=epochs or defaults.epochs, seed=defaults.seed if seed is None else seed,
                         limit=limit, encoder_layers=layers if layers is not None else
                         defaults.encoder_layers if base is None else None)  # a --base encoder: all its layers
    if teacher:
        from .distill import print_distillation, run_distillation

        distilled = run_distillation(app.config, app.err, teacher, sample, hp, data_csv)
        print_distillation(app.console, distilled)
        card, how = distilled.trained.card, "trained"
    else:
        card, how = train_or_reuse(app.config, app.err, hp, data_csv, force, with_annotations, base)
    model_id = card["model_id"]
    test = card.get("metrics", {}).get("test") or {}
    if test:
        print_evaluation(app.console, model_id, test)
    if how == "trained":
        click.echo(f"train: saved {model_id} in {card['training_seconds']:.0f}s "
                   f"(epoch {card['selected_epoch']} of {hp.epochs} chosen on validation)")
    else:
        where = "in this data folder" if how == "here" else "in the user cache"
        click.echo(f"train: reused {model_id} {where}: same data and settings give the same model "
                   "(--force trains it again)")
    selection, weak = choose_current(app.config, model_id, set_current)
    click.echo(f"train: {selection.reason}" + ("; run `leakwatch classify` to label with it" if selection.selected
                                                 and selection.previous != model_id else ""))
    if weak:
        scores = ", ".join(f"{t} {f1:.3f}" for t, f1 in weak.items())
        app.err.print(f"warning: {model_id} is a low-quality model (validation macro-F1 {scores}, below 0.5): "
                      "its labels and adjusted shares are unreliable")
    return 0


@cli.group()
def model() -> None:
    """The stance models of this warehouse: list them, choose the current one."""


@model.command("list")
@pass_app
def model_list(app: App) -> int:
    """Every model: id, created, base weights, validation and test macro-F1 per target; * marks the current."""
    from .models import print_models

    print_models(app.config, app.console)
    return 0


@model.command("use")
@click.argument("model_id")
@pass_app
def model_use(app: App, model_id: str) -> int:
    """Make MODEL_ID current (from this warehouse, its models folder or the user cache)."""
    from .models import use_model

    app.console.print(use_model(app.config, model_id), soft_wrap=True)
    return 0


@cli.command()
@click.option("--model", help="A model_id, or nli:<Hugging Face model id or folder> (default: stance.model).")
@click.option("--relabel", is_flag=True, help="Label every post again with the current model.")
@pass_app
def classify(app: App, model: str | None, relabel: bool) -> int:
    """Label posts that have no label from the current model, or whose text changed."""
    from .classify import run_classification

    summary = run_classification(app.config, app.err, relabel=relabel, model=model)
    click.echo(summary.line())
    return 0


@cli.command()
@click.option("--data", "data_csv", type=click.Path(dir_okay=False, path_type=Path),
              help="Labelled CSV with the dataset's columns (default: the bundled dataset's test split).")
@click.option("--model", help="A model_id or nli:<model> (default: stance.model, else the newest).")
@click.option("--split", type=click.Choice(["train", "validation", "test"]),
              help="Only rows of this split (default: test for the bundled data, every row of --data).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@pass_app
def evaluate(app: App, data_csv: Path | None, model: str | None, split: str | None, as_json: bool) -> int:
    """Per-target macro-F1 (favor, against), accuracy and confusion matrix; stored on the model."""
    from .training import print_evaluation, run_evaluation

    model_id, metrics = run_evaluation(app.config, app.err, data_csv, model, split)
    if as_json:
        click.echo(json.dumps({"model_id": model_id, "metrics": metrics}, indent=1))
    else:
        print_evaluation(app.console, model_id, metrics)
    return 0


@cli.command()
@click.option("--dir", "demo_dir", default="leakwatch-demo", show_default=True,
              type=click.Path(path_type=Path),
              help="Folder for the demo's data: a new or empty one, or one an earlier demo created.")
@click.option("--force", is_flag=True,
              help="Wipe an earlier demo's folder even if you changed it (never a folder the demo did not create).")
@pass_app
def demo(app: App, demo_dir: Path, force: bool) -> int:
    """The whole pipeline offline on sample data: a fresh warehouse in DIR."""
    from .demo import run_demo

    return run_demo(demo_dir, app.console, force)


@cli.group()
def annotate() -> None:
    """Human coding samples: draw one, export it to CSV, import coded CSV back."""


@annotate.command("sample")
@click.option("--size", type=click.IntRange(1), required=True, help="Posts to draw.")
@click.option("--kind", type=click.Choice(["random", "active"]), default="random", show_default=True,
              help="random: stratified by ISO week x platform, for validation (never trained on); "
                   "active: where the current model is least sure, for training.")
@_SINCE
@_UNTIL
@click.option("--seed", type=int, help="Random seed (stored with the sample; default: a fresh one).")
@click.option("--double-fraction", type=float,
              help="Share of posts assigned to two coders (default: 0.2 for random, 0 for active).")
@pass_app
def annotate_sample(app: App, size: int, kind: str, since: str | None, until: str | None, seed: int | None,
                    double_fraction: float | None) -> int:
    """Draw a sample of posts for people to code."""
    from .annotate import draw_sample

    sample_id, drawn, doubles = draw_sample(app.config, kind, size, _parse_day(since, "--since"),
                                            _parse_day(until, "--until"), seed, double_fraction)
    app.console.print(f"sample {sample_id}: {drawn} posts ({kind}), {doubles} assigned to two coders")
    return 0


@annotate.command("export")
@click.option("--sample", "sample_id", type=int, help="Sample id (default: the newest).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="CSV file to write.")
@pass_app
def annotate_export(app: App, sample_id: int | None, out: Path) -> int:
    """Write a sample's posts to CSV with an empty label column per target."""
    from .annotate import export_sample

    sample_id, rows = export_sample(app.config, sample_id, out)
    app.console.print(f"sample {sample_id}: {rows} posts written to {out}", soft_wrap=True)
    return 0


@annotate.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--coder", help="Coder name for rows whose coder column is empty.")
@pass_app
def annotate_import(app: App, csv_file: Path, coder: str | None) -> int:
    """Store the labels of a coded CSV; nothing is stored if any row has a problem."""
    from .annotate import import_annotations

    stored = import_annotations(app.config, csv_file, coder)
    app.console.print(f"imported {stored} annotations from {csv_file}", soft_wrap=True)
    return 0


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed.")
@pass_app
def validate(app: App, as_json: bool, seed: int) -> int:
    """Agreement between coders and the current model against human labels of the random samples."""
    from .annotate import print_validation, validation

    report = validation(app.config, seed)
    if as_json:
        click.echo(json.dumps(report, indent=1, default=str))
    else:
        print_validation(report, app.console)
    return 0


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs $LEAKWATCH_SERVE_TOKEN.")
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@pass_app
def serve(app: App, host: str, port: int) -> int:
    """The local web app: code posts, see agreement and validation."""
    from .serve import run_server

    return run_server(app.config, host, port, app.console)


def main() -> None:
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("leakwatch: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except USER_ERRORS as exc:
        click.echo(f"leakwatch: error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("leakwatch: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # the last line of defence: one line, details only with -v
        log.debug("unexpected error", exc_info=True)
        click.echo(f"leakwatch: unexpected error: {type(exc).__name__}: {exc} (run with -v for details)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
