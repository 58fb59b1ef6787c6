"""The web page's server: a small Starlette app on 127.0.0.1 around one generation worker.

Routes (all JSON errors are ``{"error": "..."}`` with a 4xx status, shown on the page):

==========================================  =================================================
``GET  /``                                  the page (``static/index.html``, no CDN)
``GET  /api/models``                        runs, the shipped default, inputs per sampler
``POST /api/generate``                      multipart form → ``202 {"job": id}`` (queued)
``GET  /api/jobs/{id}``                     status, stage, queue position; pieces when done
``GET  /api/jobs/{id}/files/{name}``        a piece's MIDI, WAV or piano-roll PNG
==========================================  =================================================

Generation runs on one worker thread (:class:`midiforge.web.jobs.JobQueue`): a second request
waits in the queue and the page polls its status. Each job calls the same
``midiforge.api.generate`` as the ``generate`` command, then ``midiforge.api.render`` helpers for
the audio and the piano roll.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from midiforge.errors import MidiforgeError
from midiforge.sampling.options import fields_by_sampler
from midiforge.web import catalog
from midiforge.web.config import HOST, WebConfig
from midiforge.web.jobs import Job, JobQueue, QueueFull
from midiforge.web.params import MAX_PRIMER_BYTES, GenerationRequest, fields_json, parse_request
from midiforge.web.pieces import run_generation

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
FORM_OVERHEAD_BYTES = 64 * 1024  # room for the text fields and multipart boundaries
MAX_BODY_BYTES = MAX_PRIMER_BYTES + FORM_OVERHEAD_BYTES
HTTP_NOT_FOUND = 404
MEDIA_TYPES = {".mid": "audio/midi", ".wav": "audio/wav", ".png": "image/png"}


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class WebApp:
    """The state behind the routes: the config, the job queue and the session's output folder."""

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.extra: dict[str, Path] = {}
        self.preselect: str | None = None
        if config.run is not None:
            try:
                info = catalog.read_run(config.run)
            except MidiforgeError as exc:  # fail before serving, naming the option
                raise MidiforgeError(f"--run: {exc}") from None
            self.extra[info.id] = Path(config.run)
            self.preselect = info.id
        self.session = time.strftime("%Y%m%d-%H%M%S")
        self.queue = JobQueue(self._work)

    # -- models ---------------------------------------------------------------------------
    def models(self) -> dict[str, catalog.RunInfo]:
        """The models offered right now (scanned on each call, so new runs appear)."""
        found: dict[str, catalog.RunInfo] = {}
        for run_id, path in self.extra.items():
            found[run_id] = catalog.read_run(path, run_id=run_id)
        for info in catalog.find_runs(self.config.runs_dir):
            found.setdefault(info.id, info)
        if catalog.default_model_available():
            found[catalog.DEFAULT_ID] = catalog.default_run_info()
        return found

    # -- the worker ------------------------------------------------------------------------
    def _work(self, job: Job) -> dict[str, Any]:
        request: GenerationRequest = job.params
        job_dir = Path(self.config.out_dir) / f"{self.session}-job{job.id}"

        def stage(text: str) -> None:
            job.stage = text

        pieces = run_generation(request, job_dir, soundfont=self.config.soundfont, stage=stage)
        seed = request.options.seed
        return {"seed": seed, "model": request.model_id, "dir": job_dir, "pieces": pieces}

    # -- routes ----------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def list_models(self, request: Request) -> Response:
        models = self.models()
        default = self.preselect or (next(iter(models)) if models else None)
        return JSONResponse(
            {
                "models": [info.to_json() for info in models.values()],
                "selected": default,
                "fields": fields_json(),  # the number inputs, with bounds and defaults
                "samplers": fields_by_sampler(),  # sampler (a model's "kind") -> its options
                "max_primer_bytes": MAX_PRIMER_BYTES,
                "runs_dir": self.config.runs_dir,
            }
        )

    async def generate(self, request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return _error(
                f"primer: the upload is {int(length)} bytes; the limit is {MAX_PRIMER_BYTES} "
                "bytes (upload a shorter MIDI file)",
                413,
            )
        try:
            async with request.form(max_files=1, max_fields=32) as form:
                fields = {k: v for k, v in form.items() if isinstance(v, str)}
                upload = form.get("primer")
                primer = None
                if upload is not None and not isinstance(upload, str) and upload.filename:
                    data = await upload.read(MAX_PRIMER_BYTES + 1)
                    primer = (data, upload.filename)
        except Exception as exc:  # multipart parse errors: malformed body, too many parts
            return _error(f"the form could not be read: {exc}", 400)
        try:
            models = self.models()
            model_id = fields.get("model", "").strip()
            if model_id and model_id not in models:  # say so plainly for a path outside runs_dir
                catalog.resolve_run(model_id, self.config.runs_dir)
            params = parse_request(fields, models, primer)
            job = self.queue.submit(params)
        except QueueFull as exc:
            return _error(str(exc), 429)
        except MidiforgeError as exc:
            return _error(str(exc), 413 if "the limit is" in str(exc) else 400)
        return JSONResponse({"job": job.id, **(self.queue.status(job.id) or {})}, 202)

    async def job_status(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        status = self.queue.status(job_id)
        if status is None:
            return _error(f"job {job_id!r} is unknown (the server keeps the latest jobs)", 404)
        job = self.queue.get(job_id)
        if job is not None and job.status == "done":
            base = f"/api/jobs/{job_id}/files/"
            status["seed"] = job.result["seed"]
            status["pieces"] = [
                {
                    key: (base + value if key in ("midi", "wav", "png") and value else value)
                    for key, value in piece.items()
                }
                for piece in job.result["pieces"]
            ]
        return JSONResponse(status)

    async def job_file(self, request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["name"]
        job = self.queue.get(job_id)
        if job is None or job.status != "done":
            return _error(f"job {job_id!r} has no files (unknown or not finished)", 404)
        allowed = {p[k] for p in job.result["pieces"] for k in ("midi", "wav", "png") if p.get(k)}
        if name not in allowed:  # only files this job wrote, never a path from the request
            return _error(f"file {name!r} is not one of job {job_id}'s files", 404)
        path = Path(job.result["dir"]) / name
        media = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        disposition = "attachment" if path.suffix == ".mid" else "inline"
        return FileResponse(
            path, media_type=media, filename=name, content_disposition_type=disposition
        )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == HTTP_NOT_FOUND:
        return _error(f"no such page: {request.url.path}", exc.status_code)
    return _error(str(exc.detail), exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("request %s failed", request.url.path, exc_info=exc)
    return _error(f"internal error: {type(exc).__name__}: {exc}", 500)


def create_app(config: WebConfig) -> Starlette:
    """The Starlette app for ``config``; its job worker starts and stops with the app."""
    state = WebApp(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.queue.start()
        yield
        state.queue.stop(timeout=1.0)

    app = Starlette(
        routes=[
            Route("/", state.index),
            Route("/api/models", state.list_models),
            Route("/api/generate", state.generate, methods=["POST"]),
            Route("/api/jobs/{job_id}", state.job_status),
            Route("/api/jobs/{job_id}/files/{name}", state.job_file),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.web = state
    return app


def check_port(port: int) -> None:
    """Fail with a message naming ``--port`` when ``port`` is out of range or taken."""
    if not 1 <= port <= 65535:
        raise MidiforgeError(f"--port {port}: use a TCP port in 1..65535, e.g. 7860")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            raise MidiforgeError(
                f"--port {port}: the port is in use on {HOST}; pass another with --port"
            ) from None


def serve(config: WebConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the page on ``http://127.0.0.1:<port>`` until interrupted (Ctrl-C).

    ``on_ready`` gets the page's URL once the options are checked, just before listening (the
    command prints it; library code does not print).
    """
    import uvicorn

    check_port(config.port)
    app = create_app(config)
    if on_ready is not None:
        on_ready(f"http://{HOST}:{config.port}/")
    uvicorn.run(app, host=HOST, port=config.port, log_level="warning")
