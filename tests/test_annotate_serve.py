"""The coding app's guards over HTTP (Starlette's test client on the real app and warehouse file)."""

from __future__ import annotations

import re

import pytest
from annotate_support import build_warehouse, default_posts
from conftest import cli_env, run_cli, write_config
from starlette.testclient import TestClient

from leakwatch.config import load_config
from leakwatch.serve import ServeError, create_app, original_link, render_guideline, safe_link


@pytest.fixture
def config(tmp_path):
    path = write_config(tmp_path)
    build_warehouse(tmp_path / "data" / "leakwatch.duckdb", default_posts(6),
                    {"openai": ["favor"] * 6, "artists": ["none"] * 6})
    assert run_cli(path, "annotate", "sample", "--size", "6", "--seed", "1").returncode == 0
    return path


def test_links_and_guideline_rendering():
    assert safe_link("javascript:alert(1)") is None and safe_link(" JavaScript:x") is None
    assert safe_link("data:text/html,x") is None and safe_link("https://") is None
    assert safe_link("https://www.reddit.com/r/a/") == "https://www.reddit.com/r/a/"
    assert original_link("bluesky", "at://did:plc:abc/app.bsky.feed.post/3kx", None) == \
        "https://bsky.app/profile/did:plc:abc/post/3kx"
    assert original_link("bluesky", "at://did:plc:abc/app.bsky.feed.post/3kx", "javascript:x") is not None
    html = render_guideline("# Guide <script>\n- **favor**: `x` & <b>y</b>\n")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<strong>favor</strong>" in html
    assert "&lt;b&gt;y&lt;/b&gt;" in html and "<code>x</code>" in html


def test_public_address_needs_token(config):
    with pytest.raises(ServeError, match="LEAKWATCH_SERVE_TOKEN"):
        create_app(load_config(config), "0.0.0.0")
    result = run_cli(config, "serve", "--host", "0.0.0.0", env=cli_env(drop=("LEAKWATCH_SERVE_TOKEN",)))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "LEAKWATCH_SERVE_TOKEN" in result.stderr


def test_token_login_then_coding(config):
    client = TestClient(create_app(load_config(config), "0.0.0.0", token="s3cret-token"),
                        base_url="http://10.0.0.5:8765")
    first = client.get("/", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login?next=/"
    login = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
    assert client.post("/login", data={"csrf": csrf, "token": "wrong", "next": "/"}).status_code == 403
    assert client.post("/code/1", data={"csrf": csrf}).status_code == 401  # no session: nothing writes
    ok = client.post("/login", data={"csrf": csrf, "token": "s3cret-token", "next": "/"}, follow_redirects=False)
    assert ok.status_code == 303 and "s3cret-token" not in ok.headers["set-cookie"]
    assert client.get("/").status_code == 200


def test_csrf_origin_and_host_checks(config):
    client = TestClient(create_app(load_config(config)), base_url="http://127.0.0.1:8765")
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    csrf = client.cookies.get("lw_csrf")
    assert client.post("/coder", data={"coder": "ana"}).status_code == 403  # no token
    assert client.post("/coder", data={"coder": "ana", "csrf": "x" * 43}).status_code == 403  # wrong token
    evil = client.post("/coder", data={"coder": "ana", "csrf": csrf}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert client.post("/coder", data={"coder": "ana", "csrf": csrf}, follow_redirects=False).status_code == 303
    # A DNS-rebinding page reaches the loopback app under a foreign Host name: refused.
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 400
    code = client.get("/code/1")
    position = re.search(r'name="position" value="(\d+)"', code.text).group(1)
    post_id = re.search(r'name="post_id" value="([^"]+)"', code.text).group(1)
    missing = client.post("/code/1", data={"csrf": csrf, "position": position, "post_id": post_id,
                                           "label_openai": "favor"}, headers={"Accept": "application/json"})
    assert missing.status_code == 400 and "choose a label for artists" in missing.json()["error"]
    saved = client.post("/code/1", data={"csrf": csrf, "position": position, "post_id": post_id,
                                         "label_openai": "favor", "label_artists": "none"},
                        headers={"Accept": "application/json"})
    assert saved.json() == {"saved": 2, "next": f"/code/1?after={position}&saved=1"}
    assert "1 posts coded in random samples" in client.get("/validate").text
