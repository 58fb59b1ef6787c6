"""The ``prepare`` stage: a folder of MIDI files → a DATASET dir (see docs/architecture.md).

Files are parsed, cleaned and encoded in worker processes (one file per task, results in
path order), and the main process streams each file's arrays straight to the store's dataset
writer (:class:`midiforge.store.dataset_writer.DatasetWriter`), so memory stays flat however
large the corpus. The writer builds everything in a hidden temporary folder beside OUT and
renames it into place at the very end: OUT appears complete or not at all, also after Ctrl-C.

Defaults keep the instruments: every track, drums included, in one REMI stream with Program
tokens (``tracks="all"``; docs/instruments.md says why this layout), each note row carrying its
GM program (-1 for drums). ``tracks="merge"`` gives the one piano stream older datasets had, and
``instrument_groups="families"`` one program per GM family. 256 tokens / 32 notes are the
too-short rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from miditok import MusicTokenizer

from midiforge.config import from_dict
from midiforge.data import controls, corpus, replace
from midiforge.data.bpe import bpe_pass
from midiforge.data.encode import build_tokenizer, notes_from_score, score_to_array, special_ids
from midiforge.data.options import GM_PROGRAMS, PrepareOptions, PrepareResult
from midiforge.errors import MidiforgeError, choice_error
from midiforge.instruments import DRUMS, family_program
from midiforge.io.midi import load_midi
from midiforge.schema import FIELD
from midiforge.store.dataset_writer import DatasetWriter

log = logging.getLogger(__name__)

HASH_COLUMNS = (FIELD["pitch"], FIELD["onset"], FIELD["duration"], FIELD["program"])
TASK_CHUNK = 16  # files per hand-off: amortises IPC (a file takes ~3 ms since remi_ids)


# ---------------------------------------------------------------- worker side (one file)

_WORKER: dict[str, Any] = {}


def tokenizer_for(
    tokenizer: str,
    tracks: str,
    instrument_groups: str = "programs",
    control_names: list[str] | None = None,
) -> MusicTokenizer:
    """The tokenizer a dataset with these options is encoded with.

    ``tracks="all"`` adds Program tokens; with GM families only the 16 family programs and
    drums get one, so grouping also shrinks the vocabulary the models learn. ``control_names``
    adds the learned controls' tokens after the tokenizer's own (:mod:`midiforge.data.controls`).
    """
    if tracks != "all":
        tok = build_tokenizer(tokenizer)
    elif instrument_groups == "families":
        programs = sorted({DRUMS, *(family_program(p) for p in GM_PROGRAMS)})
        tok = build_tokenizer(tokenizer, use_programs=True, programs=programs)
    else:
        tok = build_tokenizer(tokenizer, use_programs=True)
    if control_names:
        controls.add_control_tokens(tok, control_names)
    return tok


def _init_worker(opts: dict[str, Any]) -> None:
    """Build the tokenizer once per process (it is not cheap to pickle per task)."""
    _WORKER["opts"] = opts
    _WORKER["tokenizer"] = tokenizer_for(
        opts["tokenizer"], opts["tracks"], opts["instrument_groups"], opts["controls"]
    )


def _skip(rel: str, reason: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"path": rel, "status": "skipped", "reason": reason, "detail": detail, **extra}


def _process(task: tuple[str, str]) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Parse, clean and encode one file → (record, token ids int32, notes float32)."""
    path, rel = task
    opts, tokenizer = _WORKER["opts"], _WORKER["tokenizer"]
    try:
        score = load_midi(path)
    except MidiforgeError as exc:
        detail = str(exc).replace(path, rel)  # the manifest holds paths relative to SRC
        return _skip(rel, "unreadable", detail, hash=corpus.bytes_hash(Path(path))), None, None
    score, stats = corpus.clean_score(
        score,
        programs=opts["programs"],
        drums=opts["drums"],
        tracks=opts["tracks"],
        max_note_beats=opts["max_note_beats"],
        max_gap_beats=opts["max_gap_beats"],
        instrument_groups=opts["instrument_groups"],
    )
    counts = {
        "tracks": stats.tracks_in,
        "notes_dropped_long": stats.notes_dropped_long,
        "gaps_shortened": stats.gaps_shortened,
        "meters_dropped": stats.meters_dropped,
    }
    if score is None:
        detail = f"{stats.tracks_in} track(s) with notes; none left after selection and cleaning"
        return _skip(rel, stats.reason or "empty", detail, **counts), None, None
    notes = notes_from_score(score)
    digest = corpus.content_hash(notes, HASH_COLUMNS)
    try:
        if opts["controls"]:  # an annotation's clock no longer fits once silences are cut
            source = None if stats.gaps_shortened else Path(path)
            ids = controls.encode_with_controls(
                tokenizer, score, opts["controls"], seed=digest, source=source
            )
        else:
            ids = score_to_array(tokenizer, score)
    except Exception as exc:  # MidiTok fails on some pathological content; skip, don't crash
        return _skip(rel, "unencodable", f"{type(exc).__name__}: {exc}", **counts), None, None
    beats = (
        float(notes[:, FIELD["onset"]].max() + notes[:, FIELD["duration"]].max())
        if len(notes)
        else 0.0
    )
    record = {
        "path": rel,
        "hash": digest,
        "status": "kept",
        "reason": None,
        "notes": len(notes),
        "tokens": len(ids),
        "beats": round(beats, 3),
        **counts,
        # the source's track names, which neither encoding can hold: [program, name] per track
        "track_names": [
            [DRUMS if t.is_drum else int(t.program), t.name] for t in score.tracks if t.name
        ],
    }
    if len(ids) < opts["min_tokens"] or len(notes) < opts["min_notes"]:
        detail = (
            f"{len(ids)} tokens, {len(notes)} notes; need {opts['min_tokens']} tokens and "
            f"{opts['min_notes']} notes (min_tokens/min_notes)"
        )
        return {**record, "status": "skipped", "reason": "too short", "detail": detail}, None, None
    return record, ids, notes


