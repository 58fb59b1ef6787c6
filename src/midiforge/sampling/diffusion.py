"""Sampling from a note diffusion model: DDPM or DDIM, guidance, any length by inpainting.

The loop is the ``diffusers`` pipeline shape: ``output = model(x_t, t, label)`` then
``x_t = scheduler.step(output, t, x_t)``; the schedulers live in
:mod:`midiforge.models.diffusion_schedule` and the network in :mod:`midiforge.models.diffusion`.

* **Sampler.** ``steps=None`` runs DDPM over every trained step (Ho et al. 2020, Algorithm 2);
  ``steps=N`` runs DDIM over N of them (Song et al. 2021) with stochasticity ``eta``.
* **Guidance.** Classifier-free guidance (Ho & Salimans 2022): the output is
  ``uncond + s · (cond − uncond)``; ``s = 1`` is the plain conditional model, ``s = 0`` ignores
  the label, ``s > 1`` follows it more strongly.
* **Any length.** The first window of L notes is sampled freely; every further window keeps the
  last C notes of the piece as known and inpaints the other L − C (RePaint, Lugmayr et al. 2022):
  after every step the known positions are overwritten with the known notes noised to the next
  step's level, so the new notes are denoised in agreement with them. A piece of K windows has
  ``L + (L − C)(K − 1)`` notes; the context notes are kept as they were, never re-decoded.
* **A primer.** Every window then continues: the first inpaints the primer's last
  ``min(C, P)`` notes, and the piece is the primer's P notes exactly, then ``K`` windows of
  ``L − C`` new notes each.
* **Resampling.** ``resample = R`` repeats every step of an inpainted window R times,
  re-noising the result one step back in between (RePaint's resampling, Lugmayr et al. 2022,
  with jump length 1): plain replacement only tells the unknown notes about the known ones
  through the network's next input, which can leave a seam; resampling lets them settle
  together. ``bench/diffusion_seams.py`` measures the seam with and without it.
* **Instruments.** A run over several instruments denoises one ±1 channel per program
  (:mod:`midiforge.models.note_features`); each note plays the program of its largest channel.
  Asking for ``instruments`` is a projection, by the same inpainting: the channels of the
  programs not asked for are *known* to be −1 (off) on every new note, so the other features
  are denoised in agreement with "these instruments are silent", and the argmax runs over the
  requested channels only. So that each requested instrument plays, a window whose new notes
  give one of them fewer than ``MIN_SHARE`` of its fair share (N / k of the N new notes, at
  least one note) hands it the notes whose channel for it comes closest to the winning one,
  taken from instruments that have more than that share
  (:mod:`midiforge.sampling.diffusion_instruments`).
* **Key.** A model trained with ``key_condition`` is told one diatonic scale for every window
  of a piece (:func:`piece_keys`: ``--key``'s, the chords', the primer's, or drawn), so its
  windows agree on a key instead of each finding one; ``key_guidance`` is classifier-free
  guidance on that scale (the model also learned "no key told", as it did "no style").
* **Self-conditioning.** A model trained with ``self_condition`` reads, beside ``x_t``, the
  x̂_0 of the step before (zeros at the first); in an inpainted window the known notes stand
  in for their own estimate, since they are known exactly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from midiforge.chords import progression, tone_table
from midiforge.errors import MidiforgeError
from midiforge.models.diffusion import NoteDiffusion
from midiforge.models.diffusion_schedule import DDIMScheduler, DDPMScheduler, make_scheduler
from midiforge.models.note_features import (
    N_SCALES,
    NO_SCALE,
    draw_pickups,
    weighted_draws,
    window_scales,
)
from midiforge.pitches import diatonic_scales, key_scale
from midiforge.sampling.diffusion_instruments import instrument_channels, spread_instruments
from midiforge.schema import NO_LABEL, NOTE_FIELDS
from midiforge.style_parts import NO_PARTS, Parts, play_parts
from midiforge.style_scale import N_CLASSES, keep_accidentals

log = logging.getLogger(__name__)

MAX_LENGTH_WINDOWS = 64  # windows added at most to reach a length the rules ask for
TRACE_SNAPSHOTS = 6  # pictures in a denoising trace, from pure noise to the final notes
TRACE_DPI = 100
TRACE_PANEL_INCHES = (3.2, 3.0)  # width, height of one trace panel
ONSET = NOTE_FIELDS.index("onset")
PITCH = NOTE_FIELDS.index("pitch")
DURATION = NOTE_FIELDS.index("duration")
OFF = -1.0  # the value of an instrument channel that is off


@dataclass
class Trace:
    """Snapshots of the first piece's first window while it is denoised."""

    timesteps: list[int] = field(default_factory=list)  # t of each snapshot (−1 = final)
    windows: list[np.ndarray] = field(default_factory=list)  # decoded raw rows (L, n_fields)


