"""MIDI → WAV through FluidSynth, and MIDI → piano-roll PNG through matplotlib.

Audio comes from the ``fluidsynth`` program (real FluidSynth, offline ``-F`` fast render) with a
General MIDI soundfont: the one given, else ``$MIDIFORGE_SOUNDFONT``, else the first of the usual
system locations (Debian's ``fluid-soundfont-gm`` installs
``/usr/share/sounds/sf2/FluidR3_GM.sf2``).
The piano roll draws each track in its own colour, bar lines from the time signatures, and
pitch names on the vertical axis; it uses matplotlib's Agg canvas directly, so no GUI backend
or global pyplot state is touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

import symusic

from midiforge.errors import MidiforgeError
from midiforge.io.midi import is_midi_path, load_midi

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

# Piano roll geometry
PNG_DPI = 100
PNG_SIZE_INCHES = (14.0, 6.0)
NOTE_HEIGHT_SEMITONES = 0.8
PITCH_MARGIN_SEMITONES = 2
PITCH_NAMES = ("C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B")
DRUM_COLOUR = "0.45"


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """Return a General MIDI soundfont: the one given, ``$MIDIFORGE_SOUNDFONT``, or a system one."""
    if soundfont is not None:
        path = Path(soundfont).expanduser()
        if not path.is_file():
            raise MidiforgeError(f"--soundfont: {path} does not exist; give an .sf2/.sf3 file")
        return path
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise MidiforgeError(f"${SOUNDFONT_ENV}={env} does not exist; unset it or fix the path")
        return path
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


def render_wav(
    midi_path: str | Path,
    wav_path: str | Path,
    soundfont: str | Path | None = None,
    sample_rate: int = DEFAULT_SAMPLE_RATE_HZ,
) -> Path:
    """Synthesize a MIDI file to a 16-bit stereo WAV with FluidSynth.

    The WAV lasts the MIDI's end time plus FluidSynth's release tail (well under a second for
    GM instruments). Written atomically: the file appears complete or not at all.
    """
    midi_path, wav_path = Path(midi_path), Path(wav_path)
    load_midi(midi_path)  # a clear error for a missing or broken file, before FluidSynth runs
    font = find_soundfont(soundfont)
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    part = wav_path.with_name(f".{wav_path.stem}.part.wav")
    cmd = [
        _fluidsynth(), "-n", "-i", "-q",
        "-g", str(FLUIDSYNTH_GAIN),
        "-r", str(int(sample_rate)),
        "-F", str(part),
        str(font), str(midi_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not part.is_file():
        part.unlink(missing_ok=True)
        raise MidiforgeError(
            f"fluidsynth failed on {midi_path}: {(done.stderr or done.stdout).strip()}"
        )
    part.replace(wav_path)
    return wav_path


def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI number: 60 → ``C4``, 69 → ``A4``."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _bar_lines(score: symusic.Score, end_tick: int) -> list[int]:
    """Tick of every bar start up to ``end_tick``, following the time-signature changes."""
    signatures = sorted(score.time_signatures, key=lambda ts: ts.time) or [
        symusic.TimeSignature(0, 4, 4)
    ]
    if signatures[0].time > 0:
        signatures.insert(0, symusic.TimeSignature(0, 4, 4))
    bars = []
    for i, ts in enumerate(signatures):
        stop = signatures[i + 1].time if i + 1 < len(signatures) else end_tick + 1
        bar = max(1, round(score.ticks_per_quarter * 4 * ts.numerator / ts.denominator))
        bars.extend(range(ts.time, min(stop, end_tick + 1), bar))
    return bars


def render_png(midi_path: str | Path, png_path: str | Path) -> Path:
    """Draw a piano roll: beats across, pitches up, one colour per track, bar lines in grey."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    midi_path, png_path = Path(midi_path), Path(png_path)
    score = load_midi(midi_path)
    tpq = score.ticks_per_quarter
    fig = Figure(figsize=PNG_SIZE_INCHES, dpi=PNG_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours = [f"C{i}" for i in range(10)]
    pitches: list[int] = []
    for i, track in enumerate(t for t in score.tracks if len(t.notes)):
        notes = track.notes.numpy()  # dict of arrays: time, duration, pitch, velocity
        label = track.name.strip() or ("drums" if track.is_drum else f"program {track.program}")
        colour = DRUM_COLOUR if track.is_drum else colours[i % len(colours)]
        ax.barh(
            notes["pitch"],
            notes["duration"] / tpq,
            left=notes["time"] / tpq,
            height=NOTE_HEIGHT_SEMITONES,
            color=colour,
            edgecolor="none",
            label=label,
        )
        pitches.extend(notes["pitch"].tolist())
    # the music ends where its last note does: a stray meta event far out (a sampled piece with
    # no notes can carry one) must not stretch the picture into millions of bar lines
    end_tick = max((t.end() for t in score.tracks if len(t.notes)), default=0)
    for bar in _bar_lines(score, end_tick):
        ax.axvline(bar / tpq, color="0.8", linewidth=0.6, zorder=0)
    if pitches:
        low, high = min(pitches) - PITCH_MARGIN_SEMITONES, max(pitches) + PITCH_MARGIN_SEMITONES
        ax.set_ylim(low - 0.5, high + 0.5)
        ticks = [p for p in range(max(low, 0), min(high, 127) + 1) if p % 12 == 0] or [min(pitches)]
        ax.set_yticks(ticks, [pitch_name(p) for p in ticks])
        ax.legend(loc="upper right", fontsize="small")
    ax.set_xlim(0, max(end_tick / tpq, 1.0))
    ax.set_xlabel("beats (quarter notes)")
    ax.set_ylabel("pitch")
    ax.set_title(midi_path.name)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    part = png_path.with_name(f".{png_path.stem}.part.png")
    fig.savefig(part, format="png")
    part.replace(png_path)
    return png_path


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
) -> list[Path]:
    """Render MIDI files (or folders of them) to WAV and/or PNG and return the files written.

    Each output is named after its MIDI file (``song.mid`` → ``song.wav``, ``song.png``) and
    placed in ``out_dir``, or beside the MIDI file when ``out_dir`` is None.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not (wav or png):
        raise MidiforgeError("render: nothing to do; ask for --wav and/or --png")
    files = _midi_files(paths)
    if wav:
        soundfont = find_soundfont(soundfont)  # fail before the first file, not after
        _fluidsynth()
    written = []
    for midi in files:
        folder = Path(out_dir) if out_dir is not None else midi.parent
        if wav:
            written.append(render_wav(midi, folder / f"{midi.stem}.wav", soundfont))
        if png:
            written.append(render_png(midi, folder / f"{midi.stem}.png"))
    return written
