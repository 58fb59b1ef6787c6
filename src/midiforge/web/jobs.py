"""One worker thread and a first-in first-out job queue, so requests wait instead of failing.

Generation saturates the CPU (or the one GPU), so running two at once would only make both
slower; the web server therefore hands every request to :class:`JobQueue`, answers at once with
a job id, and the page polls :meth:`JobQueue.status` until the job is done. A job that raises
is marked ``"error"`` with its message and the worker moves on to the next one.

Fair use of the one worker: every job has a wall-clock budget (``budget_s``) and can be
cancelled. The work calls :meth:`Job.check` often (the web worker: before every model call
and between pieces); once the job is cancelled or over its budget that raises
:class:`JobStopped`, and the job ends as ``"cancelled"`` or as an ``"error"`` that says the
budget ran out. A waiting job that is cancelled leaves the queue at once and never runs. So a
long job delays the ones behind it by at most its budget, and the page shows each job's
place in the queue.
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
    budget_s: float | None = None  # wall-clock seconds it may run; None = no limit
    status: str = "queued"  # queued -> running -> done | error | cancelled
    stage: str = "waiting for the worker"  # a line for people, updated by ``work``
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    result: Any = None
    error: str | None = None
    cancel_requested: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise :class:`JobStopped` once the job is cancelled or has spent its budget."""
        if self.cancel_requested.is_set():
            raise JobStopped("cancelled", "cancelled on request")
        spent = time.monotonic() - self.started if self.started is not None else 0.0
        if self.budget_s is not None and spent > self.budget_s:
            raise JobStopped(
                "error",
                f"stopped after {self.budget_s:g} s, the time budget of one job; ask for "
                "fewer pieces or a shorter length (or start the server with a larger "
                "--job-seconds)",
            )


class JobStopped(BaseException):
    """Raised inside a job's work to end it now (a BaseException: no ``except Exception``
    on the way may swallow it); ``status`` is what the job becomes."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
    budget_s
        Wall-clock seconds each job may run (None: no limit); see :meth:`Job.check`.
    """

    def __init__(
        self,
        work: Callable[[Job], Any],
        *,
        max_waiting: int = MAX_WAITING,
        budget_s: float | None = None,
    ) -> None:
        self._work = work
        self._max_waiting = max_waiting
        self._budget_s = budget_s
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
            job = Job(id=str(next(self._ids)), params=params, budget_s=self._budget_s)
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._forget_old()
        self._queue.put(job)
        return job

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a job: a waiting one leaves the queue now, a running one stops at its next
        :meth:`Job.check`; a finished one is left as it is. None if the id is unknown."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.finished is not None:
                return job
            job.cancel_requested.set()
            if job.status == "queued":
                self._waiting.remove(job.id)
                self._end(job, status="cancelled", error="cancelled on request")
            else:
                job.stage = "cancelling"
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
                "waited": round((job.started or job.finished or now) - job.created, 2),
                "budget_s": job.budget_s,
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
                if job.finished is not None:  # cancelled while it waited
                    continue
                self._waiting.remove(job.id)
                job.status, job.started, job.stage = "running", time.monotonic(), "starting"
            try:
                result = self._work(job)
            except JobStopped as stop:
                self._finish(job, error=stop.message, status=stop.status)
            except MidiforgeError as exc:
                self._finish(job, error=str(exc))
            except Exception as exc:  # the server must keep serving whatever a job does
                log.exception("job %s failed", job.id)
                self._finish(job, error=f"internal error: {type(exc).__name__}: {exc}")
            else:
                self._finish(job, result=result)

    def _finish(
        self, job: Job, *, result: Any = None, error: str | None = None, status: str = ""
    ) -> None:
        with self._lock:
            job.result = result
            self._end(job, status=status or ("error" if error is not None else "done"), error=error)

    def _end(self, job: Job, *, status: str, error: str | None) -> None:
        """Mark ``job`` finished (the lock is held)."""
        job.error, job.status = error, status
        job.stage = {"done": "done", "cancelled": "cancelled"}.get(status, "failed")
        job.finished = time.monotonic()
