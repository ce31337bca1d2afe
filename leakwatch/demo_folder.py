"""The demo's folder: created by the demo, marked, and only ever wiped when the mark says it is ours.

A rerun of `leakwatch demo` starts from a fresh warehouse, so it deletes its folder first. It may
only delete a folder it created itself: the marker file written at creation holds the SHA-256 of the
leakwatch.toml the demo wrote there. A folder without the marker, `.`, the home folder, or a marked
folder the user changed (an edited leakwatch.toml, a file the demo does not write) is refused with
one line; `--force` wipes a marked folder the user changed, never an unmarked one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from .errors import LeakwatchError

MARKER = ".leakwatch-demo"
CONFIG_NAME = "leakwatch.toml"
DATA_NAME = "leakwatch-data"
# What the demo itself puts in its folder; anything else belongs to the user.
OWN_ENTRIES = {MARKER, CONFIG_NAME, DATA_NAME}


class DemoFolderError(LeakwatchError):
    """The demo's --dir is not a folder the demo may (re)create."""


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _never(folder: Path) -> str | None:
    """Why `folder` may never be wiped, whatever the marker says."""
    home = Path.home().resolve()
    if folder == Path.cwd().resolve():
        return "it is the current folder"
    if folder == home or folder in home.parents:
        return "it is your home folder" if folder == home else "it holds your home folder"
    if folder in Path.cwd().resolve().parents or folder == Path(folder.anchor):
        return "it holds the current folder"
    return None


def _user_changes(folder: Path) -> list[str]:
    """What in a marked folder the demo did not write: an edited config, other files."""
    changes = sorted(entry.name for entry in folder.iterdir() if entry.name not in OWN_ENTRIES)
    try:
        recorded = json.loads((folder / MARKER).read_text(encoding="utf-8")).get("config_sha256")
    except (OSError, ValueError, AttributeError):
        recorded = None
    config = folder / CONFIG_NAME
    if config.is_file() and _sha256(config.read_text(encoding="utf-8", errors="replace")) != recorded:
        changes.insert(0, f"{CONFIG_NAME} (edited since the demo wrote it)")
    return changes


def prepare(folder: Path, config_text: str, force: bool = False) -> Path:
    """Make `folder` a fresh, marked demo folder with `config_text` as its leakwatch.toml.

    Raises DemoFolderError (nothing deleted) when the folder is not the demo's own to wipe."""
    folder = folder.expanduser().resolve()
    reason = _never(folder)
    if reason:
        raise DemoFolderError(f"demo: refusing to use {folder} ({reason}); pick a new folder with --dir")
    if folder.exists():
        if not folder.is_dir():
            raise DemoFolderError(f"demo: {folder} is a file, not a folder; pick a new folder with --dir")
        if any(folder.iterdir()):
            if not (folder / MARKER).is_file():
                raise DemoFolderError(f"demo: {folder} is not empty and was not created by leakwatch demo; "
                                      "nothing deleted; pick a new folder with --dir")
            changes = _user_changes(folder)
            if changes and not force:
                raise DemoFolderError(f"demo: {folder} was changed since the demo created it "
                                      f"({', '.join(changes)}); nothing deleted; --force wipes it, "
                                      "or pick a new folder with --dir")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / CONFIG_NAME).write_text(config_text, encoding="utf-8")
    marker = {"created_by": "leakwatch demo", "config_sha256": _sha256(config_text)}
    (folder / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")
    return folder
