"""Continuous note features for diffusion: encode raw note rows, scale them, decode them back.

A note becomes a small vector of the values a diffusion model denoises: pitch as log-frequency
(so an octave is a constant distance), duration and delta (onset gap) in beats (optionally coded
as log2(1 + beats / grid), which keeps 0 at 0 for chords and resolves short values as finely as
long ones), and optionally velocity. Each feature is scaled with statistics fitted on the
training split only and saved with the run, so generation decodes with exactly the scale the
model was trained on.

**Instruments are categorical channels, not a float.** A program number is a name, not a
quantity: program 33 (bass) is not "between" 32 and 34, and a denoised 33.4 that rounds to 34
would switch the instrument. So a run over K ≥ 2 programs (the dataset's instruments, saved in
the scaler and the model config) appends K one-hot channels scaled to ±1 (+1 for the note's
program, −1 elsewhere: the "analog bits" / one-hot diffusion coding of Chen et al. 2022 and
Hoogeboom et al. 2021), denoised like the other features and decoded by an argmax over the K
channels (restricted to the requested ones when generation asks for instruments). A program the
run never saw encodes as all −1 (no channel on). With K ≤ 1 there are no instrument channels
and every note decodes to that one program (program 0 for runs from before instruments).

**Pitch classes can be categorical channels too** (``pitch_classes``). Log-frequency is one
float, and a semitone is 1/12 of its octave: a denoiser a quarter-semitone off writes a wrong
note, and a key is twelve such small targets spread over the range. So with the option the
features add 12 ±1 channels, one per pitch class (C..B), after the instrument channels: the
note's class comes from their argmax and its register from the log-frequency channel (the
pitch of that class nearest the decoded frequency, kept in the training range). Runs without
it (the shipped model among them: one retrain with it did not beat it, docs/benchmarks.md)
decode from log-frequency alone, as they were trained.

Array shapes: raw rows ``(..., len(NOTE_FIELDS))`` in the field order of ``docs/architecture.md``;
features ``(..., n_features)`` with values near ``[-1, 1]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from midiforge.errors import MidiforgeError, choice_error
from midiforge.pitches import diatonic_scales
from midiforge.schema import NOTE_FIELDS

A4_HZ = 440.0  # frequency of MIDI pitch 69
A4_PITCH = 69
SEMITONES_PER_OCTAVE = 12
N_SCALES = SEMITONES_PER_OCTAVE  # diatonic scales, by major tonic (pitches.diatonic_scale)
NO_SCALE = N_SCALES  # a window with no pitched note: the "not told" key embedding
MIDI_MAX = 127  # highest MIDI pitch and velocity
MIN_VELOCITY = 1
DEFAULT_VELOCITY = 80  # written when the model does not generate velocity
DEFAULT_PROGRAM = 0  # General MIDI acoustic grand piano
DRUM_PROGRAM = -1  # the program of drum notes
MAX_PROGRAMS = MIDI_MAX + 2  # GM 0..127 and drums
MIN_DURATION_BEATS = 1 / 12  # shortest decoded note: a sixteenth-note triplet
TIME_GRID_BEATS = 1 / 12  # decoded onsets and durations snap to this grid (16ths and triplets)
MIN_RANGE = 1e-6  # guards a division when a feature is constant on the training data
A4_LOG2_HZ = math.log2(A4_HZ)


# an onset gap is in the corpus' rhythm vocabulary when this share of the training notes takes
# it (on TIME_GRID_BEATS): 1 note in 500
TIME_VALUE_MIN_SHARE = 0.002


def time_values(beats: np.ndarray) -> list[float]:
    """The rhythm vocabulary of a corpus: the values (beats, on ``TIME_GRID_BEATS``) that at
    least ``TIME_VALUE_MIN_SHARE`` of the training notes' ``beats`` take.

    Why: a regression head predicts a point estimate (a median of log-time) that falls between
    the values real music uses (0.43 beats, between an eighth and a triplet quarter); snapping
    it to the nearest 1/12 beat still writes such in-between values, and the onsets drift off
    the beat. Decoding onto the values the corpus uses keeps the rhythm on its own grid, the
    way a pitch is rounded to a semitone.
    """
    steps = np.rint(np.clip(np.asarray(beats, np.float64), 0, None) / TIME_GRID_BEATS)
    counts = np.bincount(steps.astype(np.int64)) if len(steps) else np.zeros(0, np.int64)
    keep = np.flatnonzero(counts >= max(1.0, TIME_VALUE_MIN_SHARE * len(steps)))
    return [float(k * TIME_GRID_BEATS) for k in keep]


ALL_STYLES = "all"  # the whole corpus' entry in a per-style table (``delta_values``, ...)


def fit_time_values(beats: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """The time values (:func:`time_values`) of one column of the training notes, ``beats``
    ``(N,)``: their onset gaps (a model's ``delta_values``) or durations, for the whole
    corpus (``"all"``) and per style label index (``"0"``, ...; ``labels`` ``(N,)``, -1 =
    none). Per style because a chorale's gaps are sixteenths to whole notes while POP909's
    performed onsets also take 1/12 beats.

    The same fit gives the diffusion model's note durations (``duration_values``), not the
    LSTM's: snapping its durations as well (measured on the shipped model, 16 samples per
    style) took the framewise duration consistency from 0.99/0.97/0.96 to 0.94/0.94/0.93,
    while the diffusion model's denoised durations, spread between the values (a chorale's
    0.42-0.92 beats where the real ones are 0.5 and 1), went from 0.93/0.95/0.94 to
    0.95/0.95/0.96 (docs/benchmarks.md).
    """
    return _per_style(time_values, beats, labels)


def _per_style(fit: Any, values: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """``fit`` of all ``values`` (``"all"``) and of each style label's (``"0"``, ...)."""
    out = {ALL_STYLES: fit(values)}
    for label in np.unique(labels[labels >= 0]).tolist():
        out[str(label)] = fit(values[labels == label])
    return out


