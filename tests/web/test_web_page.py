"""The web page end to end: real server, real tiny model, real FluidSynth, headless Chromium."""

from __future__ import annotations

import os
import re
import time
import urllib.request
from pathlib import Path

import symusic

from midiforge.web.midi_uploads import MAX_UPLOAD_BYTES
from tests.web.conftest import NOTES_RUN_NAME, RUN_NAME, get_json
from tests.web.rawhttp import Session

GENERATE_TIMEOUT_MS = 120_000  # a tiny model on a shared 2-core machine
SCREENSHOT_ENV = "MIDIFORGE_WEB_SCREENSHOT"  # set to a path (docs/web.png) to keep a screenshot
NOTTINGHAM_FILE = "nottingham/ashover1.mid"
TOKEN_SAMPLING = ("temperature", "top_k", "top_p")  # inputs a token or note model shows
DIFFUSION_ONLY = ("steps", "guidance")  # inputs only a diffusion model shows
NO_MODELS = {"models": [], "selected": None, "fields": [], "samplers": {}, "runs_dir": "runs"}


def visible(page, *ids: str) -> list[bool]:
    return [page.is_visible(f"#{name}") for name in ids]


def post_form(url: str, fields: dict[str, str], upload: tuple[str, bytes] | None = None):
    """POST multipart/form-data like the page does (its Origin, cookie and CSRF token)."""
    return Session(url).post_form(fields, upload)


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
    assert visible(page, *TOKEN_SAMPLING, "length", "primer") == [True] * 5
    assert visible(page, *DIFFUSION_ONLY, "noise") == [False] * 3  # noise: note models only
    assert page.inner_text("label[data-option='max_tokens']").startswith("Length in tokens")
    # the instruments are text, hinted with what the model knows (a merged piano stream)
    assert page.get_attribute("#instruments", "type") == "text"
    hint = page.get_attribute("#instruments", "placeholder")
    assert hint == "the model's choice; knows Acoustic Grand Piano"
    assert "instruments: Acoustic Grand Piano" in page.inner_text("#model-info")
    page.fill("#instruments", "Piano")
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
    page.fill("#temperature", "0.9")
    page.fill("#instruments", "piano, violin")
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#error').textContent.includes('violin')")
    assert "never learned 'violin'; it knows Acoustic Grand Piano (0)" in page.inner_text("#error")
    page.close()


def test_note_model_shows_its_sampling_fields_and_generates(server, browser) -> None:
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.goto(server["url"] + "/")
    page.wait_for_selector("#generate:enabled")
    page.select_option("#model", NOTES_RUN_NAME)
    assert visible(page, *TOKEN_SAMPLING, "noise", "length", "primer") == [True] * 6
    assert visible(page, *DIFFUSION_ONLY) == [False] * 2
    assert page.is_disabled("#steps") and page.is_disabled("#guidance")  # and not submitted
    assert page.inner_text("label[data-option='max_tokens']").startswith("Length in notes")
    assert "lstm-multihead (notes sampler)" in page.inner_text("#model-info")
    page.fill("#length", "24")
    page.fill("#n", "1")
    page.fill("#seed", "3")
    page.fill("#temperature", "0.8")
    page.fill("#top_k", "12")
    page.fill("#top_p", "0.9")
    page.fill("#noise", "0.1")
    page.click("#generate")
    page.wait_for_selector(".job[data-status='done'], .job[data-status='error']",
                           timeout=GENERATE_TIMEOUT_MS)  # fmt: skip
    assert page.get_attribute(".job", "data-status") == "done", page.inner_text(".job")
    assert NOTES_RUN_NAME in page.inner_text(".job h2")
    assert page.locator(".piece").count() == 1
    # a note model draws the notes asked and ends on the last bar line they reach
    written = re.search(r"· (\d+) notes", page.inner_text(".piece h3"))
    assert written and 0 < int(written[1]) <= 24, page.inner_text(".piece h3")
    assert not page.is_visible("#error")
    # back to the token model: its fields return, the note model's noise goes
    page.select_option("#model", RUN_NAME)
    assert visible(page, *TOKEN_SAMPLING, "noise") == [True, True, True, False]
    page.close()


def test_generate_is_disabled_until_the_models_arrive(server, browser) -> None:
    page = browser.new_page()
    held = []
    page.route("**/api/models", lambda route: held.append(route))  # answered below
    page.goto(server["url"] + "/")
    page.wait_for_function("() => document.readyState === 'complete'")
    while not held:
        page.wait_for_timeout(50)
    assert page.is_disabled("#generate")
    page.click("#generate", force=True)  # pressing it early does nothing
    assert not page.is_visible("#error") and page.locator(".job").count() == 0
    held[0].continue_()
    page.wait_for_selector("#generate:enabled")
    assert page.input_value("#model") == RUN_NAME

    # with an empty list the button stays disabled, and the page says why
    page.unroute("**/api/models")
    page.route("**/api/models", lambda route: route.fulfill(json=NO_MODELS))
    page.reload()
    page.wait_for_selector("#error:not([hidden])")
    assert "No trained model found in runs/" in page.inner_text("#error")
    assert page.is_disabled("#generate")
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
        ({**ok, "instruments": "violin"}, None, 400, "instruments: this model never learned"),
        ({**ok, "instruments": "banjoo"}, None, 400, "(did you mean banjo"),
        ({**ok, "model": ""}, None, 400, "model: missing; pick one of the listed models: "),
        ({k: v for k, v in ok.items() if k != "model"}, None, 400, "model: missing; pick one"),
        ({**ok, "steps": "8"}, None, 400, f"steps: {RUN_NAME!r} is a tokens model"),
        ({**ok, "model": NOTES_RUN_NAME, "guidance": "2"}, None, 400, "guidance: 'folk-notes"),
        (ok, ("notes.txt", b"not music at all"), 400, "not a MIDI file"),
        (ok, ("big.mid", b"MThd" + bytes(MAX_UPLOAD_BYTES)), 413, "the limit is"),
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


def test_the_shipped_diffusion_model_plays_from_the_page(server) -> None:
    url = server["url"]
    fields = {"model": "default:diffusion", "n": "1", "steps": "4", "seed": "5"}
    status, body = post_form(url, fields)
    assert status == 202, body
    result = wait_done(url, body["job"])
    assert result["status"] == "done", result
    assert all(piece["notes"] > 0 for piece in result["pieces"]), result


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
    # the runs found in the runs folder, newest first, then the models that ship in the package
    ids = [m["id"] for m in models["models"]]
    shipped = ["default", "default:diffusion", "default:lstm-multihead"]
    assert status == 200 and ids == [RUN_NAME, NOTES_RUN_NAME, *shipped]
    assert [m["shipped"] for m in models["models"]][2:] == ["transformer", "diffusion",
                                                            "lstm-multihead"]  # fmt: skip
    kinds = {m["id"]: m["kind"] for m in models["models"]}
    assert (kinds[RUN_NAME], kinds[NOTES_RUN_NAME]) == ("tokens", "notes")
    assert {"temperature", "top_k", "top_p", "noise"} <= set(models["samplers"]["notes"])
    assert "steps" not in models["samplers"]["notes"]
    assert {f["name"] for f in models["fields"]} >= {"n", "length", "temperature", "steps"}