def resolve_label(model: NoteDiffusion, label: int | str | None) -> int:
    """A label index from a name or an index; ``None`` means unconditional."""
    if label is None:
        return NO_LABEL
    names = model.label_names
    if isinstance(label, str) and not label.lstrip("-").isdigit():
        if label not in names:
            raise MidiforgeError(
                f"label: {label!r} is not one of the run's labels: {', '.join(names) or '(none)'}"
            )
        return names.index(label)
    index = int(label)
    limit = len(names) if names else model.config.n_labels
    if not NO_LABEL <= index < limit:
        raise MidiforgeError(f"label: {index} is out of range; use -1..{limit - 1} or a name")
    return index


def guided_output(
    model: NoteDiffusion,
    x_t: torch.Tensor,
    t: int,
    label: int,
    guidance: float,
    estimate: torch.Tensor | None = None,
    key: torch.Tensor | None = None,
    key_guidance: float = 1.0,
) -> torch.Tensor:
    """The denoiser's output with classifier-free guidance, every variant in one batched call.

    ``guidance`` scales the style ``label``: ``u + s (c − u)`` between the unlabelled and the
    labelled output. ``key`` ``(B,)``: the windows' scales for a key-conditioned model, and
    ``key_guidance`` scales it the same way, between the output told no key and the one told
    ``key`` (each style-guided first). ``estimate``: the previous step's x̂_0 for a
    self-conditioned model; every variant reads it."""
    b = x_t.shape[0]
    styles = [label] if label == NO_LABEL or guidance == 1.0 else [label, NO_LABEL]
    keys = [key] if key is None or key_guidance == 1.0 else [key, torch.full_like(key, NO_SCALE)]
    runs = [(style, told) for told in keys for style in styles]  # key-major: [k][style]
    n = len(runs)
    t_batch = torch.full((b * n,), int(t), dtype=torch.long, device=x_t.device)
    labels = torch.tensor([style for style, _ in runs for _ in range(b)], device=x_t.device)
    told = None if key is None else torch.cat([k for _, k in runs])
    again = None if estimate is None else torch.cat([estimate] * n)
    out = model(torch.cat([x_t] * n), t_batch, labels, again, told).split(b)

    def styled(k: int) -> torch.Tensor:
        if len(styles) == 1:
            return out[k]
        cond, uncond = out[2 * k], out[2 * k + 1]
        return uncond + guidance * (cond - uncond)

    if len(keys) == 1:
        return styled(0)
    return styled(1) + key_guidance * (styled(0) - styled(1))


