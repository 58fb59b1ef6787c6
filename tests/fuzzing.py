"""Run every command on the hostile set of :mod:`tests.hostile` and judge each run.

A run passes when it exits with 0 or 2, prints no traceback and no "internal error", and
changes no file outside its own output folder (inputs, run dirs it only reads, the working
directory). Runs go through :func:`midiforge.cli.main` in this process, and a few through
``python -m midiforge`` in a subprocess. Shared by ``tests/test_fuzz.py`` and ``bench/fuzz.py``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from midiforge.cli import main

from . import hostile

ROOT = Path(__file__).resolve().parents[1]
ACCEPTED = (0, 2)
SUBPROCESS_TIMEOUT_S = 300
TINY_RUN = [
    "model.d_embed=16",
    "model.d_hidden=16",
    "model.n_layers=1",
    "train.steps=4",
    "train.batch_size=2",
    "train.seq_len=16",
    "train.window=16",
    "train.save_every=2",
    "train.eval_every=2",
    "train.eval_batches=1",
    "train.log_every=1",
    "train.warmup_steps=1",
]
TINY_NOTE_RUN = ["model.d_pitch=8", *TINY_RUN[1:]]
SAMPLING = ["--n", "1", "--max-tokens", "16", "--device", "cpu"]


@dataclass
class Attempt:
    """One command to try: its arguments and the folders it may write to."""

    what: str
    argv: list[str]
    outputs: list[Path]
    subprocess: bool = False
    status: int | None = None
    stderr: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def run_in_process(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse refuses a flag: status 2 with its usage line
            status = exc.code if isinstance(exc.code, int) else 2
    return status, err.getvalue()


def run_subprocess(argv: list[str], cwd: Path) -> tuple[int, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "midiforge", *argv],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    return done.returncode, done.stderr


def judge(attempt: Attempt, before: dict, after: dict, root: Path) -> None:
    """Fill ``attempt.problems``: status, traceback, files written where they should not be."""
    if attempt.status not in ACCEPTED:
        attempt.problems.append(f"exit status {attempt.status}")
    for marker in ("Traceback", "internal error"):
        if marker in attempt.stderr:
            attempt.problems.append(marker)
    outside = hostile.changed_outside(before, after, attempt.outputs, root)
    if outside:
        attempt.problems.append(f"wrote outside its output folder: {outside[:3]}")
    if any(p.name == hostile.PWNED for p in root.rglob(hostile.PWNED)):
        attempt.problems.append("a pickled payload ran")


def run_all(attempts: list[Attempt], root: Path, cwd: Path) -> list[Attempt]:
    """Run every attempt from ``cwd`` (inside ``root``), judging each; → the attempts."""
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        for attempt in attempts:
            before = hostile.snapshot(root)
            started = time.perf_counter()
            if attempt.subprocess:
                attempt.status, attempt.stderr = run_subprocess(attempt.argv, cwd)
            else:
                attempt.status, attempt.stderr = run_in_process(attempt.argv)
            attempt.seconds = time.perf_counter() - started
            judge(attempt, before, hostile.snapshot(root), root)
            for folder in attempt.outputs:  # the next attempt starts from nothing
                shutil.rmtree(folder, ignore_errors=True) if folder.is_dir() else None
    finally:
        os.chdir(previous)
    return attempts


# --------------------------------------------------------------------------- the plan


def train_tiny_runs(dataset: Path, folder: Path) -> dict[str, Path]:
    """A token run (lstm) and a note run (lstm-multihead) that really trained four steps."""
    runs = {}
    for model, sets in (("lstm", TINY_RUN), ("lstm-multihead", TINY_NOTE_RUN)):
        run = folder / f"good-{model}"
        argv = ["train", str(dataset), "--model", model, "--run-dir", str(run), "--device", "cpu"]
        status, err = run_in_process([*argv, *[a for s in sets for a in ("--set", s)]])
        if status != 0:
            raise RuntimeError(f"the tiny {model} run did not train: {err[-2000:]}")
        runs[model] = run
    return runs


def plan(
    root: Path,
    dataset: Path,
    runs: dict[str, Path],
    midis: list[Path],
    *,
    run_extra: int = 0,
    subprocesses: int = 4,
    evaluate_each: tuple[str, ...] | None = None,
) -> list[Attempt]:
    """Every command on every input: primers, renders, damaged runs, prepare, evaluate.

    ``evaluate_each``: the MIDI file stems evaluated one by one as well (None: every file;
    evaluating a readable file computes every metric, which takes about a second).
    """
    out = root / "out"
    token_run, note_run = runs["lstm"], runs["lstm-multihead"]
    attempts = []
    for midi in midis:
        attempts.append(
            Attempt(
                f"render --png {midi.name}",
                ["render", "--png", str(midi), "--out-dir", str(out)],
                [out],
            )
        )
        for run in (token_run, note_run):
            attempts.append(
                Attempt(
                    f"generate --primer {midi.name} ({run.name})",
                    ["generate", str(run), "-o", str(out), "--primer", str(midi), *SAMPLING],
                    [out],
                )
            )
    for run in (token_run, note_run):
        attempts.append(
            Attempt(
                f"generate ({run.name})", ["generate", str(run), "-o", str(out), *SAMPLING], [out]
            )
        )
    damaged = hostile.damaged_runs(token_run, root / "damaged", run_extra)
    note_damages = hostile.damaged_runs(note_run, root / "damaged-notes")
    kinds = ("data_state", "state", "weights", "config: width")
    damaged += [(f"{w} (notes)", r) for w, r in note_damages if w.startswith(kinds)]
    for what, run in damaged:
        attempts.append(
            Attempt(f"generate: {what}", ["generate", str(run), "-o", str(out), *SAMPLING], [out])
        )
        attempts.append(
            Attempt(
                f"train --resume: {what}", ["train", "--resume", str(run), "--device", "cpu"], [run]
            )
        )
    attempts += _option_attempts(root, dataset, token_run, midis, out)
    singles = [m for m in midis if evaluate_each is None or m.stem in evaluate_each]
    attempts += _prepare_and_evaluate(root, dataset, midis, singles, out)
    _as_subprocesses(attempts, subprocesses)
    return attempts


def _option_attempts(root: Path, dataset: Path, run: Path, midis: list[Path], out: Path):
    taken = root / "inputs" / "a-file"
    taken.parent.mkdir(parents=True, exist_ok=True)
    taken.write_text("not a folder")
    bad_font = root / "inputs" / "font.sf2"
    bad_font.write_bytes(b"RIFF\x10\x00\x00\x00sfbkjunk")
    fresh = root / "fresh-run"
    cases = [
        ("generate --seed 2**70", ["generate", str(run), "-o", str(out), "--seed", str(2**70)]),
        ("generate --seed -1", ["generate", str(run), "-o", str(out), "--seed", "-1"]),
        ("generate -o a file", ["generate", str(run), "-o", str(taken), *SAMPLING]),
        ("generate --n 0", ["generate", str(run), "-o", str(out), "--n", "0"]),
        (
            "generate --temperature nan",
            ["generate", str(run), "-o", str(out), "--temperature", "nan"],
        ),
        (
            "render --soundfont garbage",
            ["render", "--wav", str(midis[0]), "--soundfont", str(bad_font), "--out-dir", str(out)],
        ),
        (
            "render --max-seconds -1",
            ["render", "--png", str(midis[0]), "--max-seconds", "-1", "--out-dir", str(out)],
        ),
        (
            "train --set train.seed=-1",
            [
                "train",
                str(dataset),
                "--model",
                "lstm",
                "--run-dir",
                str(fresh),
                "--set",
                "train.seed=-1",
            ],
        ),
        (
            "train --set model.d_hidden=2**40",
            [
                "train",
                str(dataset),
                "--model",
                "lstm",
                "--run-dir",
                str(fresh),
                "--set",
                f"model.d_hidden={2**40}",
            ],
        ),
        ("train --run-dir a file", ["train", str(dataset), "--run-dir", str(taken)]),
    ]
    return [Attempt(what, argv, [out, fresh]) for what, argv in cases]


def _prepare_and_evaluate(root: Path, dataset: Path, midis: list[Path], each: list[Path], out):
    folder = midis[0].parent
    attempts = [
        Attempt(
            "prepare the hostile folder",
            ["prepare", str(folder), str(out), "--jobs", "1", "--quiet"],
            [out],
        )
    ]
    for flags in (
        ["--max-note-beats", "-1"],
        ["--programs", "999"],
        ["--split", "2,0,-1"],
        ["--min-notes", "-3"],
        ["--max-gap-beats", "nan"],
    ):
        attempts.append(
            Attempt(
                f"prepare {' '.join(flags)}",
                ["prepare", str(folder), str(out), "--jobs", "1", "--quiet", *flags],
                [out],
            )
        )
    attempts.append(
        Attempt(
            "evaluate --generated the hostile folder",
            [
                "evaluate",
                "--generated",
                str(folder),
                "--reference",
                str(dataset),
                "--out",
                str(out),
            ],
            [out],
        )
    )
    singles = root / "singles"
    for midi in each:
        one = singles / midi.stem
        one.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(midi, one / midi.name)
        attempts.append(
            Attempt(
                f"evaluate --generated {midi.name}",
                [
                    "evaluate",
                    "--generated",
                    str(one),
                    "--reference",
                    str(dataset),
                    "--out",
                    str(out),
                ],
                [out],
            )
        )
    return attempts


def _as_subprocesses(attempts: list[Attempt], count: int) -> None:
    """Run ``count`` attempts, spread over the kinds, as ``python -m midiforge`` instead."""
    picked = [
        a
        for a in attempts
        if a.what.startswith(
            (
                "generate --primer tpq0",
                "train --resume: state: pickled",
                "render --png den255",
                "prepare --programs",
                "generate: weights: truncated",
                "evaluate --generated huge",
            )
        )
    ]
    for attempt in picked[:count]:
        attempt.subprocess = True


def report(attempts: list[Attempt]) -> dict[str, int]:
    """The numbers ``bench/fuzz.py`` prints."""
    return {
        "inputs tried": len(attempts),
        "of them in subprocesses": sum(a.subprocess for a in attempts),
        "exit status 0": sum(a.status == 0 for a in attempts),
        "exit status 2 (one line)": sum(a.status == 2 for a in attempts),
        "other exit status": sum(a.status not in ACCEPTED for a in attempts),
        "tracebacks": sum("Traceback" in a.stderr for a in attempts),
        "internal errors": sum("internal error" in a.stderr for a in attempts),
        "files written outside the output folder": sum(
            any(p.startswith("wrote outside") for p in a.problems) for a in attempts
        ),
    }
