"""The page trusts only itself: forged cross-site posts, foreign hosts, oversized and slow
requests, broken runs and long jobs, against the real server in headless Chromium."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from midiforge.web.server import MAX_BODY_BYTES
from tests.web.conftest import BROKEN_RUN, RUN_NAME, SECURE, UNKNOWN_RUN, free_port, serve_with
from tests.web.rawhttp import Session, raw_request, trickle
from tests.web.test_web_page import GENERATE_TIMEOUT_MS, wait_done

UPLOAD_BYTES = 500 * 2**20  # what the client offers; only the cap may be read of it
CHUNK = 64 * 1024
SOCKET_SLACK_BYTES = 64 * 2**20  # what loopback buffers may swallow before the server closes
SLACK_S = 3.0  # a deadline is kept within this on a busy machine
SHORT = {"model": RUN_NAME, "length": "16", "n": "1", "seed": "1"}
LONG = {"model": RUN_NAME, "length": "4096", "n": "2", "seed": "1"}  # seconds to a minute
BUDGET_S = 1.0

FORGED_PAGE = """<!doctype html><html><body>
<form id="f" method="POST" action="{target}/api/generate" enctype="multipart/form-data">
<input name="model" value="{model}"><input name="length" value="16"></form>
<script>document.getElementById("f").submit();</script></body></html>"""


@pytest.fixture
def attacker_site(server) -> Iterator[str]:
    """Another local web server (another port: another origin, but the same site) whose page
    posts a form to the midiforge page as soon as it loads."""
    page = FORGED_PAGE.format(target=server["url"], model=RUN_NAME).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # "/": the forged form; any other path: an empty page
            body = page if self.path == "/" else b"<!doctype html><title>quiet</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{site.server_address[1]}"
    site.shutdown()
    site.server_close()


def _next_job_id(session: Session) -> int:
    """Submit a short job and cancel it; its id tells how many jobs the server has started."""
    status, body = session.post_form(SHORT)
    assert status == 202, body
    session.request("DELETE", f"/api/jobs/{body['job']}")
    return int(body["job"])


def test_a_forged_cross_site_form_gets_403_and_starts_no_job(server, browser, attacker_site):
    session = Session(server["url"])
    before = _next_job_id(session)
    context = browser.new_context()
    page = context.new_page()
    page.goto(server["url"] + "/")  # the user has the page open: its cookie is in the browser
    page.wait_for_selector("#generate:enabled")
    with page.expect_response(lambda r: r.url.endswith("/api/generate")) as forged:
        page.goto(attacker_site + "/")
    assert forged.value.status == 403
    assert "refused: this POST came from another site" in forged.value.json()["error"]
    # a script on that site cannot send the token header either: the preflight fails
    page.goto(attacker_site + "/quiet")
    assert page.url.startswith(attacker_site)
    outcome = page.evaluate(
        """async (url) => {
            try {
                const r = await fetch(url + "/api/generate", {method: "POST",
                    headers: {"X-CSRF-Token": "guess"}, body: "model=x"});
                return "answered " + r.status;
            } catch (e) { return "blocked"; }
        }""",
        server["url"],
    )
    assert outcome == "blocked"
    context.close()
    assert _next_job_id(session) == before + 1  # nothing started in between


def test_a_foreign_host_gets_403_and_no_absolute_paths_are_served(server) -> None:
    port = server["port"]
    for path in ("/", "/api/models", "/api/jobs/1", "/static/app.js"):
        head = f"GET {path} HTTP/1.1\r\nHost: rebound.example:{port}\r\nConnection: close\r\n\r\n"
        answer = raw_request(port, head)
        assert answer.status == 403, (path, answer)
        assert "refused: Host 'rebound.example:" in answer.json()["error"]
        assert str(server["runs"]).encode() not in answer.body
    head = f"GET /api/models HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
    answer = raw_request(port, head)
    assert answer.status == 200 and answer.json()["models"]
    assert str(server["runs"]).encode() not in answer.body  # runs_dir by name only
    assert answer.json()["runs_dir"] == server["runs"].name


def _chunked(total: int) -> Iterator[bytes]:
    frame = b"%x\r\n" % CHUNK + b"a" * CHUNK + b"\r\n"
    for _ in range(total // CHUNK):
        yield frame


def test_a_chunked_500_mb_upload_is_cut_at_the_cap(secure_server) -> None:
    session = Session(secure_server["url"])
    port = secure_server["port"]
    lines = [
        "POST /api/generate HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        *(f"{k}: {v}" for k, v in session.headers().items()),
        "Content-Type: multipart/form-data; boundary=x",
        "Transfer-Encoding: chunked",
    ]
    answer = raw_request(port, "\r\n".join(lines) + "\r\n\r\n", _chunked(UPLOAD_BYTES))
    assert answer.status == 413, answer
    assert "the upload is over" in answer.json()["error"]
    assert MAX_BODY_BYTES < answer.sent < SOCKET_SLACK_BYTES  # it did not wait for 500 MB
    written = [p for p in secure_server["tmp"].rglob("*") if p.is_file()]
    assert written == []  # the bounded body is parsed in memory; nothing reached the disk
    status, _ = session.request("GET", "/api/models")
    assert status == 200


def test_slow_heads_and_slow_bodies_are_cut_off(secure_server) -> None:
    port = secure_server["port"]
    head = f"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    answer = raw_request(port, "", trickle(head.encode(), 0.3))  # ~20 s if never cut
    assert answer.status == 0 and answer.seconds < SECURE["head_seconds"] + SLACK_S, answer
    session = Session(secure_server["url"])
    lines = [
        "POST /api/generate HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        *(f"{k}: {v}" for k, v in session.headers().items()),
        "Content-Type: multipart/form-data; boundary=x",
        "Content-Length: 1000",
    ]
    answer = raw_request(port, "\r\n".join(lines) + "\r\n\r\n", trickle(b"a" * 1000, 0.3))
    assert answer.status == 408, answer
    assert answer.seconds < SECURE["body_seconds"] + SLACK_S
    assert "took longer than 3 s" in answer.json()["error"]


def test_a_broken_run_is_listed_as_broken_and_the_others_still_generate(secure_server, browser):
    page = browser.new_page()
    page.goto(secure_server["url"] + "/")
    page.wait_for_selector("#generate:enabled")
    broken = page.locator(f"#model option[value='{BROKEN_RUN}']")
    assert broken.is_disabled() and broken.get_attribute("class") == "broken"
    assert "broken: run 'broken-run': ValueError" in broken.inner_text()
    assert page.input_value("#model") == RUN_NAME
    page.fill("#length", "16")
    page.fill("#seed", "4")
    page.click("#generate")
    page.wait_for_selector(".job[data-status='done'], .job[data-status='error']",
                           timeout=GENERATE_TIMEOUT_MS)  # fmt: skip
    assert page.get_attribute(".job", "data-status") == "done", page.inner_text(".job")
    page.close()
    session = Session(secure_server["url"])
    status, body = session.post_form({**SHORT, "model": BROKEN_RUN})
    assert status == 400 and "model: 'broken-run' is broken (run 'broken-run'" in body["error"]
    status, listing = session.request("GET", "/api/models")
    problems = {m["id"]: m["problem"] for m in listing["models"]}
    assert problems[RUN_NAME] == "" and listing["selected"] == RUN_NAME
    assert problems[UNKNOWN_RUN].startswith(f"run 'runs/{UNKNOWN_RUN}': ")  # not the full path
    assert str(secure_server["runs"]) not in str(listing)


def test_cancel_from_the_page_stops_a_running_job(secure_server, browser) -> None:
    page = browser.new_page()
    page.goto(secure_server["url"] + "/")
    page.wait_for_selector("#generate:enabled")
    for name, value in LONG.items():
        if name != "model":
            page.fill(f"#{name}", value)
    page.click("#generate")
    page.wait_for_selector(".job[data-status='running'] button.cancel")
    clicked = time.monotonic()
    page.click(".job button.cancel")
    page.wait_for_selector(".job[data-status='cancelled']", timeout=10_000)
    assert time.monotonic() - clicked < SLACK_S
    assert "cancelled after" in page.inner_text(".job .stage")
    assert page.locator(".job button.cancel").count() == 0
    page.close()


@pytest.fixture(scope="module")
def budget_server(tiny_runs, tmp_path_factory) -> Iterator[dict]:
    """A server whose jobs may run for :data:`BUDGET_S` only: less than a long job needs on
    any machine (4096 sampling steps, then two pieces to render)."""
    yield from serve_with(tiny_runs, tmp_path_factory.mktemp("web_budget"),
                          {"job_seconds": BUDGET_S})  # fmt: skip


def test_a_job_over_its_time_budget_stops_and_says_so(budget_server) -> None:
    session = Session(budget_server["url"])
    status, body = session.post_form(LONG)
    assert status == 202, body
    done = wait_done(budget_server["url"], body["job"])
    assert done["status"] == "error", done
    assert "stopped after 1 s, the time budget of one job" in done["error"]
    assert BUDGET_S <= done["seconds"] < BUDGET_S + SLACK_S
    status, body = session.request("DELETE", f"/api/jobs/{body['job']}")
    assert status == 409 and "already finished" in body["error"]
