"""Benchmark of ``midiforge prepare`` on the whole POP909 corpus.

Prints three ratios, each against a baseline measured in the same run:

1. parallel speed-up: wall time of ``--jobs 1`` / ``--jobs 2`` (target ≥ 1.7);
2. pipeline overhead: ``--jobs 1`` / a bare loop of symusic load + MidiTok REMI encode over the
   same files (target ≤ 1.1);
3. memory flatness: peak RSS of the whole process tree preparing POP909 repeated ten times
   (symlinks, ``--no-dedup``) / preparing it once (target ≤ 1.2).

Every measurement runs in a fresh subprocess whose process tree is sampled with psutil, so
start-up costs and worker processes are counted the same way on both sides of each ratio.

Usage: ``python bench/prepare.py [--datasets ../shared/datasets] [--limit N] [--repeat 10]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PERIOD_S = 0.02  # RSS sampling interval
MIB = 1 << 20

BARE_LOOP = """
import sys
from pathlib import Path
from miditok import REMI, TokenizerConfig
from symusic import Score
tok = REMI(TokenizerConfig(special_tokens=["PAD", "BOS", "EOS", "MASK"]))
n = 0
for path in sorted(Path(sys.argv[1]).rglob("*.mid")):
    seqs = tok.encode(Score(str(path)))
    n += sum(len(s.ids) for s in seqs)
print(n)
"""


def measure(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB summed over its process tree)."""
    start = time.perf_counter()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [proc, *proc.children(recursive=True)]:
                total += p.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(SAMPLE_PERIOD_S)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()}")
    return seconds, peak / MIB


def link_corpus(files: list[Path], folder: Path, repeat: int) -> None:
    for k in range(repeat):
        sub = folder / f"copy{k}"
        sub.mkdir(parents=True)
        for f in files:
            (sub / f.name).symlink_to(f.resolve())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N songs")
    parser.add_argument("--repeat", type=int, default=10, help="copies for the memory test")
    args = parser.parse_args()
    files = sorted((args.datasets / "pop909").glob("*/*.mid"))[: args.limit]
    prepare = [sys.executable, "-m", "midiforge", "prepare", "--quiet"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        link_corpus(files, tmp / "once", 1)
        link_corpus(files, tmp / "many", args.repeat)
        print(f"POP909: {len(files)} files; {os.cpu_count()} CPU cores", flush=True)
        bare_s, _ = measure([sys.executable, "-c", BARE_LOOP, str(tmp / "once")])
        print(f"bare loop (symusic load + REMI encode): {bare_s:.1f} s", flush=True)
        j1_s, j1_mem = measure([*prepare, "--jobs", "1", str(tmp / "once"), str(tmp / "o1")])
        print(f"prepare --jobs 1: {j1_s:.1f} s, peak {j1_mem:.0f} MiB", flush=True)
        j2_s, once_mem = measure([*prepare, "--jobs", "2", str(tmp / "once"), str(tmp / "o2")])
        print(f"prepare --jobs 2: {j2_s:.1f} s, peak {once_mem:.0f} MiB", flush=True)
        many_s, many_mem = measure(
            [*prepare, "--jobs", "2", "--no-dedup", str(tmp / "many"), str(tmp / "o3")]
        )
        print(
            f"prepare --jobs 2 --no-dedup, x{args.repeat}: {many_s:.1f} s, peak {many_mem:.0f} MiB",
            flush=True,
        )
    print()
    print(f"speed-up jobs 2 vs jobs 1:       {j1_s / j2_s:.2f}x  (target >= 1.7)")
    print(f"jobs 1 vs bare loop time:        {j1_s / bare_s:.2f}x  (target <= 1.1)")
    print(f"peak RSS x{args.repeat} corpus vs x1:      {many_mem / once_mem:.2f}x  (target <= 1.2)")


if __name__ == "__main__":
    main()
