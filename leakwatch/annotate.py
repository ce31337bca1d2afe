"""`leakwatch annotate sample|export|import` and `leakwatch validate`: human coding from the terminal."""

from __future__ import annotations

import csv
import io
import random
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import warehouse
from analysis.export.csv_file import write_csv
from warehouse import annotations as store

from .config import Config

CONTEXT_COLUMNS = ["sample_id", "position", "platform", "post_id", "coders_needed", "community", "author_handle",
                   "created_at", "title", "text", "parent_text", "url", "coder"]
KEY_COLUMNS = ("sample_id", "platform", "post_id")


class AnnotateError(warehouse.WarehouseError):
    """A sample, export or import request that cannot be done as asked; one line (or one per problem)."""


def draw_sample(config: Config, kind: str, size: int, since: datetime | None, until: datetime | None,
                seed: int | None, double_fraction: float | None) -> tuple[int, int, int]:
    """Draw and store a sample; returns (sample_id, posts, double-coded posts)."""
    from analysis.sampling import DEFAULT_DOUBLE_FRACTION, active_sample, double_coded, stratified_sample

    if size < 1:
        raise AnnotateError("--size must be at least 1")
    seed = random.SystemRandom().randrange(2**31) if seed is None else seed
    fraction = (DEFAULT_DOUBLE_FRACTION if kind == "random" else 0.0) if double_fraction is None else double_fraction
    if not 0 <= fraction <= 1:
        raise AnnotateError(f"--double-fraction {fraction} must be between 0 and 1")
    targets = config.target_names
    with warehouse.writing(config.warehouse_path) as con:
        warehouse.configure(con, targets, None)
        model_id = warehouse.get_setting(con, "current_model")
        query: dict[str, Any] = {"since": since.isoformat() if since else None,
                                 "until": until.isoformat() if until else None, "size_asked": size,
                                 "excluded": "deleted posts and posts already in a sample"}
        if kind == "random":
            query["strata"] = "ISO week (UTC) x platform, proportional allocation"
            drawn = stratified_sample(store.random_candidates(con, since, until), size, seed)
        else:
            if model_id is None:
                raise AnnotateError("an active sample needs the current model's labels: run `leakwatch classify` first")
            query.update({"ranking": "targets on the same non-none side first, then lowest max probability",
                          "targets": targets})
            drawn = active_sample(store.active_candidates(con, model_id, targets, since, until), size, seed)
        doubles = double_coded(len(drawn), fraction, seed)
        posts = [(platform, post_id, 2 if i in doubles else 1, stratum)
                 for i, (platform, post_id, stratum) in enumerate(drawn)]
        sample_id = store.create_sample(con, kind, seed, model_id, query, fraction, posts)
    return sample_id, len(posts), len(doubles)


def _latest_sample(con: Any) -> int:
    samples = store.list_samples(con)
    if not samples:
        raise AnnotateError("the warehouse has no sample yet; draw one with `leakwatch annotate sample`")
    return samples[-1].sample_id


def export_sample(config: Config, sample_id: int | None, out: Path) -> tuple[int, int]:
    """A CSV of the sample's posts with an empty label column per target; returns (sample_id, rows)."""
    targets = config.target_names
    with warehouse.reading(config.warehouse_path) as con:
        sample_id = sample_id or _latest_sample(con)
        posts = store.sample_posts(con, sample_id)
    rows = [[p.sample_id, p.position, p.platform, p.post_id, p.coders_needed, p.community, p.author_handle,
             p.created_at.isoformat(), p.title or "", p.text, p.parent_text or "",
             p.url, "", *([""] * len(targets))] for p in posts]
    write_csv(out, [*CONTEXT_COLUMNS, *targets], rows)
    return sample_id, len(rows)


