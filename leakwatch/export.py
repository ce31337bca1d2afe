"""Weekly CSV exports: one folder per ISO week with posts.csv, stance_daily.csv and manifest.json.

Exports only read the warehouse. Every file is written under a temporary name in the week's folder
and renamed into place, the manifest last, so a killed export never leaves a partial file under a
final name. Output is deterministic: the same warehouse state gives byte-identical files.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import duckdb

import warehouse
from analysis.errors import ExportError

from .config import Config, require_env

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
PSEUDONYM_KEY_ENV = "LEAKWATCH_PSEUDONYM_KEY"
# Test hook: seconds to pause after the first row of each file is on disk, so a test can kill the
# export mid-write and check that no partial file appears under a final name.
PAUSE_ENV = "LEAKWATCH_EXPORT_TEST_PAUSE"

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
# What a spreadsheet would read as a formula (OWASP "CSV injection"); tab and CR too.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FETCH_BATCH = 5000


@dataclass(frozen=True)
class Week:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Week:
        match = _WEEK.match(text.strip())
        if not match:
            raise ExportError(f"week {text!r} is not an ISO week; write it like 2024-W48")
        year, number = int(match.group(1)), int(match.group(2))
        try:
            date.fromisocalendar(year, number, 1)
        except ValueError:
            raise ExportError(f"week {text!r} does not exist: {year} has no ISO week {number}") from None
        return cls(year, number)

    @classmethod
    def containing(cls, moment: datetime) -> Week:
        year, number, _ = moment.astimezone(UTC).isocalendar()
        return cls(year, number)

    @property
    def start(self) -> datetime:
        return datetime.combine(date.fromisocalendar(self.year, self.number, 1), datetime.min.time(), UTC)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=7)

    def __str__(self) -> str:
        return f"{self.year}-W{self.number:02d}"


@dataclass
class WeekExport:
    week: Week
    folder: Path
    posts: int
    daily_rows: int
    complete: bool

    def summary(self) -> str:
        note = "" if self.complete else " (week not over yet: partial)"
        return f"{self.week}: {self.posts} posts, {self.daily_rows} daily stance rows{note}"

    def line(self) -> str:
        return f"{self.summary()} → {self.folder}"


# -- cells --------------------------------------------------------------------------------------------
def _timestamp(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def neutralize(text: str) -> str:
    """Make a text cell inert in spreadsheets: a leading quote stops formula evaluation."""
    return "'" + text if text.startswith(_FORMULA_START) else text


def _cell(value: Any) -> str:
    """One CSV cell. Only text is neutralized: numbers (a negative score) stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return _timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return neutralize("; ".join(str(v) for v in value))
    return neutralize(str(value))


class Pseudonymizer:
    """A keyed hash (HMAC-SHA256) of author ids and handles: stable across weeks, not reversible."""

    def __init__(self, key: str):
        self._key = key.encode()

    def __call__(self, value: str | None) -> str | None:
        if value is None:
            return None
        return "anon-" + hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:20]


# -- atomic files -------------------------------------------------------------------------------------
def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def _remove_stale_temps(folder: Path) -> None:
    """Temp files of exports that were killed; a live process's own temps are left alone."""
    for temp in folder.glob(".*.tmp"):
        pid = temp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        temp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _HashingWriter:
    """A text sink that counts the SHA-256 of the UTF-8 bytes it writes."""

    def __init__(self, handle):
        self.handle = handle
        self.sha = hashlib.sha256()

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self.sha.update(data)
        return self.handle.write(data)


