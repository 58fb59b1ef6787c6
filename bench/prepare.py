"""Benchmark of ``midiforge prepare`` on the whole POP909 corpus.

Prints these ratios, each against a baseline measured in the same run:

1. parallel speed-up: time of ``--jobs 1`` / ``--jobs 2`` (target ≥ 1.7), as the stage's own
   clock reports it (the ``time:`` line: scanning, parsing, encoding, writing — everything the
   option changes) and, beside it, the whole command's wall time, which also holds ~1.3 s of
   serial start-up (Python, and torch, which MidiTok imports) that no option can parallelize;
2. pipeline overhead: ``--jobs 1`` / a bare loop of symusic load + MidiTok REMI encode over the
   same files (target ≤ 1.1);
3. memory flatness: peak RSS of the whole process tree preparing POP909 repeated ten times
   (symlinks, ``--no-dedup``) / preparing it once (target ≤ 1.2);
4. the same speed-up from CPU seconds alone, for a machine without two free cores: the stage's
   CPU with ``--jobs 1`` (T1) against the main process's (M) and the workers' (W) with
   ``--jobs 2``, each run in process (``STAGE_CPU``). Two free cores would give between
   T1 / (M + W/2) (all of the main process's work serial: Amdahl with serial fraction M) and
   2·T1 / (M + W) (all of it overlapped with the workers);
5. instruments: cost per note of preparing the ten-song multi-track folder (drums, bass,
   guitars, keys; ``robustness/MIDIs_multitrack``, repeated ``--repeat`` times) with its
   instruments kept (the default: Program tokens, drums) / merged to one piano stream
   (``--tracks merge``), ``--jobs 1`` both (target ≤ 1.2). Per note, because merging drops
   the drum notes.

Every measurement runs in a fresh subprocess whose process tree is sampled with psutil, so
start-up costs and worker processes are counted the same way on both sides of each ratio.

Usage: ``python bench/prepare.py [--datasets ../shared/datasets] [--limit N] [--repeat 10]
[--multitrack-only] [--cpu-only]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PERIOD_S = 0.05  # memory sampling interval
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


PER_FILE_WORK = """
import dataclasses, sys, time
from pathlib import Path
from midiforge.data import prepare_worker as P
from midiforge.data.options import PrepareOptions
files = [str(p) for p in sorted(Path(sys.argv[1]).rglob("*.mid"))][:60]
cost = {}
for tracks in ("all", "merge"):
    P.init_worker(dataclasses.asdict(PrepareOptions(tracks=tracks)))
    best = float("inf")
    for _ in range(2):
        start, notes = time.process_time(), 0
        for f in files:
            notes += P.process_file(f, f)[0].get("notes", 0)
        best = min(best, (time.process_time() - start) / notes)
    cost[tracks] = best
print(f"instruments kept vs merge per note (per-file work CPU: parse, clean, encode; "
      f"{1e6 * cost['all']:.1f} vs {1e6 * cost['merge']:.1f} us/note): "
      f"{cost['all'] / cost['merge']:.2f}x")