# the positions per beat a style's onset grid may have, coarsest first (quarters, eighths,
# triplets, sixteenths, sextuplets, the 1/12-beat grid)
GRID_STEPS_PER_BEAT = (1, 2, 3, 4, 6, 12)
# a grid is the style's when this share of its training onsets lie on it
ONSET_GRID_SHARE = 0.85


def onset_grid(onsets: np.ndarray) -> float | None:
    """The coarsest grid (beats: 1, 1/2, 1/3, 1/4, 1/6, 1/12) holding at least
    ``ONSET_GRID_SHARE`` of ``onsets`` (beats from their piece's start); None when none does.

    Why: a diffusion model writes onsets as gaps between notes, each snapped to a value its
    style uses, but their sum drifts: a chorale's notes, 98.7 % of them on an eighth in the
    training data, came out scattered between the eighths, with nothing stacked into its
    chords (IOI-histogram overlap 0.13 against a ceiling of 0.89). Putting each onset on its
    style's grid is what a musician's quantize does.
    """
    beats = np.asarray(onsets, np.float64)
    if not len(beats):
        return None
    for steps in GRID_STEPS_PER_BEAT:
        off = np.abs(beats * steps - np.rint(beats * steps))
        if np.mean(off < 1e-3) >= ONSET_GRID_SHARE:
            return 1.0 / steps
    return None


