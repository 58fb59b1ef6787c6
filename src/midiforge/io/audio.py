"""Audio files: read, write, change format, and cut into pieces.

Three clean-up modes share one reference design: every mode reads a file into a
``(samples, channels)`` float32 array, decides where to cut in *samples* (never in seconds, so a
cut is exact and repeatable), and writes each piece in the requested format.

- **convert**: one piece, the whole file, in another format (``wav``, ``flac``, ``ogg``);
- **trim every**: pieces of a fixed length in seconds (the last one holds what is left);
- **trim at**: cut at the times listed in a text file (seconds, one per line, ``#`` comments).

Cutting is bounded: ``--trim-every`` must be at least ``MIN_TRIM_SECONDS`` (0.1 s, shorter is
no useful clip and usually a typo: 1e-9 once wrote 23,879 files in a minute), and one source
file is cut into at most ``MAX_PIECES`` (10,000) pieces. Both are checked before a piece is
written, and the count is computed, not listed, so an absurd interval costs no memory either.

Reading and writing go through soundfile (libsndfile). libsndfile ≥ 1.1 also reads MP3, which the
soundfile ≥ 0.12 wheels bundle; where the installed libsndfile is older, MP3 falls back to the
``ffmpeg`` program if it is on the PATH.
"""

from __future__ import annotations

import itertools
import math
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from midiforge.errors import MidiforgeError, choice_error

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".mp3"})
WRITE_FORMATS = ("wav", "flac", "ogg")
# soundfile subtype per output format: 16-bit PCM keeps WAV/FLAC small and universally readable.
_SUBTYPES = {"wav": "PCM_16", "flac": "PCM_16", "ogg": "VORBIS"}
MIN_TRIM_SECONDS = 0.1
MAX_PIECES = 10_000  # per source file: three hours in 1 s clips; more is a typo, not a plan
_SOUNDFILE_INSTALL = "pip install 'soundfile>=0.12'  (or: pip install 'midiforge[audio]')"


def _soundfile():
    """Import soundfile on first use, naming the install command when it is missing."""
    try:
        import soundfile
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MidiforgeError(
            f"reading audio needs soundfile; install it with: {_SOUNDFILE_INSTALL}"
        ) from exc
    return soundfile