@torch.no_grad()
def sample_window(
    model: NoteDiffusion,
    scheduler: DDPMScheduler | DDIMScheduler,
    *,
    batch: int,
    label: int = NO_LABEL,
    guidance: float = 1.0,
    eta: float = 0.0,
    known: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    trace: Trace | None = None,
    resample: int = 1,
    project: Any = None,
    key: torch.Tensor | None = None,
    key_guidance: float = 1.0,
) -> torch.Tensor:
    """Denoise one window of scaled features ``(batch, F, L)`` from pure noise.

    ``known`` ``(batch, F, L)`` and ``known_mask`` bool, ``(L,)`` (whole notes) or ``(F, L)``
    (single channels too: instruments that are off), fix some values (RePaint): after each
    step they are replaced by ``add_noise(known, fresh noise, t_prev)``, and by the known
    values themselves at the end, so they come out exactly as given.

    ``resample = R > 1`` (with known values) is RePaint's resampling: each step but the last
    is taken R times, the result re-noised back to its level between takes
    (:meth:`NoiseSchedule.renoise`), so the unknown notes are denoised again against known
    notes that have already been harmonised with them; R times the network calls.
    ``project`` (a callable on ``(batch, F, L)``, e.g. :meth:`~midiforge.sampling.note_rules.
    DiffusionRules.project`) moves every step's result onto what the musician's constraints
    allow, before the known values are put back. ``key`` ``(batch,)``: the scale each window
    is told (a ``key_condition`` model; see :func:`piece_keys`), followed ``key_guidance``
    strongly (:func:`guided_output`).
    """
    if scheduler.timesteps is None:
        raise MidiforgeError("the scheduler has no timesteps: call set_timesteps(n) first")
    if resample < 1:
        raise MidiforgeError(f"resample: {resample} rounds; use 1 (off) or more")
    device = next(model.parameters()).device
    shape = (batch, model.n_features, model.config.length)
    x = torch.randn(shape, generator=generator).to(device)  # x_T ~ N(0, I)
    steps = scheduler.timesteps.tolist()
    keep = None
    if known is not None and known_mask is not None:
        keep = known_mask.to(device)
        keep = keep[None, None, :] if keep.dim() == 1 else keep[None]  # (1, 1 or F, L)
        known = known.to(device)
        x = torch.where(keep, scheduler.add_noise(known, x, torch.tensor([steps[0]])), x)
    marks = set(np.linspace(0, len(steps), TRACE_SNAPSHOTS).round().astype(int).tolist())
    estimate = None  # x̂_0 of the step before, for a self-conditioned model
    for i, t in enumerate(steps):
        if trace is not None and i in marks:
            trace.timesteps.append(int(t))
            trace.windows.append(_decode(model, x[0]))
        prev = steps[i + 1] if i + 1 < len(steps) else -1
        rounds = resample if keep is not None and prev >= 0 else 1
        for r in range(rounds):
            output = guided_output(model, x, t, label, guidance, estimate, key, key_guidance)
            if isinstance(scheduler, DDIMScheduler):
                x, x0 = scheduler.step(output, t, x, eta=eta, generator=generator)
            else:
                x, x0 = scheduler.step(output, t, x, generator=generator)
            if model.config.self_condition:  # the known values are their own estimate
                estimate = x0 if keep is None else torch.where(keep, known, x0)
            if project is not None:
                x = project(x)
            if keep is not None:
                noise = torch.randn(shape, generator=generator).to(device)
                x = torch.where(keep, scheduler.add_noise(known, noise, torch.tensor([prev])), x)
            if r < rounds - 1:  # back up one step: x_prev → x_t
                noise = torch.randn(shape, generator=generator).to(device)
                x = scheduler.renoise(x, noise, prev, t)
    if trace is not None:
        trace.timesteps.append(-1)
        trace.windows.append(_decode(model, x[0]))
    return x


def _decode(model: NoteDiffusion, features: torch.Tensor, **kwargs: Any) -> np.ndarray:
    """Raw rows ``(L, n_fields)`` of one window's features ``(F, L)``."""
    return model.scaler.decode(features.T.float().cpu().numpy(), **kwargs)


