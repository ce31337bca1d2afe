"""The coding app in a real browser: Debian's Chromium driven by Playwright, the app run by the real
`leakwatch serve` command, every check read back from the warehouse file.

These tests fail (never skip) when Chromium is missing: `.ci/run` installs it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from annotate_support import build_warehouse, default_posts, make_post
from conftest import REPO, cli_env, run_cli, write_config

import warehouse

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EVIL_TEXT = ('<script>window.__pwned = 1; alert("xss")</script><img src=x onerror="window.__pwned = 2">'
             '<b>not bold</b> <a href="javascript:window.__pwned=3">click me</a>')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"leakwatch serve exited: {process.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("leakwatch serve did not start listening")


class Served:
    def __init__(self, config: Path, db: Path, url: str, posts: list):
        self.config, self.db, self.url, self.posts = config, db, url, posts

    def annotations(self) -> list[tuple]:
        with warehouse.reading(self.db) as con:
            return con.execute("SELECT platform, post_id, target, label, annotator, sample_id, guideline_version "
                               "FROM annotations ORDER BY annotation_id").fetchall()

    def sample_order(self) -> list[str]:
        with warehouse.reading(self.db) as con:
            return [r[0] for r in con.execute("SELECT post_id FROM sample_posts WHERE sample_id = 1 "
                                              "ORDER BY position").fetchall()]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    config = write_config(tmp_path)
    db = tmp_path / "data" / "leakwatch.duckdb"
    posts = default_posts(7)
    # A reply with its parent, and a post that tries everything an attacker could put in a post.
    posts.append(make_post(7, "reddit", text="replying: the artists were right", kind="comment",
                           post_id="t1_reply7", parent_id=posts[0].post_id, thread_id=posts[0].post_id, title=None,
                           url="https://www.reddit.com/r/OpenAI/comments/p000/c/reply7/"))
    posts.append(make_post(8, "reddit", text=EVIL_TEXT, title="<i>title</i><script>window.__pwned=4</script>",
                           url="javascript:window.__pwned=5", author_handle="<b>handle</b>"))
    labels = {"openai": ["favor", "against", "none"] * 3, "artists": ["none"] * 9}
    build_warehouse(db, posts, labels)
    result = run_cli(config, "annotate", "sample", "--size", "9", "--seed", "4")
    assert result.returncode == 0, result.stderr
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "leakwatch", "--config", str(config), "serve", "--port",
                                str(port)], cwd=REPO, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        _wait_for_port(port, process)
        yield Served(config, db, f"http://127.0.0.1:{port}", posts)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, served):
    context = browser.new_context()
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


def _log_in_as(page, served: Served, name: str) -> None:
    page.goto(served.url + "/")
    page.keyboard.type(name)  # the name field has focus
    page.keyboard.press("Enter")
    page.wait_for_selector(f"text=coding as {name}")


def _wait_for_post(page, position: int) -> None:
    page.wait_for_selector(f"#coding input[name=position][value='{position}']", state="attached", timeout=20000)


def test_keyboard_coding_stores_every_label_with_history(page, served):
    _log_in_as(page, served, "ana")
    page.goto(served.url + "/code/1")
    order = served.sample_order()
    expected = {}
    # Post 1: openai favor (1), artists against (w), Enter.  Post 2: against (2), none (e).
    # Post 3: unsure (u) only.  Post 4: skipped (s).  Post 5: none (3), favor (q).
    plan = [("1w", ("favor", "against")), ("2e", ("against", "none")), ("u", ("unsure", "unsure")),
            ("s", None), ("3q", ("none", "favor"))]
    for position, (keys, labels) in enumerate(plan, start=1):
        _wait_for_post(page, position)
        assert page.locator("#progress").inner_text().startswith(f"Sample 1 (random) · post {position} of 9")
        for key in keys:
            page.keyboard.press(key)
        if labels is not None:
            page.keyboard.press("Enter")
            expected[order[position - 1]] = labels
    _wait_for_post(page, 6)
    # Undo reopens the last coded post (5) with its labels; recode artists as none.
    page.keyboard.press("z")
    _wait_for_post(page, 5)
    assert page.locator("input[name=label_artists][value=favor]").is_checked()
    page.keyboard.press("e")
    page.keyboard.press("Enter")
    _wait_for_post(page, 6)
    rows = served.annotations()
    stored = {}
    for _platform, post_id, target, label, coder, sample_id, guideline in rows:
        assert coder == "ana" and sample_id == 1 and guideline.startswith("sha256:")
        stored.setdefault(post_id, {})[target] = label  # later rows win: the latest label
    expected[order[4]] = ("none", "none")
    assert stored == {pid: {"openai": o, "artists": a} for pid, (o, a) in expected.items()}
    # History kept: post 5 has four rows (two codings of two targets); post 4 (skipped) none.
    assert sum(1 for r in rows if r[1] == order[4]) == 4 and not any(r[1] == order[3] for r in rows)
    # The coder name survives a reload (cookie), and skipped post 4 comes back after the rest.
    page.goto(served.url + "/code/1?after=9")
    _wait_for_post(page, 4)
    assert "coding as ana" in page.inner_text("header")


def test_hostile_post_renders_inert(page, served):
    _log_in_as(page, served, "ana")
    position = served.sample_order().index(served.posts[8].post_id) + 1
    page.goto(f"{served.url}/code/1?at={position}")
    _wait_for_post(page, position)
    assert page.evaluate("window.__pwned") is None and page.dialogs == []
    assert page.locator("#text").inner_text() == EVIL_TEXT  # shown as text, character for character
    assert page.locator("#text b, #text img, #text script, #text a").count() == 0
    assert page.locator("#title").inner_text() == "<i>title</i><script>window.__pwned=4</script>"
    assert page.locator("#author").inner_text() == "<b>handle</b>"
    # The javascript: permalink is text, not a link.
    assert page.locator("#original a").count() == 0
    assert page.locator("#original").inner_text() == "javascript:window.__pwned=5"
    page.keyboard.press("1")
    page.keyboard.press("e")
    page.keyboard.press("Enter")
    page.wait_for_url("**saved=1")
    assert page.evaluate("window.__pwned") is None and page.dialogs == []


def test_context_and_links_for_comments_and_bluesky(page, served):
    _log_in_as(page, served, "ana")
    order = served.sample_order()
    page.goto(f"{served.url}/code/1?at={order.index('t1_reply7') + 1}")
    assert page.locator("#parent").inner_text().startswith("thread 0")  # the submission it answers
    assert page.locator("#original a").get_attribute("href").startswith("https://www.reddit.com/r/OpenAI/")
    bluesky = served.posts[1]
    page.goto(f"{served.url}/code/1?at={order.index(bluesky.post_id) + 1}")
    assert page.locator("#original a").get_attribute("href") == \
        "https://bsky.app/profile/did:plc:coder001/post/3k001"
    assert "Target `openai`" not in page.inner_text("#guideline") and "Target openai" in page.inner_text("#guideline")


class _EvilSite(BaseHTTPRequestHandler):
    """Another origin whose page posts an annotation to the app without the token."""

    target = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = textwrap.dedent(f"""
            <form id="f" method="post" action="{self.target}">
              <input name="position" value="1"><input name="post_id" value="x">
              <input name="label_openai" value="favor"><input name="label_artists" value="none">
            </form><script>document.getElementById("f").submit()</script>""").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_cross_site_post_is_refused(page, served):
    _log_in_as(page, served, "ana")  # the victim has a session (cookies) with the app
    _EvilSite.target = served.url + "/code/1"
    evil = ThreadingHTTPServer(("127.0.0.1", 0), _EvilSite)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        responses = []
        page.on("response", lambda r: responses.append((r.url, r.status)))
        page.goto(f"http://127.0.0.1:{evil.server_address[1]}/")  # same site, other origin
        page.wait_for_url(served.url + "/code/1")
        assert (served.url + "/code/1", 403) in responses
        assert "refused" in page.inner_text("body")
    finally:
        evil.shutdown()
    assert served.annotations() == []


_WRITER = """
import sys, time
from datetime import UTC, datetime
sys.path.insert(0, "tests")
import warehouse
from annotate_support import make_post
db, stop = sys.argv[1], sys.argv[2]
import pathlib
i = 100
while not pathlib.Path(stop).exists():
    # Like a collection job: hold the file longer than the app waits for it (1 s), so the coder's first
    # save, sent right after "holding", is answered busy; then let go for a while, so saves get through.
    with warehouse.writing(db, wait_seconds=30) as con:
        warehouse.upsert_posts(con, [make_post(i)])
        print("holding", flush=True)
        time.sleep(2.0)
    i += 1
    time.sleep(1.0)
