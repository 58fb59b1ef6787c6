"""A tiny trained model, the real ``midiforge web`` server on a free port, headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

TINY_LSTM = [  # a model that trains in seconds on 2 cores; quality is not the point here
    "model.d_embed=32",
    "model.d_hidden=32",
    "model.n_layers=1",
    "train.steps=20",  # enough, at this learning rate, for samples that hold notes
    "train.lr=0.02",
    "train.warmup_steps=0",
    "train.batch_size=8",
    "train.seq_len=64",
    "train.eval_every=20",
    "train.eval_batches=1",
]
RUN_NAME = "folk-lstm"
TINY_NOTE_LSTM = [  # the multi-head note LSTM (sampler "notes"): 3 steps, it only has to run
    "model.d_pitch=16",
    "model.d_hidden=32",
    "model.n_layers=1",
    "train.steps=3",
    "train.warmup_steps=0",
    "train.batch_size=4",
    "train.window=32",
    "train.eval_every=3",
    "train.eval_batches=1",
]
NOTES_RUN_NAME = "folk-notes"
SERVER_START_S = 60.0  # python + starlette import on a busy 2-core machine
CHROMIUM = "/usr/bin/chromium"  # Debian's package; never a downloaded browser
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def tiny_runs(nottingham_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with a tiny multi-head note LSTM and a tiny token LSTM, both trained for a
    few steps on Nottingham tunes; the token LSTM is trained last, so it is listed first."""
    from midiforge import api

    runs = tmp_path_factory.mktemp("web_runs")
    api.train(nottingham_small, model="lstm-multihead", overrides=TINY_NOTE_LSTM,
              run_dir=runs / NOTES_RUN_NAME, device="cpu")  # fmt: skip
    api.train(
        nottingham_small, model="lstm", overrides=TINY_LSTM, run_dir=runs / RUN_NAME, device="cpu"
    )
    return runs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _started(cmd: list[str], out: Path, port: int, env: dict | None = None) -> Iterator[dict]:
    """Run the server command ``cmd`` until the test session ends; yields its URL and process."""
    log = (out / "server.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while True:
        try:
            status, _ = get_json(url + "/api/models")
            if status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the web server did not start:\n" + (out / "server.log").read_text())
        time.sleep(0.2)
    yield {"url": url, "port": port, "proc": proc}
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def server(tiny_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """``python -m midiforge web`` on 127.0.0.1:<free port>; yields its URL and folders."""
    port = free_port()
    out = tmp_path_factory.mktemp("web_out")
    cmd = [sys.executable, "-m", "midiforge", "web", "--port", str(port),
           "--runs-dir", str(tiny_runs), "--out-dir", str(out)]  # fmt: skip
    for started in _started(cmd, out, port):
        yield {**started, "out": out, "runs": tiny_runs}


BROKEN_RUN = "broken-run"
UNKNOWN_RUN = "unknown-model"
BROKEN_CONFIG = "format: midiforge-run\nformat_version: 1\nmodel: lstm\ntrain:\n  steps: many\n"
SECURE = {"head_seconds": 2.0, "body_seconds": 3.0}  # short, to test them


def serve_with(runs: Path, root: Path, options: dict) -> Iterator[dict]:
    """``midiforge.web.serving.serve`` on ``runs`` with WebConfig ``options``, its output and
    its ``TMPDIR`` in ``root``; yields its URL and folders."""
    out, tmp = root / "out", root / "tmp"
    out.mkdir()
    tmp.mkdir()
    port = free_port()
    given = ", ".join(f"{k}={v!r}" for k, v in options.items())
    code = (
        "from midiforge.web.config import WebConfig; from midiforge.web.serving import serve; "
        f"serve(WebConfig(runs_dir={str(runs)!r}, out_dir={str(out)!r}, port={port}, {given}))"
    )
    env = {**os.environ, "TMPDIR": str(tmp)}
    for started in _started([sys.executable, "-c", code], out, port, env):
        yield {**started, "out": out, "runs": runs, "tmp": tmp}


@pytest.fixture(scope="session")
def secure_server(tiny_runs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A second server with short deadlines (:data:`SECURE`), its own temp folder
    (``TMPDIR``), and a runs folder holding the tiny token run beside two broken ones (a
    ``config.yaml`` whose ``train.steps`` is not a number, and one naming a model family that
    does not exist)."""
    root = tmp_path_factory.mktemp("web_secure")
    runs = root / "runs"
    shutil.copytree(tiny_runs / RUN_NAME, runs / RUN_NAME)
    (runs / BROKEN_RUN).mkdir()
    (runs / BROKEN_RUN / "config.yaml").write_text(BROKEN_CONFIG)
    (runs / UNKNOWN_RUN).mkdir()  # the store's own error: it names the folder's full path
    (runs / UNKNOWN_RUN / "config.yaml").write_text("format: midiforge-run\nmodel: nosuch\n")
    yield from serve_with(runs, root, SECURE)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Debian Chromium driven by Playwright (no browser download, no network)."""
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
