"""The command line's one error boundary: one line and status 2 for what a person can fix,
status 1 and a pointer to ``--debug`` for a bug, 130 for Ctrl-C, never a traceback unasked."""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

from midiforge.cli import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USER, _message, main
from midiforge.errors import MidiforgeError

from . import hostile
from .conftest import interruptible
from .hostile import fill, mount_tmpfs, unmount
from .training.conftest import cli, cli_env

ROOT = Path(__file__).resolve().parents[1]
NOTTINGHAM = ("ashover1.mid", "ashover2.mid", "ashover3.mid")
FULL_DISK_FREE = 4096  # bytes left on the "full" disk: one tmpfs page
FILE_SIZE_LIMIT = 128  # bytes a file may grow to where no tmpfs can be mounted
POLL_S = 0.05


def _run(capsys, *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    err = capsys.readouterr().err
    return status, err


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_messages_by_kind_of_failure() -> None:
    assert _message(MidiforgeError("bad\nvalue")) == ("bad | value", EXIT_USER)
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/run/state.pt")
    assert _message(full) == (
        "/data/run/state.pt: no space left on the device; free some space or write somewhere else",
        EXIT_USER,
    )
    line, status = _message(PermissionError(errno.EROFS, "Read-only file system", "/mnt/x"))
    assert status == EXIT_USER and line.startswith("/mnt/x: the file system is read-only")
    assert _message(MemoryError())[1] == EXIT_USER
    line, status = _message(ZeroDivisionError("division by zero"))
    assert status == EXIT_BUG
    assert line == (
        "internal error ZeroDivisionError: division by zero (run with --debug for the traceback)"
    )


def test_debug_shows_the_traceback_before_or_after_the_command(capsys, tmp_path) -> None:
    status, err = _run(capsys, "render", str(tmp_path / "absent.mid"))
    assert status == EXIT_USER and "does not exist" in _one_line(err)
    for argv in (["--debug", "render", str(tmp_path)], ["render", str(tmp_path), "--debug"]):
        (tmp_path / "x.mid").write_bytes(b"MThd")
        status, err = _run(capsys, *argv)
        assert status == EXIT_USER and "Traceback (most recent call last)" in err
        assert err.strip().splitlines()[-1].startswith("midiforge render: error:")


def test_an_output_path_that_is_a_file_or_read_only_is_one_line(capsys, datasets, tmp_path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    status, err = _run(capsys, "generate", "-o", str(blocker), "--n", "1", "--max-tokens", "4")
    assert status == EXIT_USER and f"{blocker}: already exists" in _one_line(err)
    folder = tmp_path / "ro"
    mounted = mount_tmpfs(folder, 2**20, read_only=True)
    if not mounted:  # not root: a folder without write permission refuses just the same
        folder.chmod(0o555)
    song = datasets / "nottingham" / NOTTINGHAM[0]
    try:
        for argv in (
            ["generate", "-o", str(folder / "out"), "--n", "1", "--max-tokens", "8"],
            ["render", "--wav", str(song), "--out-dir", str(folder / "out")],
        ):
            status, err = _run(capsys, *argv)
            line = _one_line(err)
            assert status == EXIT_USER and str(folder / "out") in line
            assert ("read-only" if mounted else "permission denied") in line
        assert not list(folder.rglob("*"))  # not even a half-written temporary file
    finally:
        unmount(folder) if mounted else folder.chmod(0o755)


def _limit_file_size(limit: int):
    def preexec() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    return preexec


def _on_full_disk(capsys, argv: list[str], mounted: bool) -> tuple[int, str]:
    """``argv`` on the filled tmpfs (in this process), or, without one, in a subprocess whose
    files may not grow past a few KB (the same failed write, as EFBIG)."""
    if mounted:
        return _run(capsys, *argv)
    done = subprocess.run(cli(*argv), env=cli_env(), capture_output=True, text=True,
                          preexec_fn=_limit_file_size(FILE_SIZE_LIMIT))  # fmt: skip
    return done.returncode, done.stderr


def test_full_disk_outputs_fail_in_one_line_and_leave_nothing_half_written(
    capsys, datasets, tmp_path
) -> None:
    disk = tmp_path / "disk"
    mounted = mount_tmpfs(disk, 2**20)
    try:
        filler = fill(disk, FULL_DISK_FREE) if mounted else None
        song = datasets / "pop909" / "001" / "001.mid"
        for argv in (
            ["render", "--png", str(song), "--out-dir", str(disk / "png")],
            ["generate", "-o", str(disk / "gen"), "--n", "2", "--max-tokens", "100"],
            ["prepare", str(datasets / "nottingham"), str(disk / "ds"), "--jobs", "1"],
        ):
            status, err = _on_full_disk(capsys, argv, mounted)
            line = _one_line(err)
            assert status == EXIT_USER, argv
            assert ("no space left on the device" if mounted else "file too large") in line
        left = sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file())
        assert all(not Path(p).name.startswith(".") for p in left), left  # no temporaries
        assert not (disk / "ds").exists() and not list(disk.glob(".ds*"))
        if filler is not None:
            filler.unlink()
    finally:
        if mounted:
            unmount(disk)


def test_nonsense_options_are_refused_not_silently_accepted(capsys, datasets, tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in NOTTINGHAM:
        (src / name).write_bytes((datasets / "nottingham" / name).read_bytes())
    for flags, message in (
        (["--max-note-beats", "-1"], "max_note_beats: -1.0 is not accepted"),
        (["--programs", "999"], "programs: [999] is not accepted"),
        (["--programs", "100"], "none of its 3 MIDI files was kept (3 no selected tracks)"),
    ):
        status, err = _run(capsys, "prepare", str(src), str(tmp_path / "ds"), *flags)
        assert status == EXIT_USER and message in _one_line(err), flags
        assert not (tmp_path / "ds").exists()
    status, err = _run(capsys, "generate", "-o", str(tmp_path / "g"), "--seed", str(2**70))
    assert status == EXIT_USER and "seed" in _one_line(err)
    bad_font = tmp_path / "font.sf2"
    bad_font.write_bytes(b"RIFF\x10\x00\x00\x00sfbkINFO")
    song = src / NOTTINGHAM[0]
    status, err = _run(capsys, "render", "--wav", str(song), "--soundfont", str(bad_font))
    assert status == EXIT_USER and "is not a SoundFont, or is truncated" in _one_line(err)
    assert not list(src.glob("*.wav"))


def test_ctrl_c_is_one_line_and_status_130(datasets, tmp_path) -> None:
    proc = subprocess.Popen(
        cli("prepare", str(datasets / "nottingham"), str(tmp_path / "ds"), "--jobs", "1"),
        env=cli_env(),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".ds.tmp-*")) and time.monotonic() < deadline:
        time.sleep(POLL_S)  # the dataset's temporary folder: the work has begun
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, err
    assert err.strip().splitlines()[-1] == "midiforge prepare: interrupted"
    assert "Traceback" not in err and not (tmp_path / "ds").exists()
    assert not list(tmp_path.glob(".ds*"))  # the half-built dataset is gone too


def test_the_module_entry_point_has_the_same_boundary(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "midiforge", "generate", str(tmp_path), "-o", str(tmp_path)],
        env=cli_env(),
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == EXIT_USER and "Traceback" not in done.stderr
    assert "config.yaml is missing" in done.stderr


def test_prepare_skips_impossible_files_instead_of_stopping(capsys, datasets, tmp_path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in NOTTINGHAM:
        (src / name).write_bytes((datasets / "nottingham" / name).read_bytes())
    crafted = hostile.crafted_midis()
    for name in ("den255.mid", "tpq0.mid", "huge_times.mid", "tempo0.mid"):
        (src / name).write_bytes(crafted[name])
    out = tmp_path / "ds"
    status, _ = _run(capsys, "prepare", str(src), str(out), "--jobs", "1", "--min-tokens", "64")
    assert status == 0
    files = {f["path"]: f for f in json.loads((out / "manifest.json").read_text())["files"]}
    assert [files[n]["status"] for n in NOTTINGHAM] == ["kept"] * 3
    assert "time signature 4/0" in files["den255.mid"]["detail"]
    assert "ticks per quarter note is 0" in files["tpq0.mid"]["detail"]
    assert "32-bit tick range" in files["huge_times.mid"]["detail"]
    assert {files[n]["reason"] for n in ("den255.mid", "tpq0.mid", "tempo0.mid")} == {"unreadable"}


def test_a_run_that_failed_before_its_first_checkpoint_can_be_rerun(capsys, pop909_small, tmp_path):
    run = tmp_path / "run"
    sets = ["model.d_embed=16", "model.d_hidden=16", "model.n_layers=1", "train.batch_size=2",
            "train.seq_len=16", "train.steps=6", "train.save_every=6", "train.eval_every=6",
            "train.warmup_steps=1"]  # fmt: skip
    argv = ["train", str(pop909_small), "--model", "lstm", "--run-dir", str(run), "--device", "cpu"]
    argv += [a for s in sets for a in ("--set", s)]
    status, err = _run(capsys, *argv, "--set", "train.lr=1e30")  # diverges at once
    assert status == EXIT_USER and "the loss became" in _one_line(err)
    assert (run / "config.yaml").is_file() and not (run / "checkpoints").exists()
    status, err = _run(capsys, "train", "--resume", str(run))
    assert status == EXIT_USER and "no resumable checkpoint" in _one_line(err)
    status, err = _run(capsys, *argv)  # the same folder again: replaced, with a warning
    assert status == 0, err
    assert (run / "checkpoints" / "last" / "state.pt").is_file()
