"""``prepare`` in worker processes writes what it writes in one process, byte for byte."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from midiforge.data import prepare as prepare_module
from midiforge.data.options import PrepareOptions
from midiforge.data.prepare import prepare
from midiforge.data.prepare_worker import init_worker
from midiforge.store.dataset_dir import PreparedDataset

from ..conftest import interruptible
from .conftest import link_files, nottingham_files, pop909_files


def _mixed_corpus(datasets: Path, root: Path) -> Path:
    """Folk and pop folders, a duplicate in a later folder, an empty and a corrupted file."""
    folk = link_files(nottingham_files(datasets, 14), root / "folk")
    link_files(pop909_files(datasets, 4), root / "pop")
    link_files(folk[1:2], root / "zz_copies")  # same notes as folk/…: a duplicate
    robust = datasets / "robustness"
    link_files(
        [
            robust / "MIDIs_one_track" / "empty.mid",
            robust / "MIDIs_corrupted" / "ValueError_Control168.mid",
        ],
        root / "odd",
    )
    return root


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file of a DATASET dir; the manifest without what differs by design (jobs, time)."""
    out = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "manifest.json":
            manifest = json.loads(data)
            manifest["options"]["jobs"] = manifest["summary"]["seconds"] = None
            data = json.dumps(manifest, indent=1).encode()  # keys keep their order
        out[path.relative_to(folder).as_posix()] = data
    return out


def test_jobs_1_and_2_write_identical_datasets(datasets: Path, tmp_path: Path, monkeypatch) -> None:
    src = _mixed_corpus(datasets, tmp_path / "src")
    table = tmp_path / "splits.csv"
    table.write_text("path,split\npop/003.mid,test\n")
    options = dict(quiet=True, labels_from="folder", split_by=str(table), min_tokens=64)
    one = prepare(src, tmp_path / "one", jobs=1, **options)
    # small chunks, so the second run also refills its window of chunks in flight many times
    monkeypatch.setattr(prepare_module, "TASK_CHUNK", 3)
    two = prepare(src, tmp_path / "two", jobs=2, **options)
    assert one.skipped == two.skipped == {"duplicate": 1, "empty": 1, "unreadable": 1}
    assert one.kept == two.kept == 18
    files = {r["path"]: r for r in two.manifest["files"]}
    assert files["pop/003.mid"]["split_source"] == "file"
    copy = next(r for path, r in files.items() if path.startswith("zz_copies/"))
    assert copy["reason"] == "duplicate"
    assert copy["detail"] == f"same notes as folk/{copy['path'].split('/')[-1]}"
    assert _contents(tmp_path / "one") == _contents(tmp_path / "two")
    data = PreparedDataset(tmp_path / "two")
    assert data.labels == ["folk", "pop"]


def test_workers_run_at_most_a_window_ahead(datasets: Path, tmp_path: Path) -> None:
    files = [str(p) for p in nottingham_files(datasets, 40)]
    taken = []

    def chunks():
        for i in range(0, len(files), 2):
            taken.append(i)
            yield [(f, Path(f).name) for f in files[i : i + 2]]

    opts = dataclasses.asdict(PrepareOptions(min_tokens=0))
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2, initializer=init_worker, initargs=(opts, None)) as pool:
        results = prepare_module._in_order(pool, chunks(), jobs=2, scratch=tmp_path)
        first = next(results)
        window = prepare_module.CHUNKS_AHEAD * 2
        assert len(taken) == window + 1  # the first window, and one to replace the chunk read
        assert len(list(tmp_path.iterdir())) <= window  # the chunk read was deleted
        assert [r[0]["path"] for r in first] == [Path(f).name for f in files[:2]]
        rest = list(results)
    assert len(taken) == 20 and len(rest) == 19
    assert not list(tmp_path.iterdir())
    paths = [r[0]["path"] for chunk in rest for r in chunk]
    assert paths == [Path(f).name for f in files[2:]]


def test_ctrl_c_with_workers_is_one_line_and_leaves_nothing(datasets: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    link_files(pop909_files(datasets, 400), src)  # still running at the signal
    argv = ["prepare", str(src), str(tmp_path / "out"), "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "midiforge", *argv],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
        start_new_session=True,  # its own process group, which Ctrl-C in a terminal signals
    )
    deadline = time.monotonic() + 30
    while not any((p / "scratch").is_dir() for p in tmp_path.glob(".out.tmp*")):
        assert proc.poll() is None and time.monotonic() < deadline, "workers never started"
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # the main process and both workers, as Ctrl-C does
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.strip() == "midiforge prepare: interrupted"  # no traceback from a worker
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
