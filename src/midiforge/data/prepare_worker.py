"""What ``prepare`` does to each file, in a worker process (or in-process with ``jobs=1``).

A worker parses, cleans and encodes a file, builds its manifest record, computes its split
from the content hash and packs its arrays into the bytes the split files store
(:func:`midiforge.store.dataset_writer.pack_file`). The main process is left with what needs
every file in order: de-duplication, appending the packed bytes, and the record's index. That
serial part is what bounds the speed-up with more workers (issue 2), so nothing per file that
can happen here happens there.

Work goes out in chunks of files and comes back as one list per chunk, so the pickling and
hand-off cost is paid per chunk rather than per file. The arrays (72 MB for POP909) do not
travel through the pool's pipe: a pipe moves 64 KiB per read, each read copied again by the
main process in Python, which cost it ~0.2 s of CPU on POP909 and kept workers waiting on a
full pipe. A worker writes a chunk's packed arrays to one scratch file (:func:`spool_chunk`)
and the main process reads it back in one call (:func:`unspool`).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
from miditok import MusicTokenizer

from midiforge.data import controls, corpus
from midiforge.data import fim as fim_format
from midiforge.data.encode import build_tokenizer, notes_from_score, score_to_array, special_ids
from midiforge.data.options import GM_PROGRAMS
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, family_program
from midiforge.io.midi import load_midi
from midiforge.schema import FIELD
from midiforge.store.dataset_writer import PackedFile, pack_file

HASH_COLUMNS = (FIELD["pitch"], FIELD["onset"], FIELD["duration"], FIELD["program"])

# One file's result: its manifest record (without the entries only the writer can give:
# label, split, split_source, index), its (split, split_source) and its packed arrays; the
# last two are None for a file skipped here (unreadable, empty, unencodable, too short).
FileResult = tuple[dict[str, Any], tuple[str, str] | None, PackedFile | None]

_WORKER: dict[str, Any] = {}


def tokenizer_for(
    tokenizer: str,
    tracks: str,
    instrument_groups: str = "programs",
    control_names: list[str] | None = None,
    fim: bool = False,
) -> MusicTokenizer:
    """The tokenizer a dataset with these options is encoded with.

    ``tracks="all"`` adds Program tokens; with GM families only the 16 family programs and
    drums get one, so grouping also shrinks the vocabulary the models learn. ``control_names``
    adds the learned controls' tokens after the tokenizer's own (:mod:`midiforge.data.controls`),
    ``fim`` the two fill-in-the-middle markers after those (:mod:`midiforge.data.fim`).
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
    if fim:
        fim_format.add_fim_tokens(tok)
    return tok


def init_worker(opts: dict[str, Any], explicit: dict[str, str] | None = None) -> None:
    """Build the tokenizer once per process (it is not cheap to pickle per task).

    ``opts`` are the :class:`PrepareOptions` as a dict; ``explicit`` the ``split_by`` table
    (path → split), read once by the main process.
    """
    tokenizer = tokenizer_for(
        opts["tokenizer"],
        opts["tracks"],
        opts["instrument_groups"],
        opts["controls"],
        opts.get("fim", False),
    )
    specials = special_ids(tokenizer)
    _WORKER.update(
        opts=opts,
        tokenizer=tokenizer,
        explicit=explicit,
        wrap=(specials["BOS"], specials["EOS"]) if opts["bos_eos"] else None,
    )


def init_pool_worker(opts: dict[str, Any], explicit: dict[str, str] | None = None) -> None:
    """:func:`init_worker` in a pool process, which leaves Ctrl-C to the main process: that
    stops the pool and says so in one line, where each worker would print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    init_worker(opts, explicit)


def _skip(rel: str, reason: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"path": rel, "status": "skipped", "reason": reason, "detail": detail, **extra}


def process_file(
    path: str, rel: str
) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
    """Parse, clean and encode one file → (record, token ids int32, notes float32)."""
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


def _placement(rel: str, digest: str) -> tuple[str, str]:
    """(split, split_source): a split file fixes the split of the files it lists (a
    published benchmark split); the rest of a mixed corpus falls back to the content hash."""
    explicit = _WORKER["explicit"]
    if explicit is not None and rel in explicit:
        return explicit[rel], "file"
    return corpus.split_for_hash(digest, _WORKER["opts"]["split"]), "hash"


def process_chunk(tasks: list[tuple[str, str]]) -> list[FileResult]:
    """:func:`process_file` on each ``(path, relative path)``, each kept file placed and packed
    (BOS/EOS added when the options say so) → one result per task, in order."""
    wrap = _WORKER["wrap"]
    results: list[FileResult] = []
    for path, rel in tasks:
        record, ids, notes = process_file(path, rel)
        if ids is None or notes is None:
            results.append((record, None, None))
            continue
        if wrap is not None:
            ids = np.concatenate([[wrap[0]], ids, [wrap[1]]]).astype(np.int32)
        results.append((record, _placement(rel, record["hash"]), pack_file(ids, notes)))
    return results


def spool_chunk(tasks: list[tuple[str, str]], spool: str) -> list[FileResult]:
    """:func:`process_chunk`, the packed bytes written to the file ``spool`` in order rather
    than returned (each result's ``data`` is left empty)."""
    results = process_chunk(tasks)
    with open(spool, "wb") as fh:
        for _, _, packed in results:
            if packed is not None:
                fh.write(packed.data)
    return [(rec, place, None if f is None else f._replace(data=b"")) for rec, place, f in results]


def unspool(results: list[FileResult], spool: str) -> list[FileResult]:
    """The results of :func:`spool_chunk` with their bytes read back from ``spool`` (views of
    one read), which is then deleted."""
    data = memoryview(Path(spool).read_bytes())
    os.remove(spool)
    out: list[FileResult] = []
    at = 0
    for record, placement, packed in results:
        if packed is not None:
            tokens, notes, programs, _ = packed
            size = packed.size
            packed = PackedFile(tokens, notes, programs, data[at : at + size])
            at += size
        out.append((record, placement, packed))
    return out
