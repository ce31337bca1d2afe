"""The one atomic writer of the project: files and folders appear whole under their final name or not at all.

Everything is written under a temporary name beside the final one (`.<name>.<pid>.tmp`) and renamed
into place on success; a failure removes the temporary. A folder replacing a folder swaps in by two
renames (the old one moved aside as `.<name>.old.<pid>.tmp`), so its files change together. A killed
process leaves only temporaries, which `remove_stale_temps` clears on the next run (a live process's
temporaries are left alone).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _temp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temporary path beside `final` to create a file or a folder at; it replaces `final` on success."""
    temp = _temp_name(final)
    _remove(temp)
    try:
        yield temp
        if temp.is_dir() and final.exists():
            _swap_folder(temp, final)
        else:
            os.replace(temp, final)
    except BaseException:
        _remove(temp)
        raise


def _swap_folder(new: Path, final: Path) -> None:
    """Put the folder `new` in place of the folder `final`. os.replace cannot put a folder over a
    folder, so the old one steps aside whole, the new one takes its name whole, and the old one is
    removed: at any moment `final` is the whole old folder, the whole new one, or absent (a kill
    between the two renames; the next run's `remove_stale_temps` clears what is left)."""
    aside = final.with_name(f".{final.name}.old.{os.getpid()}.tmp")
    _remove(aside)
    os.replace(final, aside)
    try:
        os.replace(new, final)
    except BaseException:
        os.replace(aside, final)  # put the old folder back
        raise
    _remove(aside)


@contextmanager
def atomic_file(final: Path) -> Iterator[BinaryIO]:
    """A binary handle whose bytes are synced and renamed into place as `final` on success."""
    with atomic_path(final) as temp, open(temp, "wb") as handle:
        yield handle
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomically(final: Path, text: str) -> None:
    """UTF-8 text, written as is (no newline translation)."""
    with atomic_file(final) as handle:
        handle.write(text.encode("utf-8"))


def remove_stale_temps(folder: Path) -> None:
    """Temporaries of writers that were killed; a live process's own temporaries are left alone."""
    for temp in folder.glob(".*.tmp"):
        pid = temp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        _remove(temp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