def parse_import(text: str, targets: list[str], members: dict[int, set[tuple[str, str]]], default_coder: str | None,
                 guideline: str) -> tuple[list[store.Annotation], list[str]]:
    """Annotations from a coded CSV and every problem found, one line each (line numbers as a
    spreadsheet shows them). Rows with no label at all are not coded yet and are passed over."""
    problems: list[str] = []
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    missing = [c for c in (*KEY_COLUMNS, *targets) if c not in columns]
    if missing:
        problems.append(f"header: missing column(s) {', '.join(missing)}")
    unknown = [c for c in columns if c not in CONTEXT_COLUMNS and c not in targets]
    if unknown:
        problems.append(f"header: unknown target column(s) {', '.join(unknown)} (targets: {', '.join(targets)})")
    if problems:
        return [], problems
    annotations: list[store.Annotation] = []
    seen: dict[tuple[str, str, str, str], int] = {}
    for row in reader:
        line = reader.line_num
        labels = {t: (row.get(t) or "").strip().lower() for t in targets}
        if not any(labels.values()):
            continue
        try:
            sample_id = int((row.get("sample_id") or "").strip())
        except ValueError:
            problems.append(f"line {line}: sample_id {row.get('sample_id')!r} is not a number")
            continue
        platform, post_id = (row.get("platform") or "").strip(), (row.get("post_id") or "").strip()
        coder = (row.get("coder") or "").strip() or default_coder
        if sample_id not in members:
            problems.append(f"line {line}: unknown sample {sample_id}")
            continue
        if (platform, post_id) not in members[sample_id]:
            problems.append(f"line {line}: unknown post {platform} {post_id} (not in sample {sample_id})")
            continue
        if not coder:
            problems.append(f"line {line}: no coder (fill the coder column or pass --coder)")
            continue
        key = (str(sample_id), platform, post_id, coder)
        if key in seen:
            problems.append(f"line {line}: duplicate row for post {platform} {post_id} by {coder} "
                            f"(first on line {seen[key]})")
            continue
        seen[key] = line
        for target, label in labels.items():
            if not label:
                continue
            if label not in store.CODED_LABELS:
                problems.append(f"line {line}: unknown label {label!r} for {target} "
                                f"(use {', '.join(store.CODED_LABELS)})")
                continue
            annotations.append(store.Annotation(platform, post_id, target, label, coder, sample_id, guideline,
                                                "imported from CSV"))
    return annotations, problems


def import_annotations(config: Config, path: Path, default_coder: str | None) -> int:
    """Store the labels of a coded CSV, or nothing at all if any row has a problem."""
    from analysis.validation import guideline_version

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise AnnotateError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise AnnotateError(f"{path} is not UTF-8 text; save it as UTF-8 CSV") from None
    with warehouse.writing(config.warehouse_path) as con:
        members = {s.sample_id: store.known_posts(con, s.sample_id) for s in store.list_samples(con)}
        annotations, problems = parse_import(text, config.target_names, members, default_coder, guideline_version())
        if problems:
            raise AnnotateError(f"{path}: nothing imported, {len(problems)} problem(s):\n"
                                + "\n".join(f"  {path}: {p}" for p in problems))
        return store.store_annotations(con, annotations)


# ------------------------------------------------------------------------------- validate

def validation(config: Config, seed: int = 0) -> dict[str, Any]:
    from analysis.validation import validation_report

    with warehouse.reading(config.warehouse_path) as con:
        return validation_report(con, config.target_names, seed)


def _interval(m: dict[str, Any], name: str) -> str:
    v = m[name]
    return f"{v['value']:.2f} [{v['low']:.2f}, {v['high']:.2f}]"


def print_validation(report: dict[str, Any], console: Console) -> None:
    console.print(f"current model: {report['model_id'] or 'none'}; "
                  f"{report['coded_posts']} posts coded in random samples")
    agreement = Table(title="Agreement between coders (random samples, double-coded posts)", title_justify="left")
    for column in ("target", "posts", "Krippendorff's alpha", "raw agreement"):
        agreement.add_column(column)
    for target, a in report["agreement"].items():
        agreement.add_row(target, str(a["posts"]), "—" if a["alpha"] is None else f"{a['alpha']:.3f}",
                          "—" if a["percent_agreement"] is None else f"{a['percent_agreement']:.0%}")
    console.print(agreement)
    table = Table(title="Model vs human gold labels (95% bootstrap intervals)", title_justify="left")
    for column in ("target", "group", "n", "macro-F1", "F1 favor", "F1 against", "F1 none", "accuracy"):
        table.add_column(column)
    for target, entry in report["model_vs_humans"].items():
        groups = [("all", entry["overall"])] + list(entry["by_platform"].items()) + list(entry["by_month"].items())
        for name, m in groups:
            if not m["n"]:
                table.add_row(target, name, "0", *["—"] * 5)
                continue
            table.add_row(target, name, str(m["n"]), *(_interval(m, k) for k in
                                                        ("macro_f1", "f1_favor", "f1_against", "f1_none", "accuracy")))
    console.print(table)
    for target, entry in report["model_vs_humans"].items():
        m = entry["overall"]
        if m["n"]:
            console.print(f"{target}: confusion (rows human {', '.join(m['labels'])}; columns model): {m['confusion']}")
    console.print(f"{len(report['coder_disagreements'])} coder-vs-coder and {len(report['model_disagreements'])} "
                  "model-vs-human disagreements (see --json or the validation page)")

