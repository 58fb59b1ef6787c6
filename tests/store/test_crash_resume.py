"""Nothing is lost to SIGKILL or a full disk: a run resumes to the losses of one never stopped.

Real training runs in subprocesses (``python -m midiforge train``) are killed with SIGKILL, some
at random moments and some the instant their checkpoint's temporary folder appears (a real save,
seen from outside), or run out of disk space on a small tmpfs; each is then resumed until done,
and its ``metrics.csv`` must hold exactly the rows of an uninterrupted run.
"""

from __future__ import annotations

import csv
import random
import resource
import signal
import subprocess
import time
from pathlib import Path

import pytest

from midiforge.store import names
from midiforge.store.checkpoint import NEW_PREFIX, load_state
from midiforge.training.logbook import Logbook
from midiforge.training.run import train

from ..hostile import fill, mount_tmpfs, unmount
from ..training.conftest import cli, cli_env

STEPS = 24
# big enough that writing a checkpoint takes milliseconds (a window to be killed in)
SETS = [
    "model.d_embed=32", "model.d_hidden=128", "model.n_layers=2", "model.dropout=0.2",
    "train.batch_size=4", "train.seq_len=32", "train.lr=3e-3", "train.warmup_steps=2",
    "train.log_every=1", "train.eval_every=6", "train.eval_batches=2", "train.save_every=1",
    f"train.steps={STEPS}",
]  # fmt: skip
KILLS_AT_LEAST = 4
KILLS_AT_MOST = 10
POLL_S = 0.001
START_TIMEOUT_S = 120.0


def rows(run: Path) -> list[tuple[str, ...]]:
    """metrics.csv without the timing columns: what must not depend on interruptions."""
    with (run / names.METRICS_FILE).open(newline="") as fh:
        return [(r["step"], r["split"], r["loss"], r["lr"]) for r in csv.DictReader(fh)]


def _args(dataset: Path, run: Path, resume: bool) -> list[str]:
    if resume:
        return cli("train", "--resume", str(run), "--device", "cpu")
    sets = [a for s in SETS for a in ("--set", s)]
    return cli("train", str(dataset), "--model", "lstm", "--run-dir", str(run), "--device",
               "cpu", *sets)  # fmt: skip


def _writing(run: Path) -> bool:
    folder = run / "checkpoints"
    return folder.is_dir() and any(p.name.startswith(NEW_PREFIX) for p in folder.iterdir())


def _kill_once(dataset: Path, run: Path, rng: random.Random, on_write: bool) -> bool:
    """Start (or resume) the run, SIGKILL it mid-way; → whether it died inside a save."""
    proc = subprocess.Popen(
        _args(dataset, run, names.can_resume(run)),
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    start = None
    while proc.poll() is None and time.monotonic() < deadline:
        if start is None and (run / names.METRICS_FILE).is_file():
            start = time.monotonic() + rng.uniform(0.0, 0.3)  # training has begun
        if start is not None and time.monotonic() >= start and (not on_write or _writing(run)):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(POLL_S)
    proc.wait()
    return proc.returncode == -signal.SIGKILL and (
        _writing(run) or (run / names.LAST_OLD_DIR).is_dir()
    )


def test_sigkill_inside_checkpoint_writes_then_resume_matches(pop909_small, tmp_path):
    whole = train(pop909_small, model="lstm", overrides=SETS, run_dir=tmp_path / "whole",
                  device="cpu")  # fmt: skip
    expected = rows(whole)
    assert [int(s) for s, split, *_ in expected if split == "train"] == list(range(1, STEPS + 1))
    run, rng = tmp_path / "broken", random.Random(0)
    kills = inside = 0
    while kills < KILLS_AT_MOST and (kills < KILLS_AT_LEAST or not inside):
        inside += _kill_once(pop909_small, run, rng, on_write=kills % 2 == 0)
        kills += 1
        if names.can_resume(run):
            assert load_state(run)["step"] >= 1  # what --resume reads is whole every time
    assert inside, f"none of {kills} kills landed inside a checkpoint write"
    done = subprocess.run(_args(pop909_small, run, True), env=cli_env(), capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert rows(run) == expected
    leftovers = [p.name for p in (run / "checkpoints").iterdir()]
    assert leftovers == ["last"], leftovers


# --------------------------------------------------------------------------- full disk


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs when this process may mount one (root); else a plain folder, and the
    tests limit file sizes instead (RLIMIT_FSIZE: a write past it fails with EFBIG)."""
    folder = tmp_path / "disk"
    mounted = mount_tmpfs(folder, 64 * 2**20)
    yield folder, mounted
    if mounted:
        unmount(folder)


def _limit_file_size(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return preexec


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def test_a_full_disk_during_a_checkpoint_loses_nothing(pop909_small, tmp_path, small_disk):
    folder, mounted = small_disk
    whole = train(pop909_small, model="lstm", overrides=SETS, run_dir=tmp_path / "whole",
                  device="cpu")  # fmt: skip
    checkpoint = _size(whole / names.LAST_DIR)
    run, preexec = folder / "run", None
    if mounted:  # room for the run and one checkpoint, not for the second beside the first
        others = _size(whole) - checkpoint
        filler = fill(folder, others + checkpoint + checkpoint // 2)
    else:  # no mount: a file size limit between the weights and state.pt
        preexec = _limit_file_size(checkpoint // 2)
    done = subprocess.run(_args(pop909_small, run, False), env=cli_env(), capture_output=True,
                          text=True, preexec_fn=preexec)  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    line = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and "checkpoints/last" in line, line
    assert ("no space left" if mounted else "file too large") in line, line
    hidden = [p for p in run.rglob(".*")]
    assert not hidden, f"half-written files left behind: {hidden}"
    if mounted:
        assert 1 <= load_state(run)["step"] < STEPS  # the last good checkpoint is there
        filler.unlink()
        args = _args(pop909_small, run, True)
    else:  # the first checkpoint failed: nothing to resume, so the same command again
        assert not names.can_resume(run)
        args = _args(pop909_small, run, False)
    again = subprocess.run(args, env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert rows(run) == rows(whole)
    assert mounted or "stopped before its first checkpoint; replacing it" in again.stderr


def test_a_torn_last_metrics_row_is_dropped_on_resume(tmp_path):
    path = tmp_path / names.METRICS_FILE
    book = Logbook(path)
    for step in (1, 2, 3):
        book.write(step, "train", {"loss": 1.0 / step}, lr=0.1, tokens_per_s=10.0, seconds=step)
    whole = path.read_text(encoding="utf-8")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("4,train,0.2")  # a kill or a full disk in the middle of the next row
    Logbook(path).truncate_after(3)
    assert path.read_text(encoding="utf-8") == whole
    with path.open("a", encoding="utf-8") as fh:
        fh.write("2,tra\n")  # a row with fields missing, line end and all
    Logbook(path).truncate_after(3)
    assert path.read_text(encoding="utf-8") == whole