def fit_onset_grids(onsets: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """:func:`onset_grid` of the training notes' ``onsets`` ``(N,)``, for the whole corpus
    (``"all"``) and per style label index (``labels`` ``(N,)``, -1 = none); a style with no
    grid is left out (nothing is moved)."""
    grids = _per_style(onset_grid, onsets, labels)
    return {key: grid for key, grid in grids.items() if grid is not None}


BAR_BEATS = 4.0  # the bar of the files a sampler writes (4/4), in which a pickup is placed


def pickups(first_onsets: np.ndarray) -> list[list[float]]:
    """``[[beats, pieces], ...]``: where in its bar (``BAR_BEATS``) each piece's first note
    falls, on the 1/12-beat grid, with how many pieces begin there; 0 is the downbeat.

    Why: 80 % of the Nottingham tunes begin on a pickup (their first note 3 beats into the
    bar in 302 of 818, 2.5 in 197; on the downbeat in 160), as a jig or a song does, and a
    diffusion model's pieces always began on beat 0, with no bar of their own to begin in (the
    model has no bar lines). Whole silent bars before the first note (POP909's files open with
    one) are left out: they are how a file was laid out, not how the music begins.
    """
    beats = np.asarray(first_onsets, np.float64) % BAR_BEATS
    steps = np.rint(beats / TIME_GRID_BEATS).astype(np.int64)
    values, counts = np.unique(steps, return_counts=True)
    return [[float(v * TIME_GRID_BEATS), int(c)] for v, c in zip(values, counts)]


def weighted_draws(counts: Sequence[float], n: int, generator: torch.Generator) -> list[int]:
    """``n`` indices into ``counts`` drawn in proportion to them, with replacement: how the
    samplers pick a style's key, pickup or count of outside classes from its training table."""
    weights = torch.tensor([float(c) for c in counts])
    return torch.multinomial(weights, n, replacement=True, generator=generator).tolist()


def draw_pickups(
    table: Sequence[Sequence[float]], n: int, generator: torch.Generator
) -> list[float]:
    """Where in its first bar each of ``n`` new pieces begins (beats; 0 = the downbeat): drawn
    from ``table`` (:func:`pickups`, a style's training pieces by where they begin) by their
    counts; a piece shifted by it opens with a pickup as its style's pieces do. All 0 without
    a table (a run saved before it)."""
    if not table:
        return [0.0] * n
    return [float(table[i][0]) for i in weighted_draws([c for _, c in table], n, generator)]


def fit_pickups(first_onsets: np.ndarray, labels: np.ndarray) -> dict[str, list[list[float]]]:
    """:func:`pickups` of the training pieces' first onsets ``(P,)``, for the whole corpus
    (``"all"``) and per style label index (``labels`` ``(P,)``, one per piece, -1 = none)."""
    return _per_style(pickups, np.asarray(first_onsets, np.float64), np.asarray(labels))


@dataclass(frozen=True)
class Rhythm:
    """The time values :meth:`FeatureScaler.decode` puts one style's notes on: its onset
    ``gaps`` (delta values), its note ``durations`` and the ``grid`` (beats) its onsets lie
    on. Empty or None: that value is only snapped to the 1/12-beat grid."""

    gaps: tuple[float, ...] = ()
    durations: tuple[float, ...] = ()
    grid: float | None = None


NO_RHYTHM = Rhythm()  # a run saved before any time values: everything on the 1/12-beat grid


def place_onsets(delta: np.ndarray, start: np.ndarray | float, grid: float | None) -> np.ndarray:
    """Onsets (beats) of notes ``delta`` beats apart along the last axis after ``start`` (the
    previous note's onset, broadcast), each put on the nearest multiple of ``grid`` when given;
    rounding keeps them in order. One place for :meth:`FeatureScaler.decode` and the rules
    that read where it puts the onsets."""
    onset = np.asarray(start, np.float64)[..., None] + np.cumsum(delta, axis=-1)
    return onset if grid is None else np.rint(onset / grid) * grid


def style_values(values: dict[str, list[float]], label: int | None) -> list[float]:
    """Style ``label``'s time values of a per-style table (:func:`fit_time_values`; the whole
    corpus' for None or a style without its own; empty for a run saved before they were
    stored: nothing is snapped)."""
    return values.get(str(label), values.get(ALL_STYLES, []))


def read_time_values(state: dict[str, Any], key: str = "delta_values") -> dict[str, list[float]]:
    """A run's per-style time values ``key`` (``delta_values``, ``duration_values``) of its
    data_state.json (empty when absent: a run saved before they were stored)."""
    raw = state.get(key, {})
    return {str(style): [float(v) for v in values] for style, values in raw.items()}


def snap_to_values(beats: np.ndarray, values: Sequence[float]) -> np.ndarray:
    """Each of ``beats`` (any shape) moved to the nearest of ``values`` in log(1 + beats), the
    scale the heads predict in (a short value is not pulled to a long one); unchanged when
    ``values`` is empty."""
    beats = np.asarray(beats, np.float64)
    if not len(values):
        return beats
    table = np.asarray(values, np.float64)
    gap = np.abs(np.log1p(np.maximum(beats, 0))[..., None] - np.log1p(table))
    return table[gap.argmin(axis=-1)]


def pitch_to_frequency(pitch: np.ndarray) -> np.ndarray:
    """Equal-tempered frequency in Hz of MIDI pitches."""
    return A4_HZ * 2.0 ** ((np.asarray(pitch, dtype=np.float64) - A4_PITCH) / SEMITONES_PER_OCTAVE)


def log2_hz_to_midi(log2_hz: Any) -> Any:
    """Continuous MIDI pitch of log2 frequencies in Hz (numpy or torch, any shape)."""
    return A4_PITCH + SEMITONES_PER_OCTAVE * (log2_hz - A4_LOG2_HZ)


def frequency_to_pitch(freq: np.ndarray) -> np.ndarray:
    """Nearest MIDI pitch (int64, clipped to 0..127) of frequencies in Hz."""
    freq = np.maximum(np.asarray(freq, dtype=np.float64), 1e-3)
    pitch = np.rint(A4_PITCH + SEMITONES_PER_OCTAVE * np.log2(freq / A4_HZ))
    return np.clip(pitch, 0, MIDI_MAX).astype(np.int64)


def feature_names(
    velocity: bool, programs: Sequence[int] = (), pitch_classes: bool = False
) -> tuple[str, ...]:
    """The feature channels, in order; log_frequency is log2 of the frequency in Hz.

    With two or more ``programs`` one channel per program follows (``program_<p>``), then with
    ``pitch_classes`` one per pitch class (``pitch_class_0`` = C .. ``pitch_class_11`` = B).
    """
    names = ("log_frequency", "duration", "delta", *(("velocity",) if velocity else ()))
    if len(programs) > 1:
        names += tuple(f"program_{int(p)}" for p in programs)
    if pitch_classes:
        names += tuple(f"pitch_class_{c}" for c in range(SEMITONES_PER_OCTAVE))
    return names


def pitch_in_class(
    pitch: np.ndarray, classes: np.ndarray, low: float = 0.0, high: float = MIDI_MAX
) -> np.ndarray:
    """The MIDI pitch of class ``classes`` (0..11) nearest each continuous ``pitch`` (same
    shape), moved by octaves into ``[low, high]`` where the range allows (int64)."""
    pitch = np.asarray(pitch, np.float64)
    classes = np.asarray(classes, np.int64)
    out = classes + SEMITONES_PER_OCTAVE * np.rint((pitch - classes) / SEMITONES_PER_OCTAVE)
    out = np.where(out < low, out + SEMITONES_PER_OCTAVE * np.ceil((low - out) / 12), out)
    out = np.where(out > high, out - SEMITONES_PER_OCTAVE * np.ceil((out - high) / 12), out)
    return np.clip(out, 0, MIDI_MAX).astype(np.int64)


def check_programs(where: str, programs: Any) -> None:
    """``programs`` must be distinct GM program numbers (-1 drums, 0..127)."""
    name = f"{where}.programs" if where else "programs"
    ok = isinstance(programs, (list, tuple)) and all(
        isinstance(p, int) and not isinstance(p, bool) and DRUM_PROGRAM <= p <= MIDI_MAX
        for p in programs
    )
    if not ok or len(set(programs)) != len(programs):
        raise MidiforgeError(
            f"{name}: {programs!r} is not accepted; give distinct GM program numbers "
            "(-1 = drums, 0..127)"
        )


def program_indices(program: torch.Tensor, programs: Sequence[int]) -> torch.Tensor:
    """Index into ``programs`` of each note's program (long, same shape); ``len(programs)``
    for a program not in the list (a primer instrument the run never saw)."""
    table = torch.full((MAX_PROGRAMS,), len(programs), dtype=torch.long, device=program.device)
    if len(programs):
        rows = torch.tensor([int(p) + 1 for p in programs], device=program.device)
        table[rows] = torch.arange(len(programs), device=program.device)
    return table[(program.round().long() + 1).clamp(0, MAX_PROGRAMS - 1)]


@dataclass
class FeatureScaler:
    """Per-feature affine scaling fitted on the training notes.

    ``method="max"`` maps the training range to ``[0, 1]`` (by the training maximum; the minimum
    is 0 for duration and delta and the lowest pitch for log-frequency) and then to ``[-1, 1]``,
    the range diffusion samplers clip to. ``method="standard"`` subtracts the training mean and
    divides by the standard deviation. ``low``/``high`` are the training extremes, used to clip
    decoded values to what the model has seen.
    """

    method: Literal["max", "standard"] = "max"  # how features are scaled
    velocity: bool = False  # whether velocity is a feature
    time_coding: Literal["beats", "log"] = "log"  # duration/delta as beats or log2(1 + b/grid)
    shift: list[float] = field(default_factory=list)  # subtracted, per feature
    scale: list[float] = field(default_factory=list)  # then divided by, per feature
    low: list[float] = field(default_factory=list)  # training minimum, per feature
    high: list[float] = field(default_factory=list)  # training maximum, per feature
    programs: list[int] = field(default_factory=list)  # GM program of each instrument channel
    pitch_classes: bool = False  # 12 ±1 pitch-class channels after the instruments'

    @property
    def names(self) -> tuple[str, ...]:
        """Every channel: the continuous features, one per instrument (K >= 2), then the
        pitch classes (with ``pitch_classes``)."""
        return feature_names(self.velocity, self.programs, self.pitch_classes)

    @property
    def continuous(self) -> tuple[str, ...]:
        """The channels with fitted scaling (``shift``/``scale`` hold one value each)."""
        return feature_names(self.velocity)

    @property
    def n_instruments(self) -> int:
        """Instrument channels: K for K >= 2 programs, else 0."""
        return len(self.programs) if len(self.programs) > 1 else 0

    @property
    def instrument_slice(self) -> slice:
        """The instrument channels' place in the feature vector (empty when K <= 1)."""
        first = len(self.continuous)
        return slice(first, first + self.n_instruments)

    @property
    def pitch_class_slice(self) -> slice:
        """The pitch-class channels' place (empty without ``pitch_classes``)."""
        first = self.instrument_slice.stop
        return slice(first, first + SEMITONES_PER_OCTAVE * self.pitch_classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "velocity": self.velocity,
            "time_coding": self.time_coding,
            "programs": list(self.programs),
            "pitch_classes": self.pitch_classes,
            "features": list(self.names),
            "shift": self.shift,
            "scale": self.scale,
            "low": self.low,
            "high": self.high,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> FeatureScaler:
        try:
            return cls(
                method=state["method"],
                velocity=bool(state["velocity"]),
                time_coding=state.get("time_coding", "beats"),
                shift=[float(v) for v in state["shift"]],
                scale=[float(v) for v in state["scale"]],
                low=[float(v) for v in state["low"]],
                high=[float(v) for v in state["high"]],
                programs=[int(p) for p in state.get("programs", [])],
                pitch_classes=bool(state.get("pitch_classes", False)),
            )
        except KeyError as exc:
            raise MidiforgeError(
                f"data_state.json: the feature scaling lacks {exc}; retrain the run"
            ) from None

    # ---- raw rows <-> unscaled features ---------------------------------------------------

    def raw_features(self, notes: torch.Tensor) -> torch.Tensor:
        """Unscaled features ``(..., F)`` of raw note rows ``(..., len(NOTE_FIELDS))``."""
        idx = {name: i for i, name in enumerate(NOTE_FIELDS)}
        freq = notes[..., idx["frequency"]].clamp_min(1e-3)
        cols = [
            torch.log2(freq),
            self._code_time(notes[..., idx["duration"]]),
            self._code_time(notes[..., idx["delta"]]),
        ]
        if self.velocity:
            cols.append(notes[..., idx["velocity"]])
        return torch.stack(cols, dim=-1).float()

    def _code_time(self, beats: torch.Tensor) -> torch.Tensor:
        """Beats as they are, or log2(1 + beats/grid): 0 stays 0 and short values spread out."""
        if self.time_coding == "beats":
            return beats
        return torch.log2(1 + beats.clamp_min(0) / TIME_GRID_BEATS)

    def _decode_time(self, coded: np.ndarray) -> np.ndarray:
        if self.time_coding == "beats":
            return coded
        return (2.0 ** np.maximum(coded, 0.0) - 1) * TIME_GRID_BEATS

    def encode(self, notes: torch.Tensor) -> torch.Tensor:
        """Scaled features ``(..., F)`` of raw note rows; needs a fitted scaler."""
        self._check_fitted()
        x = self.raw_features(notes)
        shift = torch.tensor(self.shift, dtype=x.dtype, device=x.device)
        scale = torch.tensor(self.scale, dtype=x.dtype, device=x.device)
        x = (x - shift) / scale
        x = x * 2 - 1 if self.method == "max" else x
        blocks = [x]
        if self.n_instruments:
            index = program_indices(notes[..., NOTE_FIELDS.index("program")], self.programs)
            onehot = torch.nn.functional.one_hot(index, self.n_instruments + 1)[..., :-1]
            blocks.append(onehot.to(x.dtype) * 2 - 1)  # unseen program: all -1
        if self.pitch_classes:
            pitch = notes[..., NOTE_FIELDS.index("pitch")].round().long()
            onehot = torch.nn.functional.one_hot(pitch % SEMITONES_PER_OCTAVE, SEMITONES_PER_OCTAVE)
            blocks.append(onehot.to(x.dtype) * 2 - 1)
        return torch.cat(blocks, dim=-1) if len(blocks) > 1 else x

    def choose_instruments(
        self, features: np.ndarray, allowed: Sequence[int] | None = None
    ) -> np.ndarray:
        """Channel index ``(N,)`` of each note: the argmax over the instrument channels,
        only among the channels of the ``allowed`` programs when given; zeros when K <= 1."""
        x = np.asarray(features, dtype=np.float64)
        if not self.n_instruments:
            return np.zeros(len(x), dtype=np.int64)
        scores = x[:, self.instrument_slice].copy()  # (N, K)
        if allowed is not None:
            off = [k for k, p in enumerate(self.programs) if p not in set(allowed)]
            scores[:, off] = -np.inf
        return scores.argmax(axis=1)

    def decode(
        self,
        features: np.ndarray,
        *,
        fixed_time: float | None = None,
        start: float | None = None,
        instruments: np.ndarray | None = None,
        rhythm: Rhythm = NO_RHYTHM,
    ) -> np.ndarray:
        """Raw note rows ``(N, len(NOTE_FIELDS))`` float32 from scaled features ``(N, F)``.

        Pitch is the nearest MIDI note to the decoded frequency (clipped to the training
        range), or with ``pitch_classes`` the nearest one of the class the pitch-class channels
        choose (:meth:`pitches`); duration and delta are clipped to ``[0, training max]`` and
        snapped to ``TIME_GRID_BEATS``, a delta that snaps to 0 stacks the note on the previous
        one as a chord. ``fixed_time`` (beats) instead puts every non-chord note one grid step
        after the previous one with that duration: for models whose timing is not yet good.
        ``start=None`` begins a piece (first onset 0, first delta 0); a number continues one
        whose last onset is ``start`` (beats), keeping the first note's delta.
        ``instruments`` is each note's channel index (default: :meth:`choose_instruments`).
        ``rhythm`` (a style's, :class:`Rhythm`) moves each delta to the nearest of its gaps
        and each duration to the nearest of its durations instead of the nearest grid step,
        and each onset onto its grid (not with ``fixed_time``).
        """
        self._check_fitted()
        if instruments is None:
            instruments = self.choose_instruments(features)
        x = self._unscaled(features)
        pitch = self._pitches(x[:, 0], features)
        duration = snap_to_values(self._decode_time(x[:, 1]), rhythm.durations)
        duration = np.maximum(_snap(duration, TIME_GRID_BEATS), MIN_DURATION_BEATS)
        delta = self.decode_deltas(x[:, 2], rhythm.gaps)
        grid = rhythm.grid
        if fixed_time is not None:
            if not fixed_time > 0:
                raise MidiforgeError(f"fixed_time: {fixed_time} beats must be positive")
            delta = np.where(delta > 0, fixed_time, 0.0)
            duration = np.full_like(duration, fixed_time)
            grid = None  # the fixed step is the grid
        if start is None:
            if len(delta):
                delta[0] = 0.0  # the first note starts the piece
            start = 0.0
        onset = place_onsets(delta, start, grid)
        if grid is not None:
            delta = np.diff(onset, prepend=start)
        if self.velocity:
            velocity = np.clip(np.rint(x[:, 3]), MIN_VELOCITY, MIDI_MAX)
        else:
            velocity = np.full(len(x), DEFAULT_VELOCITY, dtype=np.float64)
        rows = {
            "pitch": pitch,
            "frequency": pitch_to_frequency(pitch),
            "onset": onset,
            "duration": duration,
            "delta": delta,
            "velocity": velocity,
            "program": self._programs_of(np.asarray(instruments, dtype=np.int64)),
        }
        return np.stack([rows[name] for name in NOTE_FIELDS], axis=-1).astype(np.float32)

    def _unscaled(self, features: np.ndarray) -> np.ndarray:
        """The continuous channels ``(..., C)`` of scaled features ``(..., F)``, unscaled and
        clipped to the training range."""
        x = np.asarray(features, dtype=np.float64)[..., : len(self.continuous)]
        if self.method == "max":
            x = (x + 1) / 2
        x = x * np.asarray(self.scale) + np.asarray(self.shift)
        return np.clip(x, np.asarray(self.low), np.asarray(self.high))

    def pitches(self, features: np.ndarray) -> np.ndarray:
        """MIDI pitch (int64, ``(...)``) of scaled features ``(..., F)``, as :meth:`decode`
        writes it: the nearest note to the log-frequency channel, or with ``pitch_classes`` the
        nearest one of the class whose channel is largest (kept in the training range)."""
        return self._pitches(self._unscaled(features)[..., 0], features)

    def _pitches(self, log2_hz: np.ndarray, features: np.ndarray) -> np.ndarray:
        if not self.pitch_classes:
            return frequency_to_pitch(2.0**log2_hz)
        classes = np.asarray(features)[..., self.pitch_class_slice].argmax(axis=-1)
        low, high = np.rint(log2_hz_to_midi(np.array([self.low[0], self.high[0]])))
        return pitch_in_class(log2_hz_to_midi(log2_hz), classes, low, high)

    def _programs_of(self, channels: np.ndarray) -> np.ndarray:
        """GM programs of channel indices; the one program (or piano) without channels."""
        if self.n_instruments:
            return np.asarray(self.programs, dtype=np.float64)[channels]
        only = self.programs[0] if self.programs else DEFAULT_PROGRAM
        return np.full(len(channels), only, dtype=np.float64)

    def decode_deltas(self, coded: np.ndarray, gaps: Sequence[float] = ()) -> np.ndarray:
        """Onset gaps in beats of unscaled, clipped delta features ``coded`` (any shape): on the
        nearest of ``gaps`` (a style's, :func:`fit_time_values`), else on the 1/12-beat grid.
        One place for :meth:`decode` and for the rules that read where it puts the onsets."""
        delta = np.maximum(self._decode_time(coded), 0.0)
        return snap_to_values(delta, gaps) if len(gaps) else _snap(delta, TIME_GRID_BEATS)

    def _check_fitted(self) -> None:
        if len(self.scale) != len(self.continuous):
            raise MidiforgeError(
                "the note features are not fitted: call model.prepare_data(dataset) before "
                "training, or load_data_state(state) from the run's data_state.json"
            )


def _snap(values: np.ndarray, grid: float) -> np.ndarray:
    return np.rint(values / grid) * grid


def fit_scaler(
    notes: np.ndarray,
    fields: Sequence[str] = NOTE_FIELDS,
    *,
    method: str = "max",
    velocity: bool = False,
    time_coding: str = "log",
    programs: Sequence[int] = (),
    pitch_classes: bool = False,
) -> FeatureScaler:
    """Fit a :class:`FeatureScaler` on raw training notes ``(N, len(fields))``.

    ``fields`` names the columns of ``notes`` (a dataset manifest's ``note_fields``); it must
    hold the columns the features need. ``programs`` are the run's instruments (K >= 2 adds
    the instrument channels, which are ±1 by construction and need no fitting, as are the
    ``pitch_classes`` channels).
    """
    if method not in ("max", "standard"):
        raise choice_error("scaling", method, ["max", "standard"])
    if time_coding not in ("beats", "log"):
        raise choice_error("time_coding", time_coding, ["beats", "log"])
    fields = list(fields)
    missing = [f for f in ("frequency", "duration", "delta", "velocity") if f not in fields]
    if missing:
        raise MidiforgeError(
            f"note_fields lack {', '.join(missing)}; re-run prepare with this midiforge version"
        )
    notes = np.asarray(notes, dtype=np.float32)
    if notes.ndim != 2 or len(notes) == 0:
        raise MidiforgeError(
            "the training split holds no notes to fit the feature scaling on; "
            "check the dataset's train split"
        )
    ordered = np.stack([notes[:, fields.index(name)] for name in NOTE_FIELDS], axis=-1)
    check_programs("", list(programs))
    scaler = FeatureScaler(method=method, velocity=velocity, time_coding=time_coding,  # type: ignore[arg-type]
                           programs=[int(p) for p in programs],
                           pitch_classes=bool(pitch_classes))  # fmt: skip
    x = scaler.raw_features(torch.from_numpy(ordered)).double().numpy()  # (N, F)
    low, high = x.min(axis=0), x.max(axis=0)
    low[1:3] = 0.0  # duration and delta scale by their maximum: 0 stays 0 (chords)
    if method == "max":
        shift, scale = low, np.maximum(high - low, MIN_RANGE)
    else:
        shift, scale = x.mean(axis=0), np.maximum(x.std(axis=0), MIN_RANGE)
    scaler.shift, scaler.scale = shift.tolist(), scale.tolist()
    scaler.low, scaler.high = low.tolist(), high.tolist()
    if not all(math.isfinite(v) for v in scaler.shift + scaler.scale):
        raise MidiforgeError("the training notes hold non-finite values; re-run prepare")
    return scaler


def window_scales(notes: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``(B,)`` long: the diatonic scale of each window of raw rows ``(B, L, n_fields)``, as
    :func:`midiforge.pitches.diatonic_scales` names it from its pitched notes (counted once per
    note, as ``scale_consistency`` counts them); :data:`NO_SCALE` for a window with no pitched
    note. ``mask`` ``(B, L)``: the real notes."""
    pitch = notes[..., NOTE_FIELDS.index("pitch")].round().long()  # (B, L)
    keep = notes[..., NOTE_FIELDS.index("program")] != DRUM_PROGRAM
    if mask is not None:
        keep = keep & mask.bool().to(keep.device)
    counts = torch.zeros(pitch.shape[0], SEMITONES_PER_OCTAVE, dtype=torch.float64,
                         device=pitch.device)  # fmt: skip
    counts.scatter_add_(1, pitch % SEMITONES_PER_OCTAVE, keep.double())  # (B, 12)
    counts = counts.cpu().numpy()
    best = torch.from_numpy(diatonic_scales(counts)).long()
    return torch.where(torch.from_numpy(counts.sum(axis=1) > 0), best, NO_SCALE)
