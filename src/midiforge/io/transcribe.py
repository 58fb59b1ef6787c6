"""Audio → MIDI with Spotify's basic-pitch model, run offline through onnxruntime.

The model (``assets/basic_pitch/nmp.onnx``, Apache-2.0, see the README beside it) maps 2 s of
22 050 Hz mono audio to three frame-wise activations at 86 frames per second over the 88 piano
keys: ``note`` (a pitch sounds), ``onset`` (a pitch starts) and ``contour`` (a finer pitch track,
unused here). The windowing and the note decoding below follow basic-pitch 0.4.0's
``inference.py`` and ``note_creation.py`` (same constants, same defaults) without its librosa,
pretty_midi and TensorFlow dependencies; the package itself cannot be installed next to
numpy 2 on Python ≥ 3.11.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import symusic

from midiforge.errors import MidiforgeError
from midiforge.io.audio import read_audio, resample, to_mono

MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "basic_pitch" / "nmp.onnx"
_ONNX_INSTALL = "pip install onnxruntime  (or: pip install 'midiforge[audio]')"

# basic-pitch constants (basic_pitch/constants.py)
SAMPLE_RATE_HZ = 22050
FFT_HOP_SAMPLES = 256
WINDOW_SECONDS = 2
FRAMES_PER_SECOND = SAMPLE_RATE_HZ // FFT_HOP_SAMPLES  # 86
FRAMES_PER_WINDOW = FRAMES_PER_SECOND * WINDOW_SECONDS  # 172
WINDOW_SAMPLES = SAMPLE_RATE_HZ * WINDOW_SECONDS - FFT_HOP_SAMPLES  # 43 844
OVERLAP_FRAMES = 30  # windows overlap by 30 frames; half of it is dropped on each side
LOWEST_MIDI_PITCH = 21  # A0, the model's first key
N_KEYS = 88
# Each window's frames drift by this much against plain hop timing; basic-pitch's own
# "magic number" 0.0018 s is part of the correction.
_WINDOW_OFFSET_S = (FFT_HOP_SAMPLES / SAMPLE_RATE_HZ) * (
    FRAMES_PER_WINDOW - WINDOW_SAMPLES / FFT_HOP_SAMPLES
) + 0.0018
_TICKS_PER_QUARTER = 480
_TEMPO_QPM = 120.0  # seconds map to beats at 2 per second; the MIDI keeps real time


@dataclass
class TranscribeConfig:
    """Decoding options; the defaults are basic-pitch's ``predict`` defaults."""

    onset_threshold: float = 0.5  # onset activation needed to start a note
    frame_threshold: float = 0.3  # note activation needed to keep it sounding
    min_note_ms: float = 127.70  # shorter notes are dropped
    energy_tolerance_frames: int = 11  # frames below threshold allowed inside a note
    infer_onsets: bool = True  # also start notes where the note activation jumps
    melodia_trick: bool = True  # add notes from strong activations without an onset
    program: int = 0  # General MIDI program of the written track (0 = piano)


@lru_cache(maxsize=1)
def _session():
    """Load the ONNX model once per process (CPU only, a single thread per session)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MidiforgeError(
            f"transcribing audio needs onnxruntime; install it with: {_ONNX_INSTALL}"
        ) from exc
    if not MODEL_PATH.is_file():
        raise MidiforgeError(
            f"the basic-pitch model is missing at {MODEL_PATH}; reinstall midiforge"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(MODEL_PATH), options, providers=["CPUExecutionProvider"])


def model_activations(audio: np.ndarray) -> dict[str, np.ndarray]:
    """Run the model over mono 22 050 Hz audio in overlapping windows.

    Returns ``{"note": (T, 88), "onset": (T, 88), "contour": (T, 264)}`` float32 with
    ``T = floor(len(audio) * 86 / 22050)``.
    """
    overlap = OVERLAP_FRAMES * FFT_HOP_SAMPLES
    hop = WINDOW_SAMPLES - overlap
    padded = np.concatenate([np.zeros(overlap // 2, np.float32), audio.astype(np.float32)])
    starts = range(0, len(padded), hop)
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
    n_frames = int(np.floor(len(audio) * FRAMES_PER_SECOND / SAMPLE_RATE_HZ))
    half = OVERLAP_FRAMES // 2
    unwrapped = {}
    for key, parts in outputs.items():
        stacked = np.concatenate(parts)[:, half:-half, :]  # (W, 142, K)
        unwrapped[key] = stacked.reshape(-1, stacked.shape[-1])[:n_frames]  # (T, K)
    return unwrapped


def frame_times(n_frames: int) -> np.ndarray:
    """Seconds of each output frame, with basic-pitch's per-window drift correction."""
    index = np.arange(n_frames)
    return index * FFT_HOP_SAMPLES / SAMPLE_RATE_HZ - _WINDOW_OFFSET_S * np.floor(
        index / FRAMES_PER_WINDOW
    )


