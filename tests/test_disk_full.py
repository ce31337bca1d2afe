"""A full disk is reported as what it is (no space left on device), not as the failed rollback after it.

Honest ENOSPC: the warehouse lives on a real 3 MB tmpfs that a filler file fills up. Mounting needs
root (or CAP_SYS_ADMIN); where that is refused the test is skipped and says so.
"""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime

import pytest

import warehouse
from warehouse.records import Page, Post


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(folder) -> None:
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"x" * 4096)
    except OSError as exc:
        assert exc.errno == 28  # ENOSPC
    finally:
        os.close(fd)


def test_full_disk_reports_no_space_left_and_keeps_the_warehouse_whole(tiny_disk):
    path = tiny_disk / "leakwatch.duckdb"
    with warehouse.writing(path) as con:
        run_id = warehouse.start_run(con, "reddit", ["q"])
    fill(tiny_disk)
    posts = [Post("reddit", f"t3_{i}", "submission", datetime(2024, 11, 26, tzinfo=UTC), "words " * 300)
             for i in range(3000)]
    with pytest.raises(warehouse.WarehouseError) as caught, warehouse.writing(path) as con:
        warehouse.commit_page(con, run_id, Page("reddit", "q", posts))
    message = str(caught.value)
    assert "No space left on device" in message and "cannot rollback" not in message, message
    assert "\n" not in message

    (tiny_disk / "filler").unlink()  # room again: the page left nothing behind, the run row is there
    with warehouse.reading(path) as con:
        assert con.execute("SELECT count(*) FROM posts").fetchone() == (0,)
        assert con.execute("SELECT pages, status FROM runs WHERE run_id = ?", [run_id]).fetchone() == (0, "running")
