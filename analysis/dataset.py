"""The project's labelled stance dataset: validation, the fixed split, and loading.

The hand-written parts (`analysis/data/parts/stance_part_*.csv`, columns `id,platform,text` and one
label column per target) are merged into `analysis/data/stance_dataset.csv` with a `split` column.
The split comes from a stable hash of each row's id, so it never changes when rows are added or
reordered. Rebuild it with `python -m analysis.dataset`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sys
from dataclasses import dataclass
from pathlib import Path

from warehouse.records import LABELS

from .atomic import write_text_atomically
from .errors import DatasetError

SPLITS: tuple[str, ...] = ("train", "validation", "test")
DATA_DIR = Path(__file__).resolve().parent / "data"
PARTS_DIR = DATA_DIR / "parts"
DATASET_PATH = DATA_DIR / "stance_dataset.csv"
DATASET_TARGETS: tuple[str, ...] = ("openai", "artists")
_PART_COLUMNS = ["id", "platform", "text", *DATASET_TARGETS]
# The hand-written parts, in merge order (d: sarcastic and "both sides are bad" posts about OpenAI;
# e: whose side a post is on, not its tone, per the polarity rules; f: contrastive pairs, longer posts;
# g: off-topic posts that only share a search word, AI-adjacent and neutral posts, and hard contrasts:
# see parts/stance_part_g.md; parts/meta_part_g.csv gives each row's group).
PART_NAMES: tuple[str, ...] = ("a", "b", "c", "d", "e", "f", "g")
# Percent of ids in train and validation; the rest is test.
_TRAIN_PERCENT, _VALIDATION_PERCENT = 70, 15


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    labels: dict[str, str]  # target -> favor | against | none
    split: str | None = None
    platform: str | None = None


@dataclass(frozen=True)
class LabelledData:
    examples: list[Example]
    targets: list[str]
    source: str  # where the rows came from, for model cards and metrics
    sha256: str  # of the file's bytes

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]

    def texts(self, examples: list[Example] | None = None) -> list[str]:
        return [e.text for e in (self.examples if examples is None else examples)]


def split_of(example_id: str) -> str:
    """The fixed split of an id: a stable hash, so the split never depends on row order."""
    bucket = int(hashlib.sha256(example_id.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < _TRAIN_PERCENT:
        return "train"
    if bucket < _TRAIN_PERCENT + _VALIDATION_PERCENT:
        return "validation"
    return "test"


def read_labelled_csv(path: str | Path, targets: list[str], require_split: bool = False) -> LabelledData:
    """Read a CSV with `text` and one label column per target; every problem names file and line."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"labelled data {path} does not exist") from None
    except OSError as exc:
        raise DatasetError(f"cannot read labelled data {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{path} is not UTF-8 text; save it as UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    needed = ["text", *targets] + (["split"] if require_split else [])
    missing = [c for c in needed if c not in columns]
    if missing:
        raise DatasetError(
            f"{path}: missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(found: {', '.join(columns) or 'no header'}); expected id,platform,text,{','.join(targets)}"
        )
    examples: list[Example] = []
    seen: set[str] = set()
    try:
        for row in reader:
            line = reader.line_num
            if None in row or any(row.get(c) is None for c in needed):
                raise DatasetError(f"{path}, line {line}: wrong number of fields (check the quoting)")
            example_id = (row.get("id") or "").strip() or f"line{line}"
            if example_id in seen:
                raise DatasetError(f"{path}, line {line}: duplicate id {example_id!r}")
            seen.add(example_id)
            if not row["text"].strip():
                raise DatasetError(f"{path}, line {line}: empty text")
            labels = {}
            for target in targets:
                label = row[target].strip().lower()
                if label not in LABELS:
                    raise DatasetError(
                        f"{path}, line {line}: {target} label {row[target]!r} is not one of {', '.join(LABELS)}"
                    )
                labels[target] = label
            split = row.get("split")
            if require_split and split not in SPLITS:
                raise DatasetError(f"{path}, line {line}: split {split!r} is not one of {', '.join(SPLITS)}")
            examples.append(Example(example_id, row["text"], labels, split, row.get("platform")))
    except csv.Error as exc:
        raise DatasetError(f"{path}, line {reader.line_num}: malformed CSV: {exc}") from None
    if not examples:
        raise DatasetError(f"{path} has a header but no rows")
    return LabelledData(examples, list(targets), str(path), hashlib.sha256(raw).hexdigest())


def load_dataset(targets: list[str] | None = None) -> LabelledData:
    """The project's dataset with its fixed split; every requested target must be labelled in it."""
    targets = list(targets or DATASET_TARGETS)
    unknown = [t for t in targets if t not in DATASET_TARGETS]
    if unknown:
        raise DatasetError(
            f"the bundled dataset has no labels for target{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (it labels {', '.join(DATASET_TARGETS)}); "
            "train with --data on a CSV that has a column per target"
        )
    data = read_labelled_csv(DATASET_PATH, targets, require_split=True)
    return LabelledData(data.examples, targets, "analysis/data/stance_dataset.csv", data.sha256)


def build_dataset(parts_dir: Path = PARTS_DIR, out: Path = DATASET_PATH, expected_rows: int | None = 420,
                  part_names: tuple[str, ...] = PART_NAMES) -> int:
    """Merge and validate the parts into the split dataset file; returns the number of rows.

    Exactly the listed parts, in order: a missing one, or a stray stance_part_*.csv (a draft not
    yet reviewed), is an error rather than a silently different dataset."""
    parts = [parts_dir / f"stance_part_{name}.csv" for name in part_names]
    missing = [p.name for p in parts if not p.is_file()]
    if missing:
        raise DatasetError(f"{parts_dir}: missing {', '.join(missing)}")
    stray = sorted(p.name for p in parts_dir.glob("stance_part_*.csv") if p not in parts)
    if stray:
        raise DatasetError(
            f"{parts_dir}: {', '.join(stray)} not in the dataset's parts list "
            f"({', '.join(part_names)}); add it to PART_NAMES in analysis/dataset.py or move it away"
        )
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for part in parts:
        data = read_labelled_csv(part, list(DATASET_TARGETS))
        if expected_rows is not None and len(data.examples) != expected_rows:
            raise DatasetError(f"{part} has {len(data.examples)} rows, expected {expected_rows}")
        for e in data.examples:
            if e.id in seen:
                raise DatasetError(f"{part}: id {e.id!r} also appears in an earlier part")
            # The platform whose style the example imitates: a platform name (data, not a fixed list).
            if not e.platform or not e.platform.isidentifier() or e.platform != e.platform.lower():
                raise DatasetError(f"{part}: id {e.id!r} has platform {e.platform!r}")
            seen.add(e.id)
            rows.append({"id": e.id, "platform": e.platform or "", "text": e.text, **e.labels, "split": split_of(e.id)})
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=[*_PART_COLUMNS, "split"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomically(out, buffer.getvalue())
    return len(rows)


def main() -> int:
    try:
        count = build_dataset()
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    data = load_dataset()
    sizes = ", ".join(f"{s} {len(data.split(s))}" for s in SPLITS)
    print(f"wrote {DATASET_PATH} ({count} rows: {sizes}; sha256 {data.sha256[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