def _inferred_onsets(onsets: np.ndarray, frames: np.ndarray, n_diff: int = 2) -> np.ndarray:
    """Add onsets where the note activation rises sharply (basic-pitch ``get_infered_onsets``)."""
    diffs = []
    for n in range(1, n_diff + 1):
        shifted = np.concatenate([np.zeros((n, frames.shape[1])), frames])
        diffs.append(shifted[n:] - shifted[:-n])
    frame_diff = np.clip(np.min(diffs, axis=0), 0, None)
    frame_diff[:n_diff] = 0
    if frame_diff.max() > 0:
        frame_diff = onsets.max() * frame_diff / frame_diff.max()
    return np.maximum(onsets, frame_diff)


def _clear(energy: np.ndarray, rows: slice | int, key: int) -> None:
    """Zero a key and its two neighbours, so one sounding note is not decoded twice."""
    energy[rows, max(key - 1, 0) : key + 2] = 0


def decode_notes(
    frames: np.ndarray, onsets: np.ndarray, config: TranscribeConfig
) -> list[tuple[int, int, int, float]]:
    """Turn activations into notes ``(start_frame, end_frame, midi_pitch, amplitude)``.

    A port of basic-pitch ``output_to_notes_polyphonic``: onsets are local maxima in time above
    ``onset_threshold``; each note lasts while its key stays above ``frame_threshold`` (allowing
    ``energy_tolerance_frames`` dips); the "melodia trick" then grows notes out of the strongest
    activations left over.
    """
    from scipy.signal import argrelmax

    n_frames = frames.shape[0]
    min_len = round(config.min_note_ms / 1000 * FRAMES_PER_SECOND)
    tol = config.energy_tolerance_frames
    if config.infer_onsets:
        onsets = _inferred_onsets(onsets, frames)
    peaks = np.zeros_like(onsets)
    where = argrelmax(onsets, axis=0)
    peaks[where] = onsets[where]
    times, keys = np.nonzero(peaks >= config.onset_threshold)
    energy = frames.astype(np.float64).copy()
    notes = []
    for start, key in zip(times[::-1], keys[::-1]):  # backwards in time
        if start >= n_frames - 1:
            continue
        i, k = start + 1, 0
        while i < n_frames - 1 and k < tol:
            k = k + 1 if energy[i, key] < config.frame_threshold else 0
            i += 1
        i -= k
        if i - start <= min_len:
            continue
        _clear(energy, slice(start, i), key)
        notes.append(
            (int(start), int(i), int(key) + LOWEST_MIDI_PITCH, float(frames[start:i, key].mean()))
        )

    while config.melodia_trick and energy.max() > config.frame_threshold:
        mid, key = np.unravel_index(np.argmax(energy), energy.shape)
        energy[mid, key] = 0
        i, k = mid + 1, 0
        while i < n_frames - 1 and k < tol:
            k = k + 1 if energy[i, key] < config.frame_threshold else 0
            _clear(energy, i, key)
            i += 1
        end = i - 1 - k
        i, k = mid - 1, 0
        while i > 0 and k < tol:
            k = k + 1 if energy[i, key] < config.frame_threshold else 0
            _clear(energy, i, key)
            i -= 1
        start = i + 1 + k
        if end - start <= min_len:
            continue
        notes.append(
            (
                int(start),
                int(end),
                int(key) + LOWEST_MIDI_PITCH,
                float(frames[start:end, key].mean()),
            )
        )
    return notes


def transcribe(audio_path: str | Path, config: TranscribeConfig | None = None) -> symusic.Score:
    """Transcribe an audio file (WAV/FLAC/OGG/MP3) into a one-track MIDI score.

    Velocity follows the decoded amplitude (``round(127 * amplitude)``), as basic-pitch does.
    The score is in seconds mapped to ticks at 120 quarter notes per minute.
    """
    config = config or TranscribeConfig()
    samples, rate = read_audio(audio_path)
    audio = resample(to_mono(samples), rate, SAMPLE_RATE_HZ)  # (N,)
    acts = model_activations(audio)
    events = decode_notes(acts["note"], acts["onset"], config)
    seconds = frame_times(len(acts["note"]))
    score = symusic.Score(_TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, _TEMPO_QPM))
    track = symusic.Track(name="transcription", program=config.program)
    ticks_per_s = _TICKS_PER_QUARTER * _TEMPO_QPM / 60
    for start, end, pitch, amplitude in sorted(events):
        on = round(seconds[start] * ticks_per_s)
        off = max(on + 1, round(seconds[end] * ticks_per_s))
        velocity = int(np.clip(round(127 * amplitude), 1, 127))
        track.notes.append(symusic.Note(max(on, 0), off - max(on, 0), pitch, velocity))
    score.tracks.append(track)
    return score