def _check_options(src: Path, out: Path, opts: PrepareOptions) -> None:
    if not src.is_dir():
        raise MidiforgeError(f"SRC: folder not found: {src}")
    if opts.tracks not in corpus.TRACK_RULES:
        raise choice_error("tracks", opts.tracks, corpus.TRACK_RULES)
    opts.check()
    build_tokenizer(opts.tokenizer)  # names the accepted tokenizers when this one is unknown
    corpus.check_ratios(opts.split)
    if opts.jobs is not None and opts.jobs < 1:
        raise MidiforgeError(f"jobs: {opts.jobs} is not accepted; give 1 or more processes")
    if opts.bpe_vocab is not None:
        base = len(tokenizer_for(opts.tokenizer, opts.tracks, opts.instrument_groups))
        if opts.bpe_vocab <= base:
            raise MidiforgeError(
                f"bpe_vocab: {opts.bpe_vocab} is not above the base vocabulary of {base} "
                f"tokens; give a larger size, e.g. {base * 2}"
            )
    # --overwrite replaces only a dataset folder, never SRC or anything else (data/replace.py)
    replace.check_out(src, out, opts.overwrite)


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


@contextlib.contextmanager
def _results(paths: list[str], src: Path, opts: PrepareOptions, jobs: int):
    """Per-file results in path order, from worker processes when jobs > 1.

    A context manager so the pool is started (forked) before the progress bar starts its
    monitor thread, and is shut down on any exit, Ctrl-C included.
    """
    tasks = [(str(src / rel), rel) for rel in paths]
    opts_dict = dataclasses.asdict(opts)
    if jobs == 1:
        _init_worker(opts_dict)
        yield map(_process, tasks)
        return
    with _pool_context().Pool(jobs, initializer=_init_worker, initargs=(opts_dict,)) as pool:
        yield pool.imap(_process, tasks, chunksize=TASK_CHUNK)


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="file",
        file=sys.stderr,
        desc="prepare",
        disable=quiet or not sys.stderr.isatty(),
    )


def _build(src: Path, writer: DatasetWriter, opts: PrepareOptions) -> dict[str, Any]:
    """Write every file's arrays and the tokenizer; return the manifest's own entries."""
    paths = corpus.scan(src)
    if not paths:
        raise MidiforgeError(f"SRC: no .mid/.midi files found under {src}")
    explicit = corpus.read_split_file(Path(opts.split_by)) if opts.split_by else None
    labels = corpus.LabelSource.parse(opts.labels_from)
    tokenizer = tokenizer_for(opts.tokenizer, opts.tracks, opts.instrument_groups, opts.controls)
    specials = special_ids(tokenizer)
    jobs = opts.jobs or os.cpu_count() or 1
    records: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    with _results(paths, src, opts, jobs) as results, _progress(len(paths), opts.quiet) as bar:
        for record, ids, notes in results:
            bar.update(1)
            records.append(record)
            rel = record["path"]
            record["label"] = labels.label(rel)
            if record["status"] != "kept":
                continue
            if opts.dedup and record["hash"] in seen:
                record.update(
                    status="skipped",
                    reason="duplicate",
                    detail=f"same notes as {seen[record['hash']]}",
                )
                continue
            seen.setdefault(record["hash"], rel)
            # a split file fixes the split of the files it lists (a published benchmark split);
            # the rest of a mixed corpus falls back to the content-hash rule
            if explicit is not None and rel in explicit:
                split, record["split_source"] = explicit[rel], "file"
            else:
                split = corpus.split_for_hash(record["hash"], opts.split)
                record["split_source"] = "hash"
            if opts.bos_eos:
                ids = np.concatenate([[specials["BOS"]], ids, [specials["EOS"]]]).astype(np.int32)
                record["tokens"] = len(ids)
            record["split"] = split
            record["index"] = writer.add(split, ids, notes, record["label"])
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
    _check_options(src, out, opts)
    with DatasetWriter(out) as writer:
        entries = _build(src, writer, opts)
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