@dataclass
class DenoisingWindows:
    """What every window of one :func:`generate_notes` call is sampled and decoded with."""

    model: NoteDiffusion
    scheduler: DDPMScheduler | DDIMScheduler
    label: int
    guidance: float
    eta: float
    generator: torch.Generator
    channels: list[int] | None  # requested instrument channels (None: all)
    fixed_time: float | None
    resample: int = 1  # RePaint rounds per step of an inpainted window
    project: Any = None  # the musician's constraints on every step (DiffusionRules.project)
    window: Any = None  # told each window's start onsets first (DiffusionRules.window)
    keys: torch.Tensor | None = None  # (n,) each piece's scale (piece_keys; key_condition)
    key_guidance: float = 1.0  # classifier-free guidance scale for those scales
    parts: Parts = NO_PARTS  # the style's band (played when no instruments are asked)

    def off(self) -> torch.Tensor:
        """``(F,)`` bool: the instrument channels known to be off (not requested)."""
        scaler = self.model.scaler
        off = torch.zeros(self.model.n_features, dtype=torch.bool)
        if self.channels is not None and scaler.n_instruments:
            first = scaler.instrument_slice.start
            off[scaler.instrument_slice] = True
            off[[first + c for c in self.channels]] = False
        return off

    def sample(
        self, batch: int, known: torch.Tensor | None, context: int, trace: Any = None,
        starts: np.ndarray | None = None,
    ):  # fmt: skip
        """One window ``(batch, F, L)``: the first ``context`` notes of ``known`` kept, the
        channels of instruments not asked for held off; ``starts``: the pieces' last onsets."""
        if self.window is not None:
            self.window(starts, context)
        length, off = self.model.config.length, self.off()
        mask = (torch.arange(length) < context)[None, :] | off[:, None]  # (F, L)
        if known is None:
            known = torch.zeros(batch, self.model.n_features, length)
        known = known.clone()
        known[:, off, context:] = OFF
        use = bool(mask.any())
        return sample_window(
            self.model, self.scheduler, batch=batch, label=self.label, guidance=self.guidance,
            eta=self.eta, known=known if use else None, known_mask=mask if use else None,
            generator=self.generator, trace=trace, resample=self.resample, project=self.project,
            key=self.keys, key_guidance=self.key_guidance,
        )  # fmt: skip

    def decode(self, window: torch.Tensor, context: int, start: float | None) -> np.ndarray:
        """Raw rows of one window's new notes (those after ``context``)."""
        feats = window[:, context:].T.float().cpu().numpy()  # (N, F)
        scaler = self.model.scaler
        chosen = scaler.choose_instruments(feats, self.programs())
        if self.channels is not None and scaler.n_instruments:
            scores = feats[:, scaler.instrument_slice]
            chosen = spread_instruments(scores, chosen, self.channels)
        return scaler.decode(
            feats, fixed_time=self.fixed_time, start=start, instruments=chosen,
            rhythm=self.model.rhythm(self.label),
        )  # fmt: skip

    def programs(self) -> list[int] | None:
        """The programs the new notes may play: those asked, else the style's band (None:
        any the model knows)."""
        if self.channels is None:
            known = set(self.model.scaler.programs)
            band = [p for p in self.parts.programs if p in known]
            return band or None
        return [self.model.scaler.programs[c] for c in self.channels]


def scheduler_for(model: NoteDiffusion, steps: int | None, eta: float):
    if steps is None:
        scheduler = make_scheduler(model.config.schedule, "ddpm")
        scheduler.set_timesteps()
        if eta != 0.0:
            log.info("eta=%s is ignored: DDPM (no --steps) always samples with full noise", eta)
    else:
        scheduler = make_scheduler(model.config.schedule, "ddim")
        scheduler.set_timesteps(steps)
    return scheduler


def seeded_generator(seed: int | None) -> torch.Generator:
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(int(seed))
    return generator


