"""The ``prepare`` stage: a folder of MIDI files → a DATASET dir (see docs/architecture.md).

Files are parsed, cleaned, encoded, placed in a split and packed in worker processes
(:mod:`midiforge.data.prepare_worker`, a chunk of files per task, results in path order), and
the main process de-duplicates and streams each file's packed arrays straight to the store's
dataset writer (:class:`midiforge.store.dataset_writer.DatasetWriter`). At most a few chunks
per worker are in flight, so memory stays flat however large the corpus. The writer builds
everything in a hidden temporary folder beside OUT and renames it into place at the very end:
OUT appears complete or not at all, also after Ctrl-C.

Defaults keep the instruments: every track, drums included, in one REMI stream with Program
tokens (``tracks="all"``; docs/instruments.md says why this layout), each note row carrying its
GM program (-1 for drums). ``tracks="merge"`` gives the one piano stream older datasets had, and
``instrument_groups="families"`` one program per GM family. 256 tokens / 32 notes are the
too-short rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from miditok import MusicTokenizer

from midiforge.config import from_dict
from midiforge.data import corpus, replace
from midiforge.data.bpe import bpe_pass
from midiforge.data.encode import special_ids
from midiforge.data.options import PrepareOptions, PrepareResult
from midiforge.data.prepare_worker import (
    FileResult,
    init_pool_worker,
    init_worker,
    process_chunk,
    spool_chunk,
    tokenizer_for,
    unspool,
)
from midiforge.errors import MidiforgeError, choice_error
from midiforge.store.dataset_writer import DatasetWriter

log = logging.getLogger(__name__)

TASK_CHUNK = 16  # files per hand-off: amortises IPC (a file takes ~3 ms since remi_ids)
CHUNKS_AHEAD = 2  # chunks in flight per worker: one being encoded, one waiting to be

Chunk = list[tuple[str, str]]  # (path, path relative to SRC) of consecutive files


def _check_options(src: Path, out: Path, opts: PrepareOptions) -> MusicTokenizer:
    """Refuse what cannot work before anything is written; → the tokenizer to encode with."""
    if not src.is_dir():
        raise MidiforgeError(f"SRC: folder not found: {src}")
    if opts.tracks not in corpus.TRACK_RULES:
        raise choice_error("tracks", opts.tracks, corpus.TRACK_RULES)
    opts.check()
    # names the accepted tokenizers when this one is unknown
    tokenizer = tokenizer_for(
        opts.tokenizer, opts.tracks, opts.instrument_groups, opts.controls, opts.fim
    )
    corpus.check_ratios(opts.split)
    if opts.jobs is not None and opts.jobs < 1:
        raise MidiforgeError(f"jobs: {opts.jobs} is not accepted; give 1 or more processes")
    if opts.bpe_vocab is not None:
        base = len(tokenizer)
        if opts.bpe_vocab <= base:
            raise MidiforgeError(
                f"bpe_vocab: {opts.bpe_vocab} is not above the base vocabulary of {base} "
                f"tokens; give a larger size, e.g. {base * 2}"
            )
    # --overwrite replaces only a dataset folder, never SRC or anything else (data/replace.py)
    replace.check_out(src, out, opts.overwrite)
    return tokenizer


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` when this process has no other threads (workers start at once, sharing the
    imported modules), else ``forkserver`` (forking a threaded process can deadlock)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload([__name__])
    return ctx


def _in_order(
    pool: Any, chunks: Iterable[Chunk], jobs: int, scratch: Path
) -> Iterator[list[FileResult]]:
    """Each chunk's results in order, with at most ``CHUNKS_AHEAD`` chunks per worker in flight.

    A free-running ``imap`` lets workers run ahead of a busy writer, holding every finished
    file's arrays in memory (and on disk, in ``scratch``); this window bounds that, however
    large the corpus.
    """
    numbered = enumerate(chunks)
    pending: deque[tuple[Any, str]] = deque()

    def submit(k: int, chunk: Chunk) -> None:
        spool = str(scratch / f"chunk-{k}.bin")
        pending.append((pool.apply_async(spool_chunk, (chunk, spool)), spool))

    for k, chunk in itertools.islice(numbered, CHUNKS_AHEAD * jobs):
        submit(k, chunk)
    while pending:
        result, spool = pending.popleft()
        done = result.get()
        upcoming = next(numbered, None)
        if upcoming is not None:  # one fewer in flight: hand out the next
            submit(*upcoming)
        yield unspool(done, spool)


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the garbage collector off the objects that exist when the workers are forked.

    A forked worker shares the main process's pages until either side writes to them, and a
    full collection writes to every object it visits. The main process's manifest records,
    which grow with the corpus, set one off sooner or later; it then copied the pages of
    everything imported (torch, MidiTok) that the workers still shared: POP909 ×10 peaked at
    276 MiB (PSS) without this, 239 MiB with it, against 214 MiB for POP909 once.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _results(
    paths: list[str],
    src: Path,
    writer: DatasetWriter,
    opts: PrepareOptions,
    explicit: dict[str, str] | None,
):
    """Per-file results, a chunk at a time in path order, from worker processes when jobs > 1.

    A context manager so the pool is started (forked) before the progress bar starts its
    monitor thread, and is shut down on any exit, Ctrl-C included.
    """
    root = str(src)
    tasks = [(os.path.join(root, rel), rel) for rel in paths]
    chunks = [tasks[i : i + TASK_CHUNK] for i in range(0, len(tasks), TASK_CHUNK)]
    initargs = (dataclasses.asdict(opts), explicit)
    jobs = opts.jobs or os.cpu_count() or 1
    if jobs == 1:
        init_worker(*initargs)
        yield map(process_chunk, chunks)
        return
    with (
        _frozen_heap(),
        _pool_context().Pool(jobs, initializer=init_pool_worker, initargs=initargs) as pool,
    ):
        yield _in_order(pool, chunks, jobs, writer.scratch())


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="file",
        file=sys.stderr,
        desc="prepare",
        disable=quiet or not sys.stderr.isatty(),
    )


def _build(
    src: Path, writer: DatasetWriter, opts: PrepareOptions, tokenizer: MusicTokenizer
) -> dict[str, Any]:
    """Write every file's arrays and the tokenizer; return the manifest's own entries."""
    paths = corpus.scan(src)
    if not paths:
        raise MidiforgeError(f"SRC: no .mid/.midi files found under {src}")
    explicit = corpus.read_split_file(Path(opts.split_by)) if opts.split_by else None
    labels = corpus.LabelSource.parse(opts.labels_from)
    specials = special_ids(tokenizer)
    records: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    with (
        _results(paths, src, writer, opts, explicit) as results,
        _progress(len(paths), opts.quiet) as bar,
    ):
        for chunk in results:
            bar.update(len(chunk))
            for record, placement, packed in chunk:
                records.append(record)
                record["label"] = labels.label(record["path"])
                if placement is None or packed is None:
                    continue  # skipped in the worker
                if opts.dedup and record["hash"] in seen:
                    detail = f"same notes as {seen[record['hash']]}"
                    record.update(status="skipped", reason="duplicate", detail=detail)
                    continue
                seen.setdefault(record["hash"], record["path"])
                record["split_source"] = placement[1]
                record["tokens"] = packed.tokens  # with BOS/EOS when added
                record["split"] = placement[0]
                record["index"] = writer.add_packed(placement[0], packed, record["label"])
    for record in records:  # one schema for kept and skipped records
        record.setdefault("split", None)
        record.setdefault("split_source", None)
        record.setdefault("index", None)
        record.setdefault("hash", None)
    label_names = sorted({r["label"] for r in records if r["status"] == "kept" and r["label"]})
    if opts.bpe_vocab is not None:
        bpe_pass(writer.splits, tokenizer, opts.bpe_vocab, opts.bos_eos, specials, records)
    writer.save_tokenizer(tokenizer)
    kept = sum(r["status"] == "kept" for r in records)
    skipped = Counter(r["reason"] for r in records if r["status"] != "kept")
    return {
        "options": {**dataclasses.asdict(opts), "split": list(opts.split)},
        "tokenizer": {
            "name": type(tokenizer).__name__,
            "vocab_size": len(tokenizer),
            "bpe": opts.bpe_vocab is not None,
            "bos_eos": opts.bos_eos,
            "programs": opts.tracks == "all",
            "special_ids": specials,
        },
        "labels": label_names,
        "files": records,
        "summary": {"kept": kept, "skipped": dict(sorted(skipped.items())), "seconds": 0.0},
    }


def _check_kept(src: Path, entries: dict[str, Any]) -> None:
    """An empty dataset is no result: say why every file was skipped instead of writing one."""
    if entries["summary"]["kept"]:
        return
    skipped = entries["summary"]["skipped"]
    reasons = ", ".join(f"{n} {reason}" for reason, n in skipped.items())
    raise MidiforgeError(
        f"SRC {src}: none of its {sum(skipped.values())} MIDI files was kept ({reasons}); "
        "nothing was written. Check the cleaning options (programs, tracks, drums, "
        "min_tokens, min_notes) or the files"
    )


def prepare(src: str | Path, out: str | Path, **options: Any) -> PrepareResult:
    """Clean, split and encode every MIDI file under ``src`` into the dataset dir ``out``.

    Parameters
    ----------
    src
        Folder scanned recursively for .mid/.midi files (any letter case).
    out
        Dataset dir to create (format in docs/architecture.md); built beside itself in a
        temporary folder and renamed into place only when complete.
    **options
        Fields of :class:`PrepareOptions`, e.g. ``tokenizer="tsd"``, ``tracks="longest"``,
        ``labels_from="folder"``, ``jobs=2``. Unknown names are an error that lists them.

    Returns
    -------
    PrepareResult
        Files kept and skipped per reason, tokens and notes per split, seconds taken.
    """
    started = time.perf_counter()
    opts = from_dict(PrepareOptions, options, where="prepare")
    src, out = Path(src), Path(out)
    tokenizer = _check_options(src, out, opts)
    with DatasetWriter(out) as writer:
        entries = _build(src, writer, opts, tokenizer)
        _check_kept(src, entries)
        entries["summary"]["seconds"] = round(time.perf_counter() - started, 3)
        manifest = writer.commit(entries)
    summary = manifest["summary"]
    log.info("prepared %s: %d kept, %s skipped", out, summary["kept"], summary["skipped"])
    return PrepareResult(
        path=out,
        kept=summary["kept"],
        skipped=summary["skipped"],
        splits=manifest["splits"],
        seconds=summary["seconds"],
        manifest=manifest,
    )
