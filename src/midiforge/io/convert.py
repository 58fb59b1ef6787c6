"""Music files in many formats → a folder of MIDI files (the input of ``prepare``).

One function, :func:`convert`, takes a file, a folder (searched recursively) or a music21 corpus
name (``music21:bach``) and writes MIDI files that mirror the source tree. Each file goes to the
converter its suffix names:

==========================  =================================================================
suffix                      how
==========================  =================================================================
.mid .midi                  checked with symusic, copied unchanged
.musicxml .xml .mxl .abc    music21 (repeats expanded; an ABC book gives one MIDI per tune)
.krn .mei .rntxt .capx ...
.gp3 .gp4 .gp5              PyGuitarPro, see :mod:`midiforge.io.guitarpro`
.wav .flac .ogg .mp3        basic-pitch transcription (:mod:`midiforge.io.transcribe`), or, with
                            ``audio_format``/``trim_every``/``trim_at``, audio clean-up
                            (:mod:`midiforge.io.audio`): the audio is re-encoded and cut instead
==========================  =================================================================

Files run in parallel worker processes. A file that cannot be converted (unsupported suffix,
broken content, missing optional package) is skipped with a reason; the reasons are returned and
written to ``OUT/convert-report.json``. A score whose repeat marks music21 cannot expand
("badly formed repeats") is converted in its notated order, with a warning in the report.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from midiforge.errors import MidiforgeError, choice_error
from midiforge.io.audio import AUDIO_SUFFIXES, WRITE_FORMATS, process_audio, read_cut_times
from midiforge.io.guitarpro import GP_SUFFIXES
from midiforge.io.midi import MIDI_SUFFIXES, is_midi_path, load_midi, save_midi

log = logging.getLogger(__name__)

CORPUS_PREFIX = "music21:"
SCORE_SUFFIXES = frozenset(
    {".musicxml", ".xml", ".mxl", ".abc", ".krn", ".mei", ".rntxt", ".capx", ".nwctxt", ".tntxt"}
)
REPORT_NAME = "convert-report.json"
DEFAULT_MAX_JOBS = 8  # music21 parsing is CPU-bound; more workers than this rarely pay
_MUSIC21_INSTALL = "pip install music21  (or: pip install 'midiforge[convert]')"


@dataclass
class ConvertReport:
    """What :func:`convert` did: files written per source, and sources skipped with a reason."""

    # {"source": str, "outputs": [str]} and, when something was done differently (repeats
    # written in notated order), "warnings": [str]
    converted: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # {"source": str, "reason": str}
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _music21():
    try:
        import music21
    except ImportError as exc:
        raise MidiforgeError(
            f"reading scores needs music21; install it with: {_MUSIC21_INSTALL}"
        ) from exc
    return music21


def _convert_midi(src: Path, target: Path) -> list[Path]:
    load_midi(src)  # raises MidiforgeError with the parser's reason
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return [target]


def _without_repeats(stream):
    """A copy of ``stream`` with its repeat barlines, endings and jumps removed: the music
    as notated, once through (what a reader sees, not what a player plays)."""
    from music21 import bar, repeat, spanner

    plain = stream.coreCopyAsDerivation("midiforge: repeats dropped")
    for measure in plain.recurse().getElementsByClass("Measure"):
        if isinstance(measure.leftBarline, bar.Repeat):
            measure.leftBarline = None
        if isinstance(measure.rightBarline, bar.Repeat):
            measure.rightBarline = bar.Barline("regular")
    marks = (spanner.RepeatBracket, repeat.RepeatExpression)
    for element in list(plain.recurse().getElementsByClass(marks)):
        element.activeSite.remove(element)
    for part in [plain, *plain.recurse().getElementsByClass("Stream")]:
        for bracket in list(part.spanners.getElementsByClass(spanner.RepeatBracket)):
            part.remove(bracket)
    return plain


def _write_music21(stream, target: Path) -> tuple[Path, list[str]]:
    """Write MIDI with music21's own translator, repeats expanded; → (file, warnings).

    Some files carry repeat marks music21 cannot expand (or expands into a stream it cannot
    write); those are written in their notated order instead, and the warning says so.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f".{target.stem}.part.mid")
    warnings = []
    try:
        try:
            stream.expandRepeats().write("midi", fp=str(part))
        except Exception as exc:  # music21's ExpanderException, or a stream it cannot write
            warnings.append(
                f"repeats not expanded ({type(exc).__name__}: {exc}); written in notated order"
            )
            log.warning("%s: %s", target.name, warnings[-1])
            _without_repeats(stream).write("midi", fp=str(part))
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
    return target, warnings


