"""`leakwatch demo` points at the coding app, and the app codes the demo's own posts."""

from __future__ import annotations

import re

from conftest import run_cli
from starlette.testclient import TestClient

from leakwatch.config import load_config
from leakwatch.serve import create_app


def test_demo_ends_with_how_to_open_the_app(demo_run, tmp_path):
    last = demo_run.result.stdout.strip().splitlines()[-1]
    config = demo_run.folder / "leakwatch.toml"
    assert last.startswith(f"Code posts by hand: leakwatch --config {config} serve") and "127.0.0.1:8765" in last
    # On a copy, so the other demo checks see the demo's warehouse untouched.
    copy = tmp_path / "demo"
    import shutil

    shutil.copytree(demo_run.folder, copy)
    result = run_cli(copy / "leakwatch.toml", "annotate", "sample", "--size", "12", "--seed", "2")
    assert result.returncode == 0 and "sample 1: 12 posts (random), 2 assigned to two coders" in result.stdout, \
        result.stderr
    client = TestClient(create_app(load_config(copy / "leakwatch.toml")), base_url="http://127.0.0.1:8765")
    client.get("/")
    client.post("/coder", data={"coder": "ana", "csrf": client.cookies.get("lw_csrf")})
    page = client.get("/code/1")
    assert page.status_code == 200 and "post 1 of 12" in page.text
    assert re.search(r'<a href="https://(www\.reddit\.com|bsky\.app)/', page.text)