print("wrote", i - 100, flush=True)
"""


def test_coding_while_another_process_writes_loses_nothing(page, served, tmp_path):
    _log_in_as(page, served, "ana")
    page.goto(served.url + "/code/1")
    _wait_for_post(page, 1)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", _WRITER, str(served.db), str(stop)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "holding"
        saw_busy = False
        for position in range(1, 6):
            _wait_for_post(page, position)
            page.keyboard.press("2")
            page.keyboard.press("w")
            page.keyboard.press("Enter")
            deadline = time.monotonic() + 90  # a loaded CI machine can be slow; a lost annotation never arrives
            while f"after={position}&saved=1" not in page.url:  # moves on only once the server stored it
                assert time.monotonic() < deadline, f"post {position} was never acknowledged: {page.url} " \
                    f"{page.locator('#status').all_inner_texts()}"
                try:
                    shown = page.locator("#status").inner_text(timeout=200)
                    saw_busy = saw_busy or "warehouse busy, retrying" in shown
                except Exception:  # mid-navigation: the element is gone for a moment
                    pass
                page.wait_for_timeout(50)  # (sync Playwright updates page.url only inside its own calls)
        stop.touch()
        out, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err
    finally:
        if writer.poll() is None:
            writer.kill()
    assert saw_busy, "the coder was never told the warehouse was busy"
    rows = served.annotations()
    order = served.sample_order()
    assert sorted({r[1] for r in rows}) == sorted(order[:5]) and len(rows) == 10
    assert {(r[2], r[3]) for r in rows} == {("openai", "against"), ("artists", "against")}
    with warehouse.reading(served.db) as con:  # and the writer's posts are all there too
        assert con.execute("SELECT count(*) FROM posts WHERE post_id LIKE 't3_p1%'").fetchone()[0] >= 1
