"""Audio → MIDI with the basic-pitch model (Bittner et al., ICASSP 2022), run by onnxruntime.

The model ships inside Spotify's ``basic-pitch`` package (``saved_models/icassp_2022/nmp.onnx``,
Apache-2.0). That package's own Python code requires TensorFlow (and numpy < 2) on Python 3.11,
so midiforge installs it without its dependencies (``scripts/setup.sh``) only to load the model
file from it, offline, and never imports it. The model maps 2 s of 22 050 Hz mono audio to
frame-wise activations over the 88 piano keys: ``note`` (a pitch sounds) and ``onset`` (a pitch
starts); the decoding into notes below is midiforge's own.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import symusic

from midiforge.errors import MidiforgeError
from midiforge.io.audio import read_audio, resample, to_mono

MODEL_PACKAGE = "basic_pitch"
MODEL_FILE = Path("saved_models") / "icassp_2022" / "nmp.onnx"
MODEL_INSTALL = "pip install --no-deps 'basic-pitch==0.4.0'  (it ships the model file)"
_ONNX_INSTALL = "pip install onnxruntime  (or: pip install 'midiforge[audio]')"

# The model's interface: fixed input windows, 256-sample hops between output frames.
SAMPLE_RATE_HZ = 22050
FFT_HOP_SAMPLES = 256
WINDOW_SAMPLES = SAMPLE_RATE_HZ * 2 - FFT_HOP_SAMPLES  # 43 844 samples in, 172 frames out
FRAMES_PER_WINDOW = 172
OVERLAP_FRAMES = 30  # windows overlap by 30 frames; half of it is dropped on each side
KEPT_FRAMES = FRAMES_PER_WINDOW - OVERLAP_FRAMES  # 142 frames kept per window
HOP_SAMPLES = WINDOW_SAMPLES - OVERLAP_FRAMES * FFT_HOP_SAMPLES  # audio advanced per window
SECONDS_PER_FRAME = HOP_SAMPLES / KEPT_FRAMES / SAMPLE_RATE_HZ  # ≈ 11.55 ms of audio per frame
LOWEST_MIDI_PITCH = 21  # A0, the model's first key
N_KEYS = 88
_TICKS_PER_QUARTER = 480
_TEMPO_QPM = 120.0  # seconds map to beats at 2 per second; the MIDI keeps real time


@dataclass
class TranscribeConfig:
    """Decoding options (activations are probabilities in [0, 1])."""

    onset_threshold: float = 0.5  # an onset peak at least this high starts a note
    frame_threshold: float = 0.3  # the note activation must stay above this while it sounds
    min_note_ms: float = 120.0  # shorter notes are dropped (ms)
    gap_frames: int = 5  # dips below frame_threshold up to this long do not end a note
    program: int = 0  # General MIDI program of the written track (0 = piano)


def model_path() -> Path:
    """Where the installed ``basic-pitch`` package keeps the model (without importing it)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MidiforgeError(f"transcribing audio needs the basic-pitch model; {MODEL_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise MidiforgeError(f"the basic-pitch model is missing at {path}; {MODEL_INSTALL}")
    return path


@lru_cache(maxsize=1)
def _session():
    """Load the ONNX model once per process (CPU only, a single thread per session)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MidiforgeError(
            f"transcribing audio needs onnxruntime; install it with: {_ONNX_INSTALL}"
        ) from exc
    path = model_path()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def model_activations(audio: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model over mono 22 050 Hz audio in overlapping windows.

    Each window's first and last ``OVERLAP_FRAMES / 2`` frames are dropped and the rest laid
    end to end, so frame ``i`` covers ``SECONDS_PER_FRAME`` of audio from ``i·SECONDS_PER_FRAME``.
    Returns ``{"note": (T, 88), "onset": (T, 88), "contour": (T, 264)}`` float32.
    """
    overlap = OVERLAP_FRAMES * FFT_HOP_SAMPLES
    padded = np.concatenate([np.zeros(overlap // 2, np.float32), audio.astype(np.float32)])
    starts = range(0, len(padded), HOP_SAMPLES)
    windows = np.zeros((len(starts), WINDOW_SAMPLES, 1), np.float32)  # (W, S, 1)
    for w, start in enumerate(starts):
        chunk = padded[start : start + WINDOW_SAMPLES]
        windows[w, : len(chunk), 0] = chunk
    session = _session()
    names = ["StatefulPartitionedCall:1", "StatefulPartitionedCall:2", "StatefulPartitionedCall:0"]
    outputs: dict[str, list[np.ndarray]] = {"note": [], "onset": [], "contour": []}
    for w in range(len(windows)):
        results = session.run(names, {"serving_default_input_2:0": windows[w : w + 1]})
        for key, value in zip(("note", "onset", "contour"), results):
            outputs[key].append(value)  # (1, 172, K)
    n_frames = int(len(audio) / SAMPLE_RATE_HZ / SECONDS_PER_FRAME)
    half = OVERLAP_FRAMES // 2
    unwrapped = {}
    for key, parts in outputs.items():
        stacked = np.concatenate(parts)[:, half:-half, :]  # (W, 142, K)
        unwrapped[key] = stacked.reshape(-1, stacked.shape[-1])[:n_frames]  # (T, K)
    return unwrapped


def onset_peaks(onsets: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean (T, K): frames where a key's onset activation is a local maximum in time and at
    least ``threshold`` — one candidate start per attack, however wide its activation bump."""
    before = np.vstack([np.zeros((1, onsets.shape[1])), onsets[:-1]])  # (T, K), shifted down
    after = np.vstack([onsets[1:], np.zeros((1, onsets.shape[1]))])  # (T, K), shifted up
    return (onsets >= threshold) & (onsets > before) & (onsets >= after)


def key_notes(
    sounding: np.ndarray, starts: np.ndarray, gap_frames: int, min_frames: int
) -> list[tuple[int, int]]:
    """Notes ``(start, end)`` in frames of one key.

    A note starts at each onset peak while or just before the key sounds, and lasts until the
    key has been silent for more than ``gap_frames`` frames or the next onset peak re-strikes it.
    """
    notes = []
    peaks = np.flatnonzero(starts)
    for i, start in enumerate(peaks):
        stop = peaks[i + 1] if i + 1 < len(peaks) else len(sounding)
        end, silent = start, 0
        for t in range(start, stop):
            if sounding[t]:
                end, silent = t + 1, 0
            else:
                silent += 1
                if silent > gap_frames:
                    break
        if end - start >= min_frames:
            notes.append((int(start), int(end)))
    return notes


def decode_notes(
    frames: np.ndarray, onsets: np.ndarray, config: TranscribeConfig
) -> list[tuple[int, int, int, float]]:
    """Turn activations ``(T, 88)`` into notes ``(start_frame, end_frame, midi_pitch, level)``.

    Key by key: onset peaks start notes, the note activation above ``frame_threshold`` keeps
    them sounding; ``level`` is the mean note activation over the note (for its velocity).
    """
    min_frames = max(1, round(config.min_note_ms / 1000 / SECONDS_PER_FRAME))
    starts = onset_peaks(onsets, config.onset_threshold)  # (T, K)
    sounding = frames >= config.frame_threshold  # (T, K)
    notes = []
    for key in range(frames.shape[1]):
        for start, end in key_notes(
            sounding[:, key], starts[:, key], config.gap_frames, min_frames
        ):
            level = float(frames[start:end, key].mean())
            notes.append((start, end, key + LOWEST_MIDI_PITCH, level))
    return sorted(notes)


def transcribe(audio_path: str | Path, config: TranscribeConfig | None = None) -> symusic.Score:
    """Transcribe an audio file (WAV/FLAC/OGG/MP3) into a one-track MIDI score.

    Velocity follows the note's mean activation (``round(127 * level)``). The score is in
    seconds mapped to ticks at 120 quarter notes per minute.
    """
    config = config or TranscribeConfig()
    samples, rate = read_audio(audio_path)
    audio = resample(to_mono(samples), rate, SAMPLE_RATE_HZ)  # (N,)
    acts = model_activations(audio)
    events = decode_notes(acts["note"], acts["onset"], config)
    score = symusic.Score(_TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, _TEMPO_QPM))
    track = symusic.Track(name="transcription", program=config.program)
    ticks_per_s = _TICKS_PER_QUARTER * _TEMPO_QPM / 60
    for start, end, pitch, level in events:
        on = round(start * SECONDS_PER_FRAME * ticks_per_s)
        off = max(on + 1, round(end * SECONDS_PER_FRAME * ticks_per_s))
        velocity = int(np.clip(round(127 * level), 1, 127))
        track.notes.append(symusic.Note(max(on, 0), off - max(on, 0), pitch, velocity))
    score.tracks.append(track)
    return score