def generate_notes(
    model: NoteDiffusion,
    *,
    n: int = 1,
    number: int = 1,
    context: int | None = None,
    steps: int | None = None,
    eta: float = 0.0,
    guidance: float = 1.0,
    label: int | str | None = None,
    seed: int | None = 0,
    fixed_time: float | None = None,
    trace: str | Path | None = None,
    instruments: Any = None,
    primer: np.ndarray | None = None,
    resample: int = 1,
    rules: Any = None,
    key_guidance: float = 1.0,
    style_keys: Mapping[str, int] | None = None,
    parts: bool = True,
) -> list[np.ndarray]:
    """Sample ``n`` pieces of ``number`` windows each as raw note rows.

    Parameters
    ----------
    model : a trained :class:`NoteDiffusion` with its data state loaded.
    n : pieces to generate (sampled together as one batch).
    number : windows per piece, K; the piece has ``L + (L − C)(K − 1)`` notes.
    context : notes C of the piece kept as known when inpainting the next window;
        default L // 2; ``0 <= C < L``.
    steps : None for DDPM over all trained steps, or N for DDIM with N steps.
    eta : DDIM stochasticity (0 deterministic, 1 DDPM-like); DDIM only.
    guidance : classifier-free guidance scale for ``label`` (1 = none).
    label : a label name or index of the run, or None for unconditional.
    seed : seeds all noise, so equal arguments give equal pieces; None draws a fresh seed.
    fixed_time : beats; put notes on a fixed grid (see ``FeatureScaler.decode``).
    trace : a PNG path for a picture of the first window being denoised.
    instruments : GM programs the new notes may play (None: the model chooses); see the
        module docstring.
    primer : raw note rows ``(P, n_fields)`` to continue: every window is then inpainted,
        the first one from the primer's last ``min(C, P)`` notes, and the piece is the primer
        (kept exactly) followed by ``number`` windows of new notes.
    resample : RePaint rounds per denoising step of an inpainted window (1 = off).
    rules : a :class:`~midiforge.sampling.note_rules.DiffusionRules` (the musician's hard
        constraints): its ``project`` runs after every step, windows are added past ``number``
        (up to ``MAX_LENGTH_WINDOWS``) while a piece is ``short`` of its length, and each piece
        goes through ``finish`` at the end.
    key_guidance : classifier-free guidance scale for the scale a ``key_condition`` model is
        told (:func:`piece_keys`; 1 = as told, no more); other models ignore it.
    style_keys : the keys of the style's training pieces (key → count), the scale of a piece
        no option keys is drawn from (:func:`piece_keys`; None: any scale).
    parts : play the new notes as the style's parts (:mod:`midiforge.style_parts`: its band,
        registers and lines); False writes what was denoised.

    Returns
    -------
    ``n`` float32 arrays ``(notes, len(NOTE_FIELDS))`` in ``docs/architecture.md`` field order.
    """
    length = model.config.length
    context = length // 2 if context is None else int(context)
    if n < 1:
        raise MidiforgeError(f"n: {n} pieces; ask for at least 1")
    if number < 1:
        raise MidiforgeError(f"number: {number} windows; ask for at least 1")
    if not 0 <= context < length:
        raise MidiforgeError(f"context: {context} notes; use 0..{length - 1} (below the window)")
    label_index = resolve_label(model, label)
    if label_index == NO_LABEL and guidance != 1.0:
        log.info("guidance=%s has no effect without a label: sampling unconditionally", guidance)
    generator = seeded_generator(seed)
    windows = DenoisingWindows(
        model, scheduler_for(model, steps, eta), label_index, guidance, eta, generator,
        instrument_channels(model, instruments), fixed_time, resample,
        None if rules is None else rules.project, None if rules is None else rules.window,
        piece_keys(
            model, n, generator, None if rules is None else rules.musical, primer, style_keys
        ),
        key_guidance, model.parts(label_index) if parts else NO_PARTS,
    )  # fmt: skip
    was_training = model.training
    model.eval()
    recorder = Trace() if trace is not None else None
    try:
        if primer is None:  # the first window is free, the others continue it
            x = windows.sample(n, None, 0, trace=recorder)
            pieces = [windows.decode(x[i], 0, None) for i in range(n)]
        else:  # every window continues the primer
            pieces = _primer_pieces(primer, n)
        first = recorder if primer is not None else None
        added = 0
        while added < number - (primer is None) or (
            rules is not None and added < MAX_LENGTH_WINDOWS and rules.short(pieces)
        ):
            _continue(model, windows, pieces, context, first if added == 0 else None)
            added += 1
    finally:
        model.train(was_training)
    if recorder is not None:
        draw_trace(recorder, trace)
    first = 0 if primer is None else len(primer)
    pieces = [play_parts(p, windows.parts, first) for p in pieces]
    if parts:
        outside = draw_accidentals(model.accidentals(label_index), n, generator)
        pieces = [keep_accidentals(p, k, first) for p, k in zip(pieces, outside)]
    if parts and primer is None and rules is None:  # rules count bars from beat 0
        starts = draw_pickups(model.pickup_table(label_index), n, generator)
        for piece, beats in zip(pieces, starts):
            piece[:, ONSET] += beats
    return pieces if rules is None else [rules.finish(p) for p in pieces]


def draw_accidentals(table: Sequence[int], n: int, generator: torch.Generator) -> list[int]:
    """How many classes outside its scale each of ``n`` pieces may use: drawn from ``table``
    (the style's training pieces by that number, :func:`~midiforge.style_scale.fit_accidentals`)
    weighted by its counts; every class (no limit) without a table."""
    if not sum(table):
        return [N_CLASSES] * n
    return weighted_draws(table, n, generator)