@contextmanager
def _atomic_binary(final: Path) -> Iterator[BinaryIO]:
    """A handle on a temp file beside `final`: synced and renamed into place on success, removed
    on any failure, so `final` is either the whole new file or untouched."""
    temp = _temp_name(final)
    try:
        with open(temp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, final)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_csv_atomically(final: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> tuple[int, str]:
    """Write rows as RFC 4180 CSV (CRLF, minimal quoting), rename into place; return (rows, sha256)."""
    pause = float(os.environ.get(PAUSE_ENV) or 0)
    count = 0
    with _atomic_binary(final) as handle:
        sink = _HashingWriter(handle)
        writer = csv.writer(sink, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
            count += 1
            if count == 1 and pause:
                handle.flush()
                time.sleep(pause)
    return count, sink.sha.hexdigest()


def write_text_atomically(final: Path, text: str) -> None:
    with _atomic_binary(final) as handle:
        handle.write(text.encode("utf-8"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# -- queries ------------------------------------------------------------------------------------------
_POST_COLUMNS = [
    "platform", "post_id", "kind", "thread_id", "parent_id", "community", "author_id", "author_handle",
    "created_at", "language", "url", "title", "text", "score", "like_count", "reply_count",
    "repost_count", "quote_count", "edited", "deleted", "matched_queries",
]


def _batches(cursor: duckdb.DuckDBPyConnection) -> Iterator[tuple[Any, ...]]:
    while rows := cursor.fetchmany(_FETCH_BATCH):
        yield from rows


def _week_states(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    """Per ISO week with posts: what its export depends on (posts, current-model labels)."""
    rows = con.execute(
        """
        WITH label_counts AS (
            SELECT platform, post_id, count(*) AS labels, max(labelled_at) AS last_labelled_at
            FROM labels WHERE model_id = (SELECT value FROM settings WHERE key = 'current_model')
            GROUP BY ALL
        )
        SELECT strftime(p.created_at, '%G-W%V') AS week, count(*) AS posts,
               coalesce(sum(l.labels), 0) AS labels, max(l.last_labelled_at) AS last_labelled_at
        FROM posts p LEFT JOIN label_counts l USING (platform, post_id)
        GROUP BY week ORDER BY week
        """
    ).fetchall()
    return {
        week: {"posts": posts, "labels": int(labels),
               "last_labelled_at": _timestamp(last) if last else None}
        for week, posts, labels, last in rows
    }


def _stored_state(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        return manifest.get("source_state")
    except (OSError, ValueError, AttributeError):
        return None


def _collection_facts(con: duckdb.DuckDBPyConnection, config: Config, week: Week, now: datetime) -> dict[str, Any]:
    """Runs during the week that failed, were interrupted or hit a result cap, and schedule gaps."""
    params = [week.start, week.end]
    problems = con.execute(
        """SELECT run_id, platform, status, started_at, finished_at, caps_hit, error FROM runs
           WHERE started_at >= ? AND started_at < ? AND (status IN ('failed', 'interrupted') OR caps_hit > 0)
           ORDER BY run_id""",
        params,
    ).fetchall()
    failed = [
        {"run_id": r[0], "platform": r[1], "status": r[2], "started_at": _timestamp(r[3]), "error": r[6]}
        for r in problems if r[2] in ("failed", "interrupted")
    ]
    caps = [
        {"run_id": r[0], "platform": r[1], "started_at": _timestamp(r[3]), "caps_hit": r[5]}
        for r in problems if r[5] > 0
    ]
    counts = con.execute(
        """SELECT platform, status, count(*) FROM runs WHERE started_at >= ? AND started_at < ?
           GROUP BY ALL ORDER BY ALL""",
        params,
    ).fetchall()
    runs: dict[str, dict[str, int]] = {}
    for platform, status, n in counts:
        runs.setdefault(platform, {})[status] = n
    return {
        "runs": runs,
        "failed_runs": failed,
        "caps_hit": caps,
        "gaps": _schedule_gaps(con, config, week, now),
    }


def _schedule_gaps(con: duckdb.DuckDBPyConnection, config: Config, week: Week, now: datetime) -> list[dict[str, Any]]:
    """Stretches of the week longer than twice a platform's interval without a successful run.

    Only the part of the week after the platform's first run counts: posts of earlier weeks came in
    by backfill, which a schedule gap says nothing about.
    """
    gaps = []
    for platform in ("reddit", "bluesky"):
        settings = getattr(config.settings, platform)
        first = con.execute("SELECT min(started_at) FROM runs WHERE platform = ?", [platform]).fetchone()[0]
        if first is None:
            continue
        window_start, window_end = max(week.start, first), min(week.end, now)
        if window_end <= window_start:
            continue
        finished = [
            row[0] for row in con.execute(
                "SELECT finished_at FROM runs WHERE platform = ? AND status = 'ok' AND finished_at >= ? "
                "AND finished_at < ? ORDER BY finished_at",
                [platform, window_start, window_end],
            ).fetchall()
        ]
        allowed = timedelta(minutes=2 * settings.interval_minutes)
        edges = [window_start, *finished, window_end]
        for before, after in zip(edges, edges[1:], strict=False):
            if after - before > allowed:
                gaps.append({"platform": platform, "from": _timestamp(before), "to": _timestamp(after),
                             "hours": round((after - before).total_seconds() / 3600, 2)})
    return gaps


def _query_set(con: duckdb.DuckDBPyConnection, config: Config, week: Week) -> dict[str, Any]:
    settings = config.settings
    used = con.execute(
        "SELECT DISTINCT platform, unnest(queries) AS q FROM runs WHERE started_at >= ? AND started_at < ? "
        "ORDER BY ALL",
        [week.start, week.end],
    ).fetchall()
    return {
        "configured": {
            "reddit": {"queries": list(settings.reddit.queries), "subreddits": list(settings.reddit.subreddits)},
            "bluesky": {"queries": list(settings.bluesky.queries)},
        },
        "run_query_keys": [f"{platform}:{key}" for platform, key in used],
    }


# -- one week -----------------------------------------------------------------------------------------
def _export_week(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    week: Week,
    root: Path,
    state: dict[str, Any],
    pseudonymizer: Pseudonymizer | None,
    now: datetime,
) -> WeekExport:
    folder = root / str(week)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(folder)
    targets = warehouse.get_targets(con)
    model_id = warehouse.get_setting(con, "current_model")

    label_columns = [c for t in targets for c in (t, f"{t}_confidence")]
    select = ", ".join([f"p.{c}" for c in _POST_COLUMNS] + [f"pl.{c}" for c in label_columns])
    cursor = con.execute(
        f"""SELECT {select} FROM posts p LEFT JOIN posts_labeled pl USING (platform, post_id)
            WHERE p.created_at >= ? AND p.created_at < ? ORDER BY p.created_at, p.platform, p.post_id""",
        [week.start, week.end],
    )
    rows: Iterable[tuple[Any, ...]] = _batches(cursor)
    if pseudonymizer is not None:
        id_at, handle_at = _POST_COLUMNS.index("author_id"), _POST_COLUMNS.index("author_handle")
        rows = (
            (*r[:id_at], pseudonymizer(r[id_at]), pseudonymizer(r[handle_at]), *r[handle_at + 1:]) for r in rows
        )
    posts_count, posts_sha = write_csv_atomically(folder / "posts.csv", _POST_COLUMNS + label_columns, rows)

    cursor = con.execute(
        "SELECT * FROM stance_daily WHERE period >= ? AND period < ? ORDER BY period, target, platform",
        [week.start.date(), week.end.date()],
    )
    daily_header = [d[0] for d in cursor.description]
    daily_count, daily_sha = write_csv_atomically(folder / "stance_daily.csv", daily_header, _batches(cursor))

    manifest = {
        "format_version": FORMAT_VERSION,
        "week": str(week),
        "period": {"start": _timestamp(week.start), "end": _timestamp(week.end)},
        "complete": state["complete"],
        "model_id": model_id,
        "targets": targets,
        "authors": "pseudonymized (HMAC-SHA256, keyed)" if pseudonymizer else "as collected",
        "files": {
            "posts.csv": {"rows": posts_count, "sha256": posts_sha},
            "stance_daily.csv": {"rows": daily_count, "sha256": daily_sha},
        },
        "query_set": _query_set(con, config, week),
        "collection": _collection_facts(con, config, week, now),
        "source_state": state,
    }
    # The manifest goes last: its presence says the week's files are whole.
    write_text_atomically(folder / MANIFEST_NAME,
                          json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return WeekExport(week, folder, posts_count, daily_count, state["complete"])


def export_weeks(
    config: Config,
    weeks: Sequence[Week] | None = None,
    out_dir: Path | None = None,
    pseudonymize: bool | None = None,
    now: datetime | None = None,
) -> list[WeekExport]:
    """Export the given weeks, or by default every complete week not exported yet or changed since."""
    now = now or datetime.now(UTC)
    root = (out_dir or config.export_dir).resolve()
    if pseudonymize is None:
        pseudonymize = config.settings.export.pseudonymize_authors
    pseudonymizer = Pseudonymizer(require_env(PSEUDONYM_KEY_ENV)) if pseudonymize else None
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create export folder {root}: {exc.strerror}") from None

    done: list[WeekExport] = []
    with warehouse.reading(config.warehouse_path) as con:
        states = _week_states(con)
        if weeks is None:
            chosen = []
            for name, state in states.items():
                week = Week.parse(name)
                if week.end > now:
                    continue  # not over yet
                full_state = {**state, "complete": True, "pseudonymized": pseudonymize}
                if _stored_state(root / name) != full_state:
                    chosen.append((week, full_state))
        else:
            empty = {"posts": 0, "labels": 0, "last_labelled_at": None}
            chosen = [
                (week, {**states.get(str(week), empty), "complete": week.end <= now, "pseudonymized": pseudonymize})
                for week in sorted(set(weeks), key=lambda w: (w.year, w.number))
            ]
        for week, state in chosen:
            try:
                done.append(_export_week(con, config, week, root, state, pseudonymizer, now))
            except OSError as exc:
                raise ExportError(f"cannot write export of {week} in {root}: {exc.strerror or exc}") from None
    return done
