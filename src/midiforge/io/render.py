"""MIDI → WAV through FluidSynth; the ``render`` stage, which also draws piano rolls.

Audio comes from the ``fluidsynth`` program (real FluidSynth, offline ``-F`` fast render) with a
General MIDI soundfont: the one given, else ``$MIDIFORGE_SOUNDFONT``, else the first of the usual
system locations (Debian's ``fluid-soundfont-gm`` installs
``/usr/share/sounds/sf2/FluidR3_GM.sf2``). Every track plays with its GM program and every drum
track on the drum channel (10, FluidSynth's bank 128): FluidSynth plays a copy laid out one
channel per instrument by :func:`midiforge.io.channels.playable_score`, which also says how
more than 15 pitched programs share MIDI's channels. The piano roll is
:func:`midiforge.io.pianoroll.render_png`, reached from here too (``render.render_png``) since
:func:`render` writes both.

Audio is bounded (limits in :mod:`midiforge.io.bounds`): it stops at the last note-off plus a
release tail, and at ``max_seconds`` (ten minutes by default); a longer piece is rendered up
to the cap with a one-line warning. FluidSynth's audio is read from a pipe and copied into the
WAV only up to the byte count that duration implies, so the bound holds whatever FluidSynth
does.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import tempfile
import threading
import wave
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import numpy as np
import symusic

from midiforge.errors import MidiforgeError
from midiforge.io.bounds import (
    DEFAULT_MAX_SECONDS,
    RELEASE_TAIL_SECONDS,
    check_free_space,
    check_max_seconds,
    check_renderable,
    notes_end_seconds,
)
from midiforge.io.channels import PITCHED_CHANNELS, playable_score
from midiforge.io.midi import is_midi_path, load_midi
from midiforge.io.pianoroll import render_png

log = logging.getLogger(__name__)

DEFAULT_SAMPLE_RATE_HZ = 44100
FLUIDSYNTH_GAIN = 0.6  # FluidSynth's default 0.2 is quiet; 0.6 stays clear of clipping on GM pop
SOUNDFONT_ENV = "MIDIFORGE_SOUNDFONT"
SOUNDFONT_LOCATIONS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian/Ubuntu fluid-soundfont-gm
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf3/default-GM.sf3",
    "/usr/share/soundfonts/FluidR3_GM.sf2",  # Fedora, Arch
    "/usr/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)
_FLUIDSYNTH_INSTALL = "apt-get install fluidsynth  (macOS: brew install fluid-synth)"
_SOUNDFONT_INSTALL = "apt-get install fluid-soundfont-gm, or pass --soundfont FILE.sf2"
SAMPLE_RATES_HZ = (8000, 96000)  # what FluidSynth's synth.sample-rate accepts
BYTES_PER_FRAME = 4  # 16-bit stereo
WAV_HEADER_BYTES = 44
PIPE_CHUNK_BYTES = 1 << 20
STDERR_LINES_KEPT = 5  # FluidSynth can warn thousands of times; keep the last few for errors


def check_soundfont(path: Path, what: str) -> Path:
    """``path`` if it reads as a SoundFont (RIFF ``sfbk`` of the file's length): FluidSynth
    would otherwise play its default font instead, without a word."""
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
    except OSError as exc:
        raise MidiforgeError(f"{what}: {path} cannot be read ({exc.strerror})") from None
    length = int.from_bytes(head[4:8], "little") + 8
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk" or length != path.stat().st_size:
        raise MidiforgeError(
            f"{what}: {path} is not a SoundFont, or is truncated; give a General MIDI .sf2/.sf3"
        )
    return path


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """Return a General MIDI soundfont: the one given, ``$MIDIFORGE_SOUNDFONT``, or a system one."""
    if soundfont is not None:
        path = Path(soundfont).expanduser()
        if not path.is_file():
            raise MidiforgeError(f"--soundfont: {path} does not exist; give an .sf2/.sf3 file")
        return check_soundfont(path, "--soundfont")
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise MidiforgeError(f"${SOUNDFONT_ENV}={env} does not exist; unset it or fix the path")
        return check_soundfont(path, f"${SOUNDFONT_ENV}")
    for candidate in SOUNDFONT_LOCATIONS:
        if Path(candidate).is_file():
            return Path(candidate)
    raise MidiforgeError(
        "no General MIDI soundfont found (looked in " + ", ".join(SOUNDFONT_LOCATIONS) + "); "
        f"install one with: {_SOUNDFONT_INSTALL}"
    )


def _fluidsynth() -> str:
    program = shutil.which("fluidsynth")
    if program is None:
        raise MidiforgeError(
            f"rendering audio needs the fluidsynth program; install it with: {_FLUIDSYNTH_INSTALL}"
        )
    return program


def _audio_seconds(score: symusic.Score, midi_path: Path, max_seconds: float) -> float:
    """How long the WAV may last: the last note-off plus the release tail, at most the cap."""
    end = notes_end_seconds(score)
    if end + RELEASE_TAIL_SECONDS <= max_seconds:
        return end + RELEASE_TAIL_SECONDS
    log.warning(
        "%s lasts %.1f s, longer than max_seconds=%g; rendering only its first %g s",
        midi_path, end, max_seconds, max_seconds,
    )  # fmt: skip
    return max_seconds


def _keep_tail(stream: IO[bytes], tail: deque[str]) -> None:
    """Drain FluidSynth's stderr (it must never block on a full pipe), keeping its last lines."""
    for line in stream:
        tail.append(line.decode("utf-8", "replace").strip())


def _stream_wav(cmd: list[str], part: Path, frames: int, sample_rate: int, cwd: str) -> int:
    """Run FluidSynth with raw PCM on stdout and copy at most ``frames`` of it into a WAV.

    FluidSynth is killed once the frames are in: the output is bounded by construction, not
    by trusting FluidSynth to stop. Returns the frames written; raises when it failed.
    """
    limit = frames * BYTES_PER_FRAME
    tail: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    drain = threading.Thread(target=_keep_tail, args=(proc.stderr, tail), daemon=True)
    drain.start()
    written = 0
    try:
        with wave.open(str(part), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(sample_rate)
            while written < limit:
                chunk = proc.stdout.read(min(PIPE_CHUNK_BYTES, limit - written))
                if not chunk:
                    break
                out.writeframesraw(chunk)
                written += len(chunk)
    finally:
        cut = proc.poll() is None
        if cut:
            proc.kill()
        proc.stdout.close()
        proc.wait()
        drain.join(timeout=5)
    if written == 0 or (not cut and proc.returncode != 0):
        reason = " | ".join(tail) or f"exit status {proc.returncode}, no audio written"
        raise MidiforgeError(f"fluidsynth failed: {reason}")
    return written // BYTES_PER_FRAME


def render_wav(
    midi_path: str | Path,
    wav_path: str | Path,
    soundfont: str | Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE_HZ,
    *,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Path:
    """Synthesize a MIDI file to a 16-bit stereo WAV with FluidSynth.

    The WAV ends where FluidSynth ends (the last note-off, the instruments' release and its
    2 s grace), but never later than the last note-off plus ``RELEASE_TAIL_SECONDS``, nor
    than ``max_seconds`` (a longer piece is rendered up to it, with a warning). Free disk
    space for that length is checked first. FluidSynth plays a temporary copy with one channel
    per instrument and stacked unisons merged (:func:`~midiforge.io.channels.playable_score`);
    more than 15 pitched programs are folded onto kept ones, with a warning naming each fold.
    Written atomically: the file appears complete or not at all.
    """
    midi_path, wav_path = Path(midi_path), Path(wav_path)
    max_seconds = check_max_seconds(max_seconds)
    low, high = SAMPLE_RATES_HZ
    if not (isinstance(sample_rate, (int, np.integer)) and low <= sample_rate <= high):
        raise MidiforgeError(f"sample_rate: {sample_rate!r} is not accepted; give {low}–{high} Hz")
    sample_rate = int(sample_rate)
    score = load_midi(midi_path, max_beats=None)  # a clear error for a missing or broken file
    check_renderable(score, midi_path)
    frames = math.ceil(_audio_seconds(score, midi_path, max_seconds) * sample_rate)
    font = find_soundfont(soundfont)
    program = _fluidsynth()
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    check_free_space(wav_path.parent, WAV_HEADER_BYTES + frames * BYTES_PER_FRAME, "WAV")
    part = wav_path.with_name(f".{wav_path.stem}.part.wav")
    playable, plan = playable_score(score)
    if plan.folded:
        log.warning(
            "%s has %d pitched programs, more than MIDI's %d channels; %s",
            midi_path, len(plan.programs) + len(plan.folded), PITCHED_CHANNELS,
            plan.describe_folds(),
        )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="midiforge-render-") as tmp:
        source = Path(tmp) / "playable.mid"
        playable.dump_midi(str(source))
        cmd = [
            program, "-n", "-i", "-q",
            "-g", str(FLUIDSYNTH_GAIN),
            "-r", str(sample_rate),
            "-T", "raw", "-O", "s16", "-E", "little",
            "-F", "-",  # stdout; a build without libsndfile writes a file "-" in tmp instead
            str(font.resolve()), str(source),
        ]  # fmt: skip
        try:
            _stream_wav(cmd, part, frames, sample_rate, cwd=tmp)
        except MidiforgeError as exc:
            part.unlink(missing_ok=True)
            raise MidiforgeError(f"{midi_path}: {exc}") from None
        except BaseException:
            part.unlink(missing_ok=True)
            raise
    part.replace(wav_path)
    return wav_path


def _midi_files(paths: Iterable[str | Path]) -> list[Path]:
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*") if is_midi_path(f)))
        elif p.is_file():
            files.append(p)
        else:
            raise MidiforgeError(f"render: {p} does not exist; give MIDI files or folders")
    return files


def render(
    paths: str | Path | Iterable[str | Path],
    *,
    wav: bool = True,
    png: bool = False,
    soundfont: str | Path | None = None,
    out_dir: str | Path | None = None,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> list[Path]:
    """Render MIDI files (or folders of them) to WAV and/or PNG and return the files written.

    Each output is named after its MIDI file (``song.mid`` → ``song.wav``, ``song.png``) and
    placed in ``out_dir``, or beside the MIDI file when ``out_dir`` is None. ``max_seconds``
    caps each output's length (a longer piece is rendered up to it, with a warning).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not (wav or png):
        raise MidiforgeError("render: nothing to do; ask for --wav and/or --png")
    max_seconds = check_max_seconds(max_seconds)
    files = _midi_files(paths)
    if wav:
        soundfont = find_soundfont(soundfont)  # fail before the first file, not after
        _fluidsynth()
    written = []
    for midi in files:
        folder = Path(out_dir) if out_dir is not None else midi.parent
        if wav:
            wav_path = folder / f"{midi.stem}.wav"
            written.append(render_wav(midi, wav_path, soundfont, max_seconds=max_seconds))
        if png:
            png_path = folder / f"{midi.stem}.png"
            written.append(render_png(midi, png_path, max_seconds=max_seconds))
    return written
