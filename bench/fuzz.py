"""Hostile inputs for every command: how many were tried, and how many crashed (target: 0).

Run from the repository root: ``python bench/fuzz.py [--per-file N] [--real M] [--bitflips K]``.
Builds the hostile set of ``tests/hostile.py``, larger than ``tests/test_fuzz.py`` uses (random
bytes, truncations and bit flips of M real MIDI files, N of each; crafted extreme MIDI; damaged
copies of two tiny runs trained here, with K bit-flip variants per run file), runs every command
on it through ``midiforge.cli.main`` (a few as ``python -m midiforge`` subprocesses) and prints
the inputs tried, the tracebacks (target 0), the files written outside the output folder
(target 0) and the exit statuses. Baseline: zero failures is the target, not a ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/ holds the hostile set, shared with the test suite

from tests import fuzzing, hostile  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
REAL = [
    "nottingham/ashover1.mid",
    "pop909/001/001.mid",
    "robustness/MIDIs_multitrack/Aicha.mid",
    "robustness/MIDIs_one_track/Maestro_1.mid",
    "robustness/MIDIs_corrupted/ValueError_Control168.mid",
]
DATASET_SONGS = [f"{i:03d}" for i in range(1, 9)]


def _dataset(folder: Path) -> Path:
    """A small prepared POP909 dataset to train on and to evaluate against."""
    from midiforge.data.prepare import prepare

    src = folder / "pop909"
    src.mkdir(parents=True)
    for song in DATASET_SONGS:
        (src / f"{song}.mid").write_bytes((DATASETS / "pop909" / song / f"{song}.mid").read_bytes())
    prepare(src, folder / "dataset", jobs=1, quiet=True)
    return folder / "dataset"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-file", type=int, default=20, help="random/truncated/flipped files")
    parser.add_argument("--real", type=int, default=len(REAL), help="real MIDI files to damage")
    parser.add_argument("--bitflips", type=int, default=10, help="bit-flip variants per run file")
    parser.add_argument("--subprocesses", type=int, default=6)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="midiforge-fuzz-") as tmp:
        root = Path(tmp) / "fuzz"
        real = [p for p in (DATASETS / f for f in REAL[: args.real]) if p.is_file()]
        midis = hostile.write_midis(root / "midi", real, 0, args.per_file)
        dataset = _dataset(Path(tmp) / "data")
        runs = fuzzing.train_tiny_runs(dataset, root / "runs")
        cwd = root / "cwd"
        cwd.mkdir()
        attempts = fuzzing.plan(root, dataset, runs, midis, run_extra=args.bitflips,
                                subprocesses=args.subprocesses)  # fmt: skip
        fuzzing.run_all(attempts, root, cwd)
    seconds = time.perf_counter() - started
    for name, value in fuzzing.report(attempts).items():
        print(f"{name:42s} {value}")
    kinds = Counter(a.what.split(":")[0].split(" (")[0].split(" --primer")[0] for a in attempts)
    print("by command:", ", ".join(f"{k.split()[0]} {v}" for k, v in _by_command(kinds).items()))
    print(f"{'seconds':42s} {seconds:.0f}")
    for attempt in attempts:
        if attempt.problems:
            print(f"FAILED {attempt.what}: {'; '.join(attempt.problems)}: {attempt.stderr[-300:]}")


def _by_command(kinds: Counter) -> dict[str, int]:
    totals: Counter = Counter()
    for kind, n in kinds.items():
        totals[kind.split()[0]] += n
    return dict(totals.most_common())


if __name__ == "__main__":
    main()
