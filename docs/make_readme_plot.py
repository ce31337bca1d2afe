"""Regenerate docs/stance_openai.png, the README's example plot, from synthetic demo-like data.

    .venv/bin/python docs/make_readme_plot.py

The data are made up (tests/trends_data.py: a month of posts with spikes on the leak and release
days and a confusion matrix for the model); the plot is drawn by the same code as `leakwatch report`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from trends_data import demo_like, metrics, new_warehouse  # noqa: E402

from analysis import report  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    con = new_warehouse(Path(tmp) / "w.duckdb", metrics())
    demo_like(con, scale=4)
    data = report.gather(con, period="day", key_dates=[(date(2024, 11, 26), "Sora leak"),
                                                       (date(2024, 12, 9), "Sora public release")])
    page = report.write_report(data, Path(tmp) / "report")
    shutil.copy(page.parent / "stance_openai.png", ROOT / "docs" / "stance_openai.png")
    con.close()
print(ROOT / "docs" / "stance_openai.png")
