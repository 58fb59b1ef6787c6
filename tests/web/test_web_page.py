"""The web page end to end: real server, real tiny model, real FluidSynth, headless Chromium."""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from pathlib import Path

import symusic

from midiforge.web.params import MAX_PRIMER_BYTES
from tests.web.conftest import RUN_NAME, get_json

GENERATE_TIMEOUT_MS = 120_000  # a tiny model on a shared 2-core machine
SCREENSHOT_ENV = "MIDIFORGE_WEB_SCREENSHOT"  # set to a path (docs/web.png) to keep a screenshot
NOTTINGHAM_FILE = "nottingham/ashover1.mid"


def post_form(url: str, fields: dict[str, str], upload: tuple[str, bytes] | None = None):
    """POST multipart/form-data like the page does; returns (status, JSON body)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
        parts.append(head.encode() + f"{value}\r\n".encode())
    if upload is not None:
        filename, data = upload
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="primer"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url + "/api/generate",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def wait_done(url: str, job: str, timeout_s: float = GENERATE_TIMEOUT_MS / 1000) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        status, data = get_json(f"{url}/api/jobs/{job}")
        assert status == 200, data
        if data["status"] in ("done", "error"):
            return data
        assert time.monotonic() < deadline, f"job {job} still {data['status']}"
        time.sleep(0.2)


def test_page_generates_plays_and_downloads(server, browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.goto(server["url"] + "/")
    page.wait_for_selector(f"#model option[value='{RUN_NAME}']", state="attached")
    assert page.input_value("#model") == RUN_NAME
    assert page.is_visible("#sampling-tokens") and not page.is_visible("#sampling-diffusion")
    page.fill("#length", "48")
    page.fill("#n", "2")
    page.fill("#seed", "7")
    page.fill("#temperature", "0.9")
    page.click("#generate")
    page.wait_for_selector(".job progress")  # the progress indicator while it runs
    page.wait_for_selector(".job[data-status='done']", timeout=GENERATE_TIMEOUT_MS)
    assert page.locator(".piece").count() == 2
    assert not page.is_visible("#error")

    # the piano rolls are real images, decoded by the browser
    widths = page.eval_on_selector_all("img.pianoroll", "imgs => imgs.map(i => i.naturalWidth)")
    assert len(widths) == 2 and all(w > 0 for w in widths)
    # the audio players hold rendered WAV files that the browser can read
    page.wait_for_function(
        "() => [...document.querySelectorAll('audio')].every(a => a.duration > 0)"
    )
    audio_src = page.get_attribute("audio >> nth=0", "src")
    wav = page.request.get(server["url"] + audio_src)
    assert wav.ok and wav.headers["content-type"] == "audio/wav"
    assert wav.body()[:4] == b"RIFF" and wav.body()[8:12] == b"WAVE"

    with page.expect_download() as download:
        page.click("a.download >> nth=0")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == "sample_000.mid"
    score = symusic.Score(str(saved))
    written = next(server["out"].glob(f"*-job*/{saved.name}"))
    assert saved.read_bytes() == written.read_bytes()
    assert score.tpq > 0 and score.end() >= 0
    shot = os.environ.get(SCREENSHOT_ENV)
    if shot:
        page.screenshot(path=shot, full_page=True)

    # a bad value is refused by the server and its message shown on the page
    page.fill("#temperature", "9")
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])")
    assert "temperature: 9 is out of range" in page.inner_text("#error")
    page.close()


def test_bad_requests_get_clear_messages_and_the_server_keeps_serving(server, datasets) -> None:
    url = server["url"]
    ok = {"model": RUN_NAME, "length": "16", "n": "1", "seed": "1"}
    midi = (datasets / NOTTINGHAM_FILE).read_bytes()
    cases = [
        ({**ok, "temperature": "9"}, None, 400, "temperature: 9 is out of range"),
        ({**ok, "top_p": "0"}, None, 400, "top_p: 0 is out of range"),
        ({**ok, "n": "100"}, None, 400, "n: 100 is out of range"),
        ({**ok, "model": "../../etc"}, None, 400, "outside the runs folder"),
        ({**ok, "model": "/etc"}, None, 400, "outside the runs folder"),
        ({**ok, "style": "jazz"}, None, 400, "style: 'jazz' is not a label"),
        (ok, ("notes.txt", b"not music at all"), 400, "not a MIDI file"),
        (ok, ("big.mid", b"MThd" + bytes(MAX_PRIMER_BYTES)), 413, "the limit is"),
        (ok, ("cut.mid", midi[:30]), 400, "not a readable MIDI file"),
    ]
    for fields, upload, code, message in cases:
        status, body = post_form(url, fields, upload)
        assert (status, message in body.get("error", "")) == (code, True), (fields, body)

    status, body = get_json(f"{url}/api/jobs/nope")
    assert status == 404 and "unknown" in body["error"]
    # a good request with a primer still works after all of that
    status, body = post_form(url, {**ok, "primer_bars": "2"}, ("primer.mid", midi))
    assert status == 202, body
    done = wait_done(url, body["job"])
    assert done["status"] == "done", done
    piece = done["pieces"][0]
    assert 0 < piece["notes"] < symusic.Score.from_midi(midi).note_num()  # 2 bars continued
    assert symusic.Score.from_midi(urllib.request.urlopen(url + piece["midi"]).read()).tpq > 0
    files = f"{url}/api/jobs/{done['id']}/files/"
    status, body = get_json(files + "primer.mid")  # in the job folder, but not a piece
    assert status == 404 and "'primer.mid' is not one of job" in body["error"], body
    for name in ("..%2Fprimer.mid", "..%2F..%2Fserver.log", "%2E%2E%2F%2E%2E%2Fserver.log"):
        status, body = get_json(files + name)
        assert status == 404 and body["error"], (name, body)


def test_requests_while_one_runs_are_queued_not_dropped(server) -> None:
    url = server["url"]
    fields = {"model": RUN_NAME, "length": "32", "n": "1", "temperature": "0.9"}
    answers = [post_form(url, {**fields, "seed": str(seed)}) for seed in (1, 2, 3)]
    assert [status for status, _ in answers] == [202, 202, 202]
    last = answers[-1][1]
    assert last["status"] == "queued" and last["position"] >= 1, last
    results = [wait_done(url, body["job"]) for _, body in answers]
    assert [r["status"] for r in results] == ["done"] * 3
    assert [r["seed"] for r in results] == [1, 2, 3]
    status, models = get_json(url + "/api/models")
    # the runs found in the runs folder, then the model that ships inside the package
    assert status == 200 and [m["id"] for m in models["models"]] == [RUN_NAME, "default"]