def piece_keys(
    model: NoteDiffusion,
    n: int,
    generator: torch.Generator,
    musical: Any = None,
    notes: np.ndarray | None = None,
    style_keys: Mapping[str, int] | None = None,
) -> torch.Tensor | None:
    """``(n,)``: the diatonic scale every window of each of ``n`` pieces is told, for a
    ``key_condition`` model (None for others): the musician's ``--key``
    (:func:`~midiforge.pitches.key_scale`), else that of their ``--chords``' tones, else that of
    ``notes`` (a primer, the music around an infill), else one drawn per piece: from
    ``style_keys`` (key → training pieces in it, ``LoadedRun.style_keys``) weighted by their
    counts, so the piece is written in a key of its style and its parts' registers
    (:mod:`midiforge.style_parts`) are where that style plays them; uniformly without
    them, as training saw every key by transposition."""
    if not model.config.key_condition:
        return None
    if musical is not None and musical.key:
        scale = key_scale(musical.key)
    elif musical is not None and musical.chords:
        counts = tone_table(progression(musical.chords)).sum(axis=0)  # (12,) bars per class
        scale = int(diatonic_scales(counts))
    elif notes is not None and len(notes):
        scale = int(window_scales(torch.as_tensor(notes, dtype=torch.float32)[None])[0])
    elif style_keys:
        keys = [key for key, count in style_keys.items() if count > 0]
        drawn = weighted_draws([style_keys[key] for key in keys], n, generator)
        return torch.tensor([key_scale(keys[i]) for i in drawn], dtype=torch.long)
    else:
        return torch.randint(N_SCALES, (n,), generator=generator)
    return torch.full((n,), scale, dtype=torch.long)


def _primer_pieces(primer: np.ndarray, n: int) -> list[np.ndarray]:
    primer = np.asarray(primer, dtype=np.float32)
    if primer.ndim != 2 or primer.shape[1] != len(NOTE_FIELDS) or len(primer) == 0:
        raise MidiforgeError(
            f"primer: expected note rows of shape (notes >= 1, {len(NOTE_FIELDS)}), got "
            f"{primer.shape}; give a MIDI file with notes"
        )
    return [primer.copy() for _ in range(n)]


def _continue(
    model: NoteDiffusion,
    windows: DenoisingWindows,
    pieces: list[np.ndarray],
    context: int,
    trace: Trace | None,
) -> None:
    """Append one inpainted window to every piece (all the same length): its last
    ``min(context, len)`` notes known, the rest denoised in agreement with them."""
    n, length = len(pieces), model.config.length
    c = min(context, len(pieces[0]))
    known = torch.zeros(n, model.n_features, length)
    if c:
        tails = np.stack([p[len(p) - c :] for p in pieces])  # (n, C, n_fields)
        known[:, :, :c] = model.encode(torch.from_numpy(tails))  # (n, F, C)
    starts = np.array([float(p[-1, ONSET]) if len(p) else 0.0 for p in pieces])
    x = windows.sample(n, known, c, trace=trace, starts=starts)
    for i, piece in enumerate(pieces):
        start = float(piece[-1, ONSET]) if len(piece) else 0.0
        pieces[i] = np.concatenate([piece, windows.decode(x[i], c, start)])


def draw_trace(trace: Trace, path: str | Path) -> Path:
    """Save the trace as a row of piano rolls (pitch over beats), noise on the left."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise MidiforgeError(f"trace: {path} should end in .png")
    if not path.parent.is_dir():
        raise MidiforgeError(f"trace: the folder {path.parent} does not exist; create it first")
    panels = len(trace.windows)
    width, height = TRACE_PANEL_INCHES
    fig = Figure(figsize=(width * panels, height), dpi=TRACE_DPI)
    FigureCanvasAgg(fig)
    pitches = np.concatenate([w[:, PITCH] for w in trace.windows]) if panels else np.zeros(1)
    for k, (t, window) in enumerate(zip(trace.timesteps, trace.windows)):
        ax = fig.add_subplot(1, panels, k + 1)
        for row in window:
            ax.broken_barh([(row[ONSET], row[DURATION])], (row[PITCH] - 0.4, 0.8))
        ax.set_ylim(pitches.min() - 2, pitches.max() + 2)
        ax.set_title("final" if t < 0 else f"t = {t}")
        ax.set_xlabel("beats")
        if k == 0:
            ax.set_ylabel("MIDI pitch")
    fig.tight_layout()
    fig.savefig(path)
    return path
