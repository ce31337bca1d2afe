"""Output that fits the terminal (issue 13.4): sql, status and trends at 80 and 120 columns, through
the command line on the demo's warehouse; piped output carries no progress-bar blank lines."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import cli_env


def leakwatch(demo_run, columns: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env({"COLUMNS": str(columns), "HF_HUB_OFFLINE": "1", "LEAKWATCH_CACHE_DIR": str(demo_run.cache)})
    result = subprocess.run([sys.executable, "-m", "leakwatch", "--config", str(demo_run.folder / "leakwatch.toml"),
                             *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


@pytest.mark.parametrize("columns", [80, 120])
def test_select_star_from_posts_switches_to_records_that_fit(demo_run, columns: int):
    out = leakwatch(demo_run, columns, "sql", "SELECT * FROM posts LIMIT 5").stdout
    assert widest(out) <= columns
    assert out.count("-[ row ") == 5 and "5 rows" in out
    # Every column is there, one line each, named in full.
    assert re.search(r"^post_id +\| ", out, re.M) and re.search(r"^matched_queries +\| ", out, re.M)
    assert "--csv or --json print them whole" in out


def test_a_narrow_query_stays_a_table(demo_run):
    out = leakwatch(demo_run, 80, "sql", "SELECT platform, count(*) AS n FROM posts GROUP BY 1 ORDER BY 1").stdout
    assert "-[ row" not in out and "bluesky" in out and "reddit" in out and "2 rows" in out


@pytest.mark.parametrize("columns", [80, 120])
def test_status_headers_never_break_inside_a_word(demo_run, columns: int):
    out = leakwatch(demo_run, columns, "status").stdout
    assert widest(out) <= columns
    runs = out[out.index("Last runs"):out.index("Checkpoints")]
    assert "started" in runs and "star\n" not in runs
    for word in ("started", "platform", "status", "fetched", "inserted"):
        assert re.search(rf"\b{word}\b", runs), (word, runs)


@pytest.mark.parametrize("columns", [80, 120])
def test_trends_intervals_are_never_cut(demo_run, columns: int):
    out = leakwatch(demo_run, columns, "trends", "--period", "week").stdout
    assert widest(out) <= columns
    assert "…" not in out
    intervals = re.findall(r"\(\d+\.\d–\d+\.\d\)", out)
    assert intervals and all(re.fullmatch(r"\(\d+\.\d–\d+\.\d\)", i) for i in intervals)
    headers = [line for line in out.splitlines() if line.startswith("period ")]
    assert headers and all("adj. favor" in h and "adj. against" in h for h in headers)
    if columns == 120:  # room for every column, each interval on its share's line
        assert all(re.search(r"\bnone\b", h) for h in headers) and "left out" not in out
    else:
        assert "the `none` shares are left out to fit the terminal" in out


def test_piped_commands_print_no_blank_progress_lines(demo_run):
    result = leakwatch(demo_run, 80, "classify")
    assert result.stdout.splitlines() == [result.stdout.strip()] and "nothing to label" in result.stdout
    assert result.stderr == ""


def test_the_demos_query_hint_runs_as_printed_and_fits_80_columns(demo_run):
    from leakwatch.demo import QUERY_HINT

    hint = next(line for line in demo_run.result.stdout.splitlines() if line.startswith("Query it: "))
    assert f'sql "{QUERY_HINT}"' in hint and "posts_labeled" in hint
    command = hint.removeprefix("Query it: ").split(" --config ")[0]
    assert command.endswith("leakwatch")  # `leakwatch` on PATH, the venv's script, or `python -m leakwatch`
    out = leakwatch(demo_run, 80, "sql", QUERY_HINT).stdout
    assert "-[ row" not in out and widest(out) <= 80 and "5 rows" in out