def _convert_score(src: Path, target: Path) -> tuple[list[Path], list[str]]:
    music21 = _music21()
    try:
        parsed = music21.converter.parse(str(src))
    except Exception as exc:  # music21 raises many exception types on broken files
        raise MidiforgeError(f"music21 could not read it ({type(exc).__name__}: {exc})") from exc
    if not isinstance(parsed, music21.stream.Opus):
        path, warnings = _write_music21(parsed, target)
        return [path], warnings
    # an ABC book or similar: one MIDI per tune; a broken tune does not lose the others
    written, errors, warnings = [], [], []
    stem = target.with_suffix("")
    for i, tune in enumerate(parsed.scores):
        try:
            path, notes = _write_music21(tune, Path(f"{stem}_{i:03d}.mid"))
            written.append(path)
            warnings += [f"tune {i}: {note}" for note in notes]
        except Exception as exc:
            errors.append(f"tune {i}: {type(exc).__name__}: {exc}")
    if errors:
        log.info(
            "%s: %d of %d tunes not written: %s",
            src,
            len(errors),
            len(errors) + len(written),
            errors[0],
        )
    if not written:
        raise MidiforgeError(errors[0] if errors else "the file holds no tunes")
    return written, warnings + [f"not written: {e}" for e in errors]


def _convert_guitarpro(src: Path, target: Path) -> list[Path]:
    from midiforge.io.guitarpro import read_guitarpro

    score = read_guitarpro(src)
    if score.note_num() == 0:
        raise MidiforgeError("the file holds no notes")
    return [save_midi(score, target)]


def _convert_audio(src: Path, target: Path, options: dict) -> list[Path]:
    if options.get("audio_format") or options.get("trim_every") or options.get("trim_at"):
        return process_audio(
            src,
            target.parent,
            audio_format=options.get("audio_format") or "wav",
            trim_every=options.get("trim_every"),
            trim_at=options.get("trim_at"),
        )
    from midiforge.io.transcribe import transcribe

    score = transcribe(src)
    return [save_midi(score, target)]


def _convert(src: Path, target: Path, options: dict) -> tuple[list[Path], list[str]]:
    """Convert one file; → (files written, warnings about how)."""
    suffix = src.suffix.lower()
    if suffix in MIDI_SUFFIXES:
        return _convert_midi(src, target), []
    if suffix in SCORE_SUFFIXES:
        return _convert_score(src, target)
    if suffix in GP_SUFFIXES:
        return _convert_guitarpro(src, target), []
    if suffix in AUDIO_SUFFIXES:
        return _convert_audio(src, target, options), []
    known = sorted(MIDI_SUFFIXES | SCORE_SUFFIXES | GP_SUFFIXES | AUDIO_SUFFIXES)
    raise MidiforgeError(
        f"unsupported format {suffix or '(no suffix)'!r}; known: {' '.join(known)}"
    )


def convert_file(src: str | Path, target: str | Path, options: dict | None = None) -> list[Path]:
    """Convert one file to ``target`` (a ``.mid`` path) and return the files written.

    Raises :class:`MidiforgeError` with the reason when the file cannot be converted.
    """
    return _convert(Path(src), Path(target), options or {})[0]


def _worker(src: str, target: str, options: dict) -> tuple[str, list[str] | None, str | None, list]:
    """Run in a worker process: never raises, returns (source, outputs, reason, warnings)."""
    try:
        paths, warnings = _convert(Path(src), Path(target), options)
        return src, [str(p) for p in paths], None, warnings
    except MidiforgeError as exc:
        return src, None, str(exc), []
    except Exception as exc:  # a broken file must not stop the other files
        return src, None, f"{type(exc).__name__}: {exc}", []


def corpus_files(name: str) -> tuple[list[Path], Path]:
    """Files of a music21 corpus composer, collection or work.

    ``NAME`` is e.g. ``bach``, ``essenFolksong`` or ``bach/bwv66.6``.

    Returns the files and the corpus root they are relative to. Everything ships inside the
    music21 package, so this works offline.
    """
    music21 = _music21()
    root = Path(music21.common.getCorpusFilePath())
    files = [Path(p) for p in music21.corpus.getComposer(name)]
    if not files:
        try:
            found = music21.corpus.getWork(name)
        except Exception:
            found = []
        files = [Path(p) for p in (found if isinstance(found, list) else [found])]
    if not files:
        composers = sorted(
            p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")
        )
        raise MidiforgeError(
            f"{CORPUS_PREFIX}{name}: no such composer or work in the music21 corpus; "
            f"try one of: {', '.join(composers)}"
        )
    return sorted(files), root


