"""The web page's server: a small Starlette app on 127.0.0.1 around one generation worker.

Routes (every error is ``{"error": "..."}`` with a 4xx/5xx status, shown on the page):

==========================================  =================================================
``GET    /``                                the page (``static/index.html``, no CDN); sets
                                            the session's CSRF cookie
``GET    /api/models``                      runs (broken ones with their problem), the
                                            shipped default, inputs per sampler, limits
``POST   /api/generate``                    multipart form (its files: a primer, a song
                                            to rewrite or a melody) → ``202 {"job": id}``
``GET    /api/jobs/{id}``                   status, stage, queue position; pieces when done
``DELETE /api/jobs/{id}``                   cancel: a waiting job leaves the queue, a
                                            running one stops at its next model call
``GET    /api/jobs/{id}/files/{name}``      a piece's MIDI, WAV or piano-roll PNG
==========================================  =================================================

Every request passes :class:`midiforge.web.guard.RequestGuard` first (its Host must be this
server; a POST or DELETE must come from this page, with its CSRF token). Generation runs on
one worker thread (:class:`midiforge.web.jobs.JobQueue`): a second request waits in the queue
and the page polls its status. Each job calls the same ``midiforge.api.generate`` as the
``generate`` command, then ``midiforge.io.render`` helpers for the audio and the piano roll.
Answers never carry an absolute path of this machine (:meth:`WebApp.public`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from midiforge.errors import MidiforgeError
from midiforge.sampling.options import fields_by_sampler
from midiforge.web import catalog, stopping
from midiforge.web.config import WebConfig
from midiforge.web.guard import TOKEN_HEADER, RequestGuard, Tokens, cookie_name, request_cookie
from midiforge.web.jobs import Job, JobQueue, QueueFull
from midiforge.web.midi_uploads import MAX_UPLOAD_BYTES
from midiforge.web.params import (
    MAX_JOB_STEPS,
    MAX_JOB_TOKENS,
    GenerationRequest,
    check_text,
    fields_json,
    parse_request,
    shown,
)
from midiforge.web.pieces import run_generation
from midiforge.web.uploads import BodyRefused, parse_form, read_body

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
FORM_OVERHEAD_BYTES = 64 * 1024  # room for the text fields and multipart boundaries
# one upload: a job reads one file at most (a primer, a song to rewrite or a melody)
MAX_BODY_BYTES = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES
MAX_FORM_PARTS = 32
HTTP_NOT_FOUND = 404
MEDIA_TYPES = {".mid": "audio/midi", ".wav": "audio/wav", ".png": "image/png"}
# what is left of an absolute path after the known folders are replaced: keep its last parts
_ABSOLUTE = re.compile(r"(?<![\w:/.~])(?:/[^/\s'\"]+){3,}")


def _error(message: str, status: int, *, close: bool = False) -> JSONResponse:
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _display(folder: str | Path) -> str:
    """A folder as the page may show it: relative as given, else by its name only."""
    path = Path(folder)
    return path.as_posix() if not path.is_absolute() else path.name


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
        self.tokens = Tokens()
        self.queue = JobQueue(self._work, budget_s=config.job_seconds)
        self._private = self._private_paths()

    def _private_paths(self) -> list[tuple[str, str]]:
        """(absolute path, what to show instead), longest first, for :meth:`public`."""
        pairs = {}
        for folder in (self.config.runs_dir, self.config.out_dir, *self.extra.values()):
            shown_as = _display(folder)
            pairs[str(Path(folder).resolve())] = shown_as
            pairs[str(Path(folder).absolute())] = shown_as
        pairs[str(Path.home())] = "~"
        return sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)

    def public(self, text: str) -> str:
        """``text`` without absolute paths of this machine (folders by their shown names)."""
        for private, shown_as in self._private:
            if len(private) > 1:
                text = text.replace(private, shown_as)
        return _ABSOLUTE.sub(lambda m: ".../" + "/".join(m.group().split("/")[-2:]), text)

    # -- models ---------------------------------------------------------------------------
    def models(self) -> dict[str, catalog.RunInfo]:
        """The models offered right now (scanned on each call, so new runs appear); a broken
        run is listed with its problem, and never hides the others."""
        found: dict[str, catalog.RunInfo] = {}
        for run_id, path in self.extra.items():
            found[run_id] = catalog.read_run_or_broken(path, run_id)
        for info in catalog.list_runs(self.config.runs_dir):
            found.setdefault(info.id, info)
        try:
            for info in catalog.shipped_run_infos():
                found[info.id] = info
        except Exception as exc:  # a damaged installation: list the runs anyway
            log.warning("the shipped models cannot be read", exc_info=exc)
        return found

    def _parse(self, fields: dict[str, str], files: dict[str, tuple[bytes, str]]) -> Any:
        models = self.models()
        model_id = check_text("model", fields.get("model"))
        if model_id and model_id not in models:  # say so plainly for a path outside runs_dir
            catalog.resolve_run(model_id, self.config.runs_dir)
        return parse_request(fields, models, files)

    # -- the worker ------------------------------------------------------------------------
    def _work(self, job: Job) -> dict[str, Any]:
        request: GenerationRequest = job.params
        job_dir = Path(self.config.out_dir) / f"{self.session}-job{job.id}"

        def stage(text: str) -> None:
            job.check()  # cancelled or over budget: stop between pieces too
            job.stage = text

        with stopping.checking(job.check):
            pieces = run_generation(request, job_dir, soundfont=self.config.soundfont, stage=stage)
        seed = request.options.seed
        return {"seed": seed, "model": request.model_id, "dir": job_dir, "pieces": pieces}

    # -- routes ----------------------------------------------------------------------------
    async def index(self, request: Request) -> Response:
        response = FileResponse(STATIC_DIR / "index.html", media_type="text/html")
        response.headers["Cache-Control"] = "no-store"
        name = cookie_name(self.config.port)
        if not self.tokens.valid(request_cookie(dict(request.headers), name)):
            response.set_cookie(name, self.tokens.issue(), path="/", samesite="strict")
        return response

    async def list_models(self, request: Request) -> Response:
        models = await run_in_threadpool(self.models)
        usable = [m for m, info in models.items() if info.has_weights and not info.problem]
        preselect = self.preselect if self.preselect in usable else None
        return JSONResponse(
            {
                "models": [
                    {**info.to_json(), "problem": self.public(info.problem)}
                    for info in models.values()
                ],
                "selected": preselect or (usable[0] if usable else None),
                "fields": fields_json(),  # the number inputs, with bounds and defaults
                "samplers": fields_by_sampler(),  # sampler (a model's "kind") -> its options
                "max_upload_bytes": MAX_UPLOAD_BYTES,
                "runs_dir": _display(self.config.runs_dir),
                "limits": {
                    "job_seconds": self.config.job_seconds,
                    "max_job_tokens": MAX_JOB_TOKENS,
                    "max_job_steps": MAX_JOB_STEPS,
                },
                "csrf": {"cookie": cookie_name(self.config.port), "header": TOKEN_HEADER},
            }
        )

    async def generate(self, request: Request) -> Response:
        try:
            body = await read_body(
                request,
                cap=MAX_BODY_BYTES,
                limit=MAX_UPLOAD_BYTES,
                deadline_s=self.config.body_seconds,
            )
            form = parse_form(
                request.headers.get("content-type", ""), body, max_parts=MAX_FORM_PARTS
            )
        except BodyRefused as exc:
            return _error(str(exc), exc.status, close=exc.status in (408, 413))
        try:
            params = await run_in_threadpool(self._parse, form.fields, form.files)
            job = self.queue.submit(params)
        except QueueFull as exc:
            return _error(str(exc), 429)
        except MidiforgeError as exc:
            message = self.public(str(exc))
            return _error(message, 413 if "the limit is" in message else 400)
        return JSONResponse({"job": job.id, **(self.queue.status(job.id) or {})}, 202)

    async def job_status(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        status = self.queue.status(job_id)
        if status is None:
            return _error(f"job {shown(job_id)} is unknown (the server keeps the latest jobs)", 404)
        job = self.queue.get(job_id)
        if status["error"]:
            status["error"] = self.public(status["error"])
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

    async def cancel_job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        job = self.queue.cancel(job_id)
        if job is None:
            return _error(f"job {shown(job_id)} is unknown (the server keeps the latest jobs)", 404)
        if job.status in ("done", "error"):
            return _error(
                f"job {job_id} has already finished ({job.status}); nothing to cancel", 409
            )
        return JSONResponse(self.queue.status(job_id))

    async def job_file(self, request: Request) -> Response:
        job_id, name = request.path_params["job_id"], request.path_params["name"]
        job = self.queue.get(job_id)
        if job is None or job.status != "done":
            return _error(f"job {shown(job_id)} has no files (unknown or not finished)", 404)
        allowed = {p[k] for p in job.result["pieces"] for k in ("midi", "wav", "png") if p.get(k)}
        if name not in allowed:  # only files this job wrote, never a path from the request
            return _error(f"file {shown(name)} is not one of job {job_id}'s files", 404)
        path = Path(job.result["dir"]) / name
        if not path.is_file():
            return _error(f"file {name!r} of job {job_id} was removed from the output folder", 404)
        media = MEDIA_TYPES.get(path.suffix, "application/octet-stream")
        disposition = "attachment" if path.suffix == ".mid" else "inline"
        return FileResponse(
            path, media_type=media, filename=name, content_disposition_type=disposition
        )


def create_app(config: WebConfig) -> Starlette:
    """The Starlette app for ``config``; its job worker starts and stops with the app."""
    state = WebApp(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.queue.start()
        yield
        state.queue.stop(timeout=1.0)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == HTTP_NOT_FOUND:
            return _error(f"no such page: {shown(request.url.path)}", exc.status_code)
        return _error(str(exc.detail), exc.status_code)

    async def server_error(request: Request, exc: Exception) -> Response:
        """The last resort: a bug is a JSON 500 with its message, and the server goes on."""
        log.exception("request %s failed", request.url.path, exc_info=exc)
        return _error(state.public(f"internal error: {type(exc).__name__}: {exc}"), 500)

    app = Starlette(
        routes=[
            Route("/", state.index),
            Route("/api/models", state.list_models),
            Route("/api/generate", state.generate, methods=["POST"]),
            Route("/api/jobs/{job_id}", state.job_status),
            Route("/api/jobs/{job_id}", state.cancel_job, methods=["DELETE"]),
            Route("/api/jobs/{job_id}/files/{name}", state.job_file),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[Middleware(RequestGuard, port=config.port, tokens=state.tokens)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # "/api/jobs/../" is a 404, not a redirect elsewhere
    app.state.web = state
    return app
