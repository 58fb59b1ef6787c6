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


def _checking_loop(job):
    """Work that only ends when stopped: it calls the job's check, as the web worker does."""
    while True:
        job.check()
        time.sleep(0.01)


def test_cancel_removes_a_waiting_job_and_stops_a_running_one() -> None:
    jobs = JobQueue(_checking_loop)
    jobs.start()
    try:
        running, waiting, last = (jobs.submit(p) for p in ("a", "b", "c"))
        _wait_until(lambda: jobs.status(running.id)["status"] == "running")
        assert jobs.status(last.id)["position"] == 2
        jobs.cancel(waiting.id)  # leaves the queue at once; the one behind moves up
        assert jobs.status(waiting.id)["status"] == "cancelled"
        assert jobs.status(last.id)["position"] == 1
        jobs.cancel(running.id)
        _wait_until(lambda: jobs.status(running.id)["status"] == "cancelled")
        _wait_until(lambda: jobs.status(last.id)["status"] == "running")  # b is skipped
        assert jobs.get(waiting.id).started is None  # never ran
        jobs.cancel(last.id)
        _wait_until(lambda: jobs.status(last.id)["status"] == "cancelled")
        assert jobs.cancel("999") is None
    finally:
        jobs.stop(WAIT_S)


def test_a_job_over_its_budget_is_stopped_and_says_so() -> None:
    jobs = JobQueue(_checking_loop, budget_s=0.3)
    jobs.start()
    try:
        slow, after = jobs.submit("slow"), jobs.submit("after")
        _wait_until(lambda: jobs.status(slow.id)["status"] == "error")
        status = jobs.status(slow.id)
        assert "stopped after 0.3 s, the time budget of one job" in status["error"]
        assert 0.3 <= status["seconds"] < WAIT_S and status["budget_s"] == 0.3
        _wait_until(lambda: jobs.status(after.id)["status"] == "error")  # the next one ran
    finally:
        jobs.stop(WAIT_S)


def test_checking_stops_real_torch_forwards_on_this_thread_only() -> None:
    import torch

    from midiforge.web import stopping
    from midiforge.web.jobs import JobStopped

    layer = torch.nn.Linear(8, 8)
    x = torch.zeros(1, 8)
    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) > 5:
            raise JobStopped("cancelled", "cancelled on request")

    with pytest.raises(JobStopped), stopping.checking(check), torch.no_grad():
        for _ in range(100):
            layer(x)
    assert len(calls) == 6  # stopped before the sixth forward ran
    other = threading.Thread(target=lambda: [layer(x) for _ in range(10)])
    with stopping.checking(check):
        other.start()  # another thread's forwards are not checked
        other.join(WAIT_S)
    assert len(calls) == 6
    layer(x)  # and outside the block nothing is checked
    assert len(calls) == 6