def _plan(src: str | Path, out: Path, limit: int | None) -> tuple[list[tuple[Path, Path]], bool]:
    """Pair each source file with its target ``.mid`` path; also say whether SRC is one file."""
    text = str(src)
    if text.startswith(CORPUS_PREFIX):
        files, root = corpus_files(text[len(CORPUS_PREFIX) :])
        pairs = [(f, out / f.relative_to(root).with_suffix(".mid")) for f in files]
    else:
        path = Path(src)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
            pairs = [(f, out / f.relative_to(path).with_suffix(".mid")) for f in files]
        elif path.is_file():
            target = out if is_midi_path(out) else out / f"{path.stem}.mid"
            return [(path, target)], True
        else:
            raise MidiforgeError(
                f"convert: source {src} does not exist; give a file, a folder or music21:NAME"
            )
    if limit is not None:
        pairs = pairs[:limit]
    return _distinct_targets(pairs), False


def _distinct_targets(pairs: list[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Keep targets apart: ``a.gp4`` and ``a.gp5`` become ``a.gp4.mid`` and ``a.gp5.mid``."""
    counts = Counter(target for _, target in pairs)
    return [
        (source, target.with_name(f"{source.name}.mid") if counts[target] > 1 else target)
        for source, target in pairs
    ]


def convert(
    src: str | Path,
    out: str | Path,
    *,
    jobs: int | None = None,
    audio_format: str | None = None,
    trim_every: float | None = None,
    trim_at: str | Path | Sequence[float] | None = None,
    limit: int | None = None,
) -> ConvertReport:
    """Convert a file, a folder (recursive) or ``music21:NAME`` into MIDI files under ``out``.

    Parameters
    ----------
    src
        A music file, a folder, or ``music21:<composer or collection>`` from music21's corpus.
    out
        The output folder (its tree mirrors the source's); for a single file it may be a
        ``.mid`` path.
    jobs
        Worker processes (default: the CPU count, at most 8); 1 runs in this process.
    audio_format, trim_every, trim_at
        Audio clean-up instead of transcription: write audio files in this format (wav, flac,
        ogg), cut every ``trim_every`` seconds, or cut at the times (seconds) in the text file
        ``trim_at`` (or a list of seconds).
    limit
        Convert only the first ``limit`` source files (sorted by path).
    """
    started = time.perf_counter()
    if audio_format is not None and audio_format not in WRITE_FORMATS:
        raise choice_error("--audio-format", audio_format, WRITE_FORMATS)
    if isinstance(trim_at, (str, Path)):
        trim_at = read_cut_times(trim_at)
    if limit is not None and limit < 1:
        raise MidiforgeError(f"--limit: {limit} must be at least 1")
    out = Path(out)
    pairs, single = _plan(src, out, limit)
    options = {"audio_format": audio_format, "trim_every": trim_every, "trim_at": trim_at}
    jobs = jobs or min(os.cpu_count() or 1, DEFAULT_MAX_JOBS)
    if jobs < 1:
        raise MidiforgeError(f"--jobs: {jobs} must be at least 1")
    jobs = min(jobs, len(pairs)) or 1
    results = []
    if jobs == 1:
        results = [_worker(str(s), str(t), options) for s, t in pairs]
    else:
        # spawn: workers start clean, whatever threads (torch, a web server) the caller runs
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = [pool.submit(_worker, str(s), str(t), options) for s, t in pairs]
            results = [f.result() for f in as_completed(futures)]
    report = ConvertReport()
    for source, outputs, reason, warnings in sorted(results, key=lambda r: r[0]):
        if reason is None:
            entry = {"source": source, "outputs": outputs}
            report.converted.append({**entry, "warnings": warnings} if warnings else entry)
        else:
            log.info("skipped %s: %s", source, reason)
            report.skipped.append({"source": source, "reason": reason})
    report.seconds = round(time.perf_counter() - started, 3)
    if single and report.skipped:  # one file asked for: its failure is the answer
        raise MidiforgeError(f"convert {src}: {report.skipped[0]['reason']}")
    if is_midi_path(out):
        return report
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_NAME).write_text(json.dumps(report.to_dict(), indent=1))
    return report