"""


STAGE_CPU = """
import json, resource, sys, time
from midiforge.data.prepare import prepare
start = time.process_time()
prepare(sys.argv[1], sys.argv[2], jobs=int(sys.argv[3]), quiet=True)
main = time.process_time() - start
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"main": main, "workers": kids.ru_utime + kids.ru_stime}))
"""


def cpu_row(folder: Path, tmp: Path, rounds: int = 2) -> None:
    """Ratio 4: the ``--jobs 2`` speed-up two free cores would give, from CPU seconds (the
    least of ``rounds`` interleaved runs each, so a loaded machine's slow run is dropped)."""
    runs: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for k in range(rounds):
        for jobs in (1, 2):
            cmd = [
                sys.executable,
                "-c",
                STAGE_CPU,
                str(folder),
                str(tmp / f"cpu{jobs}-{k}"),
                str(jobs),
            ]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            runs[jobs].append(json.loads(out.strip().splitlines()[-1]))
    t1 = min(r["main"] + r["workers"] for r in runs[1])
    best = min(runs[2], key=lambda r: r["main"] + r["workers"])
    main, workers = best["main"], best["workers"]
    print(
        f"stage CPU: --jobs 1 {t1:.2f} s; --jobs 2 main process {main:.2f} s + workers "
        f"{workers:.2f} s (parallel overhead {(main + workers) / t1:.2f}x)"
    )
    print(
        f"speed-up jobs 2 vs jobs 1 on two free cores, from CPU seconds: "
        f"{t1 / (main + workers / 2):.2f}x (main serial) to {2 * t1 / (main + workers):.2f}x "
        "(main overlapped)  (target >= 1.7)",
        flush=True,
    )


def stage_seconds(stdout: str, out: Path) -> float:
    """The stage's own clock: what the ``time: N s`` line that ``midiforge prepare`` prints
    rounds to 0.1 s, read at 1 ms from the dataset's manifest (``summary.seconds``), since
    a multi-track run now takes well under a second."""
    found = re.search(r"^time: ([0-9.]+) s", stdout, re.M)
    if not found:
        raise SystemExit(f"no 'time:' line in the prepare summary:\n{stdout}")
    manifest = out / "manifest.json"
    if manifest.is_file():
        return float(json.loads(manifest.read_text())["summary"]["seconds"])
    return float(found.group(1))


def measure(cmd: list[str]) -> tuple[float, float, float, float, str]:
    """Run ``cmd``; return wall seconds, CPU seconds (user + sys), peak RSS and peak PSS (MiB)
    of its whole process tree, and what it printed.

    CPU seconds come from ``RUSAGE_CHILDREN``, which includes the pool workers the command
    waited for; on a machine shared with other jobs they show the work done, which wall time
    cannot.

    RSS sums count pages shared between forked workers once per process; PSS splits each
    shared page between its users, so its sum is the tree's real footprint.
    """
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = psutil.Popen(cmd, stdout=out, stderr=subprocess.PIPE)
        peak_rss = peak_pss = 0
        while proc.poll() is None:
            rss = pss = 0
            try:
                for p in [proc, *proc.children(recursive=True)]:
                    info = p.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
            except psutil.Error:
                pass
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(SAMPLE_PERIOD_S)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        out.seek(0)
        return seconds, cpu, peak_rss / MIB, peak_pss / MIB, out.read().decode()


def notes_kept(stdout: str) -> int:
    """Notes in every split, from the summary table that ``midiforge prepare`` prints."""
    rows = re.findall(r"^(?:train|valid|test)\s+\d+\s+\d+\s+(\d+)$", stdout, re.M)
    if not rows:
        raise SystemExit(f"no split rows in the prepare summary:\n{stdout}")
    return sum(int(n) for n in rows)


def link_corpus(files: list[Path], folder: Path, repeat: int) -> None:
    for k in range(repeat):
        sub = folder / f"copy{k}"
        sub.mkdir(parents=True)
        for f in files:
            (sub / f.name).symlink_to(f.resolve())


def multitrack_row(datasets: Path, tmp: Path, repeat: int) -> None:
    """Instruments kept vs merged, per note, on the multi-track pop songs (ratio 5)."""
    files = sorted(p for p in (datasets / "robustness" / "MIDIs_multitrack").glob("*.mid"))
    link_corpus(files, tmp / "multi", repeat)
    base = [sys.executable, "-m", "midiforge", "prepare", "--quiet", "--jobs", "1", "--no-dedup"]
    costs = {}
    for name, extra in (("instruments kept", []), ("--tracks merge", ["--tracks", "merge"])):
        dest = tmp / name[:6]
        _, cpu, _, _, out = measure([*base, *extra, str(tmp / "multi"), str(dest)])
        stage, notes = stage_seconds(out, dest), notes_kept(out)
        costs[name] = (stage / notes, cpu / notes)
        print(
            f"multi-track x{repeat} ({len(files)} songs), {name}: {notes} notes, stage "
            f"{stage:.2f} s ({1e6 * stage / notes:.1f} us/note), command CPU {cpu:.1f} s "
            f"({1e6 * cpu / notes:.1f} us/note)",
            flush=True,
        )
    kept, merged = costs["instruments kept"], costs["--tracks merge"]
    print(
        f"instruments kept vs merge per note (stage): {kept[0] / merged[0]:.2f}x  (target <= 1.2)"
    )
    print(f"instruments kept vs merge per note (command CPU): {kept[1] / merged[1]:.2f}x")
    work = [sys.executable, "-c", PER_FILE_WORK, str(tmp / "multi")]
    print(subprocess.run(work, check=True, capture_output=True, text=True).stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N songs")
    parser.add_argument("--repeat", type=int, default=10, help="copies for the memory test")
    parser.add_argument(
        "--multitrack-only", action="store_true", help="run only the instruments row (ratio 5)"
    )
    parser.add_argument(
        "--cpu-only", action="store_true", help="run only the CPU-seconds speed-up (ratio 4)"
    )
    args = parser.parse_args()
    if args.multitrack_only:
        with tempfile.TemporaryDirectory() as tmp_name:
            multitrack_row(args.datasets, Path(tmp_name), args.repeat)
        return
    files = sorted((args.datasets / "pop909").glob("*/*.mid"))[: args.limit]
    if args.cpu_only:
        with tempfile.TemporaryDirectory() as tmp_name:
            link_corpus(files, Path(tmp_name) / "once", 1)
            cpu_row(Path(tmp_name) / "once", Path(tmp_name))
        return
    prepare = [sys.executable, "-m", "midiforge", "prepare", "--quiet"]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        link_corpus(files, tmp / "once", 1)
        link_corpus(files, tmp / "many", args.repeat)
        print(f"POP909: {len(files)} files; {os.cpu_count()} CPU cores", flush=True)
        bare_s, bare_cpu, _, _, _ = measure([sys.executable, "-c", BARE_LOOP, str(tmp / "once")])
        print(
            f"bare loop (symusic load + REMI encode): {bare_s:.1f} s, CPU {bare_cpu:.1f} s",
            flush=True,
        )
        j1_s, j1_cpu, _, _, j1_out = measure(
            [*prepare, "--jobs", "1", str(tmp / "once"), str(tmp / "o1")]
        )
        j1_stage = stage_seconds(j1_out, tmp / "o1")
        print(f"prepare --jobs 1: {j1_s:.1f} s (stage {j1_stage:.1f} s), CPU {j1_cpu:.1f} s")
        j2_s, j2_cpu, once_rss, once_pss, j2_out = measure(
            [*prepare, "--jobs", "2", str(tmp / "once"), str(tmp / "o2")]
        )
        j2_stage = stage_seconds(j2_out, tmp / "o2")
        print(
            f"prepare --jobs 2: {j2_s:.1f} s (stage {j2_stage:.1f} s), CPU {j2_cpu:.1f} s, "
            f"peak RSS {once_rss:.0f} MiB, PSS {once_pss:.0f} MiB",
            flush=True,
        )
        many = [*prepare, "--jobs", "2", "--no-dedup", str(tmp / "many"), str(tmp / "o3")]
        many_s, many_cpu, many_rss, many_pss, _ = measure(many)
        print(
            f"prepare --jobs 2 --no-dedup, x{args.repeat}: {many_s:.1f} s, CPU {many_cpu:.1f} s, "
            f"peak RSS {many_rss:.0f} MiB, PSS {many_pss:.0f} MiB",
            flush=True,
        )
    print()
    print(f"speed-up jobs 2 vs jobs 1 (stage):  {j1_stage / j2_stage:.2f}x  (target >= 1.7)")
    print(f"speed-up jobs 2 vs jobs 1 (command wall, with start-up): {j1_s / j2_s:.2f}x")
    print(f"jobs 1 vs bare loop (wall):         {j1_s / bare_s:.2f}x  (target <= 1.1)")
    print(f"jobs 1 vs bare loop (CPU):          {j1_cpu / bare_cpu:.2f}x")
    print(f"CPU jobs 2 / CPU jobs 1:            {j2_cpu / j1_cpu:.2f}x  (parallel overhead)")
    print(
        f"peak PSS x{args.repeat} corpus vs x1:       {many_pss / once_pss:.2f}x  (target <= 1.2)"
    )
    print(f"peak RSS x{args.repeat} corpus vs x1:       {many_rss / once_rss:.2f}x")
    print()
    with tempfile.TemporaryDirectory() as tmp_name:
        link_corpus(files, Path(tmp_name) / "once", 1)
        cpu_row(Path(tmp_name) / "once", Path(tmp_name))
    print()
    with tempfile.TemporaryDirectory() as tmp_name:
        multitrack_row(args.datasets, Path(tmp_name), args.repeat)


if __name__ == "__main__":
    main()
