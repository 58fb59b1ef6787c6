"""One worker thread and a first-in first-out job queue, so requests wait instead of failing.

Generation saturates the CPU (or the one GPU), so running two at once would only make both
slower; the web server therefore hands every request to :class:`JobQueue`, answers at once with
a job id, and the page polls :meth:`JobQueue.status` until the job is done. A job that raises
is marked ``"error"`` with its message and the worker moves on to the next one.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from midiforge.errors import MidiforgeError

log = logging.getLogger(__name__)

MAX_WAITING = 16  # jobs waiting at most; more is refused (HTTP 429) rather than piling up
KEEP_FINISHED = 64  # finished jobs remembered for polling and downloads


@dataclass
class Job:
    """A request and what became of it; ``work`` fills ``result`` or ``error``."""

    id: str
    params: Any
    status: str = "queued"  # queued -> running -> done | error
    stage: str = "waiting for the worker"  # a line for people, updated by ``work``
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: str | None = None


class QueueFull(MidiforgeError):
    """More than :data:`MAX_WAITING` jobs are waiting."""


class JobQueue:
    """Runs ``work(job)`` for each submitted job, one at a time, in submission order.

    Parameters
    ----------
    work
        Called on the worker thread with the :class:`Job`; it may update ``job.stage`` and
        returns the result. A :class:`MidiforgeError` becomes the job's message; any other
        exception is logged with its traceback and reported as an internal error.
    max_waiting
        How many jobs may wait behind the running one before :meth:`submit` refuses.
    """

    def __init__(self, work: Callable[[Job], Any], *, max_waiting: int = MAX_WAITING) -> None:
        self._work = work
        self._max_waiting = max_waiting
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._waiting: list[str] = []  # ids in queue order, for "position in queue"
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread (a daemon: it never keeps the process alive)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="midiforge-web-worker")
            self._thread.daemon = True
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Let the worker finish its current job, then end it."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, params: Any) -> Job:
        """Queue a job for ``params`` and return it (status ``"queued"``)."""
        with self._lock:
            if len(self._waiting) >= self._max_waiting:
                raise QueueFull(
                    f"{len(self._waiting)} requests are already waiting; try again when one "
                    "has finished"
                )
            job = Job(id=str(next(self._ids)), params=params)
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._forget_old()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def status(self, job_id: str) -> dict[str, Any] | None:
        """The job as JSON-able data: status, stage, queue position, seconds, error."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            now = time.monotonic()
            position = self._waiting.index(job_id) + 1 if job_id in self._waiting else 0
            end = job.finished if job.finished is not None else now
            return {
                "id": job.id,
                "status": job.status,
                "stage": job.stage,
                "position": position,  # 1 = next to run; 0 = running or finished
                "seconds": round(end - (job.started or end), 2),
                "waited": round((job.started or now) - job.created, 2),
                "error": job.error,
            }

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished is not None]
        for job in sorted(finished, key=lambda j: j.finished or 0)[:-KEEP_FINISHED]:
            del self._jobs[job.id]

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                self._waiting.remove(job.id)
                job.status, job.started, job.stage = "running", time.monotonic(), "starting"
            try:
                result = self._work(job)
            except MidiforgeError as exc:
                self._finish(job, error=str(exc))
            except Exception as exc:  # the server must keep serving whatever a job does
                log.exception("job %s failed", job.id)
                self._finish(job, error=f"internal error: {type(exc).__name__}: {exc}")
            else:
                self._finish(job, result=result)

    def _finish(self, job: Job, *, result: Any = None, error: str | None = None) -> None:
        with self._lock:
            job.result, job.error = result, error
            job.status = "error" if error is not None else "done"
            job.stage = "failed" if error is not None else "done"
            job.finished = time.monotonic()