def _read_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    """Decode a file with the ffmpeg program into a temporary WAV, for old libsndfile builds."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise MidiforgeError(
            f"{path}: this libsndfile cannot read {path.suffix} files and ffmpeg is not installed; "
            "install 'soundfile>=0.12' (bundles libsndfile ≥ 1.1 with MP3) "
            "or: apt-get install ffmpeg"
        )
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "decoded.wav"
        cmd = [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(path), str(wav)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise MidiforgeError(f"{path}: ffmpeg could not decode it: {done.stderr.strip()}")
        data, rate = _soundfile().read(str(wav), dtype="float32", always_2d=True)
    return data, int(rate)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 samples in [-1, 1].

    Returns
    -------
    samples : np.ndarray
        ``(n_samples, n_channels)`` float32.
    sample_rate : int
        Samples per second per channel.
    """
    path = Path(path)
    if not path.is_file():
        raise MidiforgeError(f"audio file not found: {path}")
    sf = _soundfile()
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        if path.suffix.lower() == ".mp3":
            return _read_with_ffmpeg(path)
        raise MidiforgeError(f"{path}: not a readable audio file ({exc})") from exc
    return data, int(rate)


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write ``(n_samples, n_channels)`` samples; the format follows the file's suffix."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in WRITE_FORMATS:
        raise choice_error("audio format", fmt, WRITE_FORMATS)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    _soundfile().write(str(tmp), samples, sample_rate, format=fmt.upper(), subtype=_SUBTYPES[fmt])
    tmp.replace(path)  # atomic: a reader never sees half a file
    return path


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels: ``(n_samples, n_channels)`` → ``(n_samples,)``."""
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample along axis 0 with a polyphase filter (exact for rational rate ratios)."""
    if rate_in == rate_out:
        return samples
    from scipy.signal import resample_poly

    g = math.gcd(rate_in, rate_out)
    return resample_poly(samples, rate_out // g, rate_in // g, axis=0).astype(np.float32)


def read_cut_times(path: str | Path) -> list[float]:
    """Read cut positions in seconds, one per line; blank lines and ``#`` comments are ignored."""
    path = Path(path)
    if not path.is_file():
        raise MidiforgeError(f"--trim-at: file not found: {path}")
    times = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            value = float(text)
        except ValueError:
            raise MidiforgeError(
                f"--trim-at {path}:{number}: {text!r} is not a number of seconds"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise MidiforgeError(f"--trim-at {path}:{number}: {value} must be ≥ 0 seconds")
        times.append(value)
    return sorted(set(times))


def check_trim_every(every: float | None) -> None:
    """Refuse a ``--trim-every`` interval that is not a number of seconds ≥ ``MIN_TRIM_SECONDS``."""
    if every is None:
        return
    if not (isinstance(every, (int, float)) and math.isfinite(every) and every > 0):
        raise MidiforgeError(f"--trim-every: {every} must be a positive number of seconds")
    if every < MIN_TRIM_SECONDS:
        raise MidiforgeError(
            f"--trim-every: {every:g} s is shorter than the {MIN_TRIM_SECONDS:g} s accepted "
            f"(pieces that short are not useful clips); give {MIN_TRIM_SECONDS:g} or more"
        )


def _too_many_pieces(option: str, pieces: int, n_samples: int, sample_rate: int) -> MidiforgeError:
    seconds = n_samples / sample_rate
    return MidiforgeError(
        f"{option}: would cut this {seconds:.1f} s file into {pieces} pieces, more than the "
        f"{MAX_PIECES} accepted per file; give longer pieces (≥ {seconds / MAX_PIECES:.3g} s) "
        "or fewer cut times"
    )


def cut_points(
    n_samples: int,
    sample_rate: int,
    *,
    every: float | None = None,
    at: Sequence[float] | None = None,
) -> list[int]:
    """Where pieces start and end, in samples: ``[0, c1, c2, ..., n_samples]``.

    ``every`` cuts each ``round(every * sample_rate)`` samples; ``at`` cuts at
    ``round(t * sample_rate)`` for each time ``t`` inside the file. Neither: one piece.
    Raises :class:`MidiforgeError` for an interval under ``MIN_TRIM_SECONDS`` or more than
    ``MAX_PIECES`` pieces, before any list of cuts is built.
    """
    if every is not None and at is not None:
        raise MidiforgeError("--trim-every and --trim-at: give one of them, not both")
    cuts: list[int] = []
    if every is not None:
        check_trim_every(every)
        step = max(1, round(every * sample_rate))
        pieces = max(1, math.ceil(n_samples / step))
        if pieces > MAX_PIECES:
            raise _too_many_pieces(f"--trim-every {every:g}", pieces, n_samples, sample_rate)
        cuts = list(range(step, n_samples, step))
    elif at is not None:
        cuts = sorted({round(t * sample_rate) for t in at} - {0})
        cuts = [c for c in cuts if c < n_samples]
        if len(cuts) + 1 > MAX_PIECES:
            raise _too_many_pieces("--trim-at", len(cuts) + 1, n_samples, sample_rate)
    return [0, *cuts, n_samples]


def process_audio(
    src: str | Path,
    out_dir: str | Path,
    *,
    audio_format: str = "wav",
    trim_every: float | None = None,
    trim_at: Sequence[float] | None = None,
) -> list[Path]:
    """Apply one clean-up mode to one audio file and return the files written.

    Pieces are named ``<stem>.<format>`` for a single piece, else ``<stem>_000.<format>``,
    ``<stem>_001.<format>``, ... in time order.
    """
    if audio_format not in WRITE_FORMATS:
        raise choice_error("--audio-format", audio_format, WRITE_FORMATS)
    src, out_dir = Path(src), Path(out_dir)
    samples, rate = read_audio(src)
    bounds = cut_points(len(samples), rate, every=trim_every, at=trim_at)
    if len(bounds) == 2:
        return [write_audio(out_dir / f"{src.stem}.{audio_format}", samples, rate)]
    written = []
    for i, (start, end) in enumerate(itertools.pairwise(bounds)):
        name = f"{src.stem}_{i:03d}.{audio_format}"
        written.append(write_audio(out_dir / name, samples[start:end], rate))
    return written
