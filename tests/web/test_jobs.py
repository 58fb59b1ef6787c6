"""The job queue: one worker, first in first out, a failing job does not stop the next."""

from __future__ import annotations

import threading
import time

import pytest

from midiforge.errors import MidiforgeError
from midiforge.web.jobs import JobQueue, QueueFull

WAIT_S = 10.0  # generous: the machine is shared


def _wait_until(predicate, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the job queue")
        time.sleep(0.01)


def test_second_request_waits_in_queue_then_runs_in_order() -> None:
    release = threading.Event()
    ran: list[str] = []

    def work(job):
        release.wait(WAIT_S)
        ran.append(job.params)
        return job.params.upper()

    jobs = JobQueue(work)
    jobs.start()
    try:
        first, second, third = (jobs.submit(p) for p in ("a", "b", "c"))
        _wait_until(lambda: jobs.status(first.id)["status"] == "running")
        assert jobs.status(second.id)["status"] == "queued"
        assert jobs.status(second.id)["position"] == 1
        assert jobs.status(third.id)["position"] == 2
        release.set()
        _wait_until(lambda: jobs.status(third.id)["status"] == "done")
        assert ran == ["a", "b", "c"]
        assert [jobs.get(j.id).result for j in (first, second, third)] == ["A", "B", "C"]
        assert jobs.status(first.id)["position"] == 0
    finally:
        release.set()
        jobs.stop(WAIT_S)


def test_failing_job_reports_its_message_and_the_worker_goes_on() -> None:
    def work(job):
        if job.params == "user":
            raise MidiforgeError("length: 5 is out of range")
        if job.params == "bug":
            raise ZeroDivisionError("division by zero")
        return "ok"

    jobs = JobQueue(work)
    jobs.start()
    try:
        user, bug, fine = (jobs.submit(p) for p in ("user", "bug", "fine"))
        _wait_until(lambda: jobs.status(fine.id)["status"] in ("done", "error"))
        assert jobs.status(user.id)["error"] == "length: 5 is out of range"
        assert jobs.status(bug.id)["status"] == "error"
        assert "ZeroDivisionError" in jobs.status(bug.id)["error"]
        assert jobs.status(fine.id)["status"] == "done"
        assert jobs.get(fine.id).result == "ok"
    finally:
        jobs.stop(WAIT_S)


def test_full_queue_refuses_with_a_message() -> None:
    release = threading.Event()
    jobs = JobQueue(lambda job: release.wait(WAIT_S), max_waiting=2)
    jobs.start()
    try:
        running = jobs.submit(0)
        _wait_until(lambda: jobs.status(running.id)["status"] == "running")
        jobs.submit(1)
        jobs.submit(2)
        with pytest.raises(QueueFull, match="already waiting"):
            jobs.submit(3)
        assert jobs.status("999") is None
    finally:
        release.set()
        jobs.stop(WAIT_S)
