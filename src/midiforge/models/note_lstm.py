"""Multi-head LSTM over the note encoding (registry name ``lstm-multihead``).

Input per note: a pitch embedding plus a linear map of scaled time features (delta, duration,
velocity). An LSTM runs over the notes; three parallel heads predict the *next* note:

* ``pitch``    — 128-way classification, cross-entropy;
* ``time``     — (delta, duration): with ``time_head: classes`` (the default) two categorical
                 distributions over :data:`TIME_BINS` (beats), cross-entropy, so sampling draws
                 a rhythm; with ``time_head: median`` (runs saved before the classes) one point
                 in standardised log-beats, L1 (a median). Duration is predicted too because
                 decoding needs it;
* ``velocity`` — standardised velocity, mean squared error;
* ``instrument`` — for a run over K >= 2 instruments (``programs``, the dataset's GM programs,
                 -1 drums), K-way classification, cross-entropy.

With ``chain_heads`` (new runs) the note itself is factorised too: p(gap) · p(pitch | gap) ·
p(duration, velocity | gap, pitch), each later head reading the state mixed with embeddings of
the values drawn before it (:meth:`NoteLSTM._chained_heads`); runs saved before it read one
state in all three heads.

With ``beat_position`` (new runs) the input also embeds where in its beat each note starts, on
a grid of 1/24 beat (:func:`beat_positions`). Why: the LSTM otherwise knows the metre only by
adding up gaps, and after a few hundred notes its pop onsets sat as often on triplets as on the
beat (POP909: 70 % on the beat or half beat, stop 30), which broke the grooves.

With instruments the next note is factorised as p(instrument | past) · p(pitch, time, velocity
| past, instrument): the instrument head reads the LSTM state alone, and the other three heads
read the state plus an embedding of the next note's instrument (the true one in training, the
drawn one in sampling), so a bass note gets a bass pitch. The input also embeds each note's own
instrument (a program the run never saw, e.g. in a primer, and the start row use one extra
"unknown" row).

``loss = w_pitch·CE + w_time·(CE_delta + CE_duration)/2 (or L1) + w_velocity·MSE +
w_instrument·CE_instrument``; the cross-entropies are in nats per note, so ``w_instrument = 1``
weighs choosing the instrument like choosing the pitch. Configs without ``programs`` (runs from
before instruments) have no instrument head or embedding and write program 0, as before; a run over
one program writes that program. With ``separate_head_optimizers`` each head
is its own parameter group with its own lr scale, as in designs that give each head its own
optimizer. Every window starts with a learned start row (raw pitch -1), so sampling can begin
from nothing. Feature scaling is fitted on the training split by :meth:`prepare_data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from midiforge.errors import MidiforgeError, choice_error
from midiforge.models import limits
from midiforge.models.base import MidiModel
from midiforge.models.note_features import (
    check_programs,
    fit_time_values,
    program_indices,
    read_time_values,
    snap_to_values,
    style_values,
)
from midiforge.models.token_lm import LabelEmbedding
from midiforge.schema import FIELD

N_PITCHES = 128  # MIDI pitch classes of the pitch head
START_PITCH = -1  # raw pitch value marking the start row of a window
POSITIONS_PER_BEAT = 24  # the beat-position input's grid: 16ths, 8th triplets and 32nds
POSITION_TOLERANCE = 0.05  # of a grid step: an onset further off it reads as "off the grid"
N_TIME = 2  # (delta, duration)
TIME_HEADS = ("classes", "median")


def _time_bins() -> tuple[float, ...]:
    """The values (beats) the categorical time head chooses among.

    Why classes, not a regression: the next onset gap of a chorale voice is 0 (another voice of
    the chord) or a beat, never the half beat a median of the two gives, and a regressed
    duration shrinks toward the middle of its spread, so the L1 head played short notes with
    rests between them (model card, stop 27). On 16ths, 8ths' triplets and 32nds up to 4 beats
    (POP909's performed onsets take 1/12 and 1/8), then half beats to 8, beats to 16, and three
    long rests; a value between bins is read as the nearest one in log1p(beats).
    """
    fine = [k / 24 for k in range(0, 97) if k % 2 == 0 or k % 3 == 0]
    coarse = [4 + k / 2 for k in range(1, 9)] + [float(b) for b in range(9, 17)]
    return tuple(fine + coarse + [20.0, 24.0, 32.0])


TIME_BINS = _time_bins()


def beat_positions(onsets: torch.Tensor) -> torch.Tensor:
    """Where in its beat each of ``onsets`` (beats) starts: ``k`` in ``0..23`` for ``k/24`` of
    a beat, or 24 for an onset off that grid (a performed or stretched time).

    The onsets need only be counted from some beat (a training window counts from its first
    note's beat, a sample from its start), so the index is the same wherever a window begins.
    """
    steps = onsets * POSITIONS_PER_BEAT
    nearest = steps.round()
    on_grid = (steps - nearest).abs() <= POSITION_TOLERANCE
    index = nearest.long().remainder(POSITIONS_PER_BEAT)
    return torch.where(on_grid, index, torch.full_like(index, POSITIONS_PER_BEAT))


@dataclass
class NoteLSTMConfig:
    """Size, loss weights and optimizer split of the note LSTM; the constructor's arguments."""

    d_pitch: int = 128  # pitch embedding width
    d_hidden: int = 256  # LSTM state width
    n_layers: int = 2  # stacked LSTM layers
    dropout: float = 0.1  # between layers and before the heads
    w_pitch: float = 1.0  # weight of the pitch cross-entropy
    w_time: float = 1.0  # weight of the (delta, duration) L1 loss
    w_velocity: float = 0.5  # weight of the velocity MSE
    separate_head_optimizers: bool = False  # one parameter group per head
    lr_scale_pitch: float = 1.0  # lr multiplier of the pitch head's group
    lr_scale_time: float = 1.0  # lr multiplier of the time head's group
    lr_scale_velocity: float = 1.0  # lr multiplier of the velocity head's group
    n_labels: int = 0  # style labels for conditioning; 0 = unconditional
    label_dropout: float = 0.0  # probability of training a labelled window as unlabelled
    programs: list[int] = field(default_factory=list)  # instruments (from the dataset); K >= 2
    # adds the instrument head
    w_instrument: float = 1.0  # weight of the instrument cross-entropy
    lr_scale_instrument: float = 1.0  # lr multiplier of the instrument head's group
    time_head: str = "classes"  # "classes" (TIME_BINS, drawn) or "median" (L1 regression)
    chain_heads: bool = True  # the pitch head reads the next note's gap; duration and velocity
    # read its gap and pitch (time_head: classes only)
    beat_position: bool = True  # the input embeds where in its beat each note starts

    # what a run saved before a field existed had (registry.saved_values fills it in)
    SAVED_DEFAULTS: ClassVar[dict[str, Any]] = {
        "time_head": "median",
        "chain_heads": False,
        "beat_position": False,
    }

    def check(self, where: str = "") -> None:
        """Refuse values outside their ranges (see :mod:`midiforge.models.limits`)."""
        limits.check_int(where, "d_pitch", self.d_pitch, 1, limits.MAX_WIDTH)
        limits.check_int(where, "d_hidden", self.d_hidden, 1, limits.MAX_WIDTH)
        limits.check_int(where, "n_layers", self.n_layers, 1, limits.MAX_LAYERS)
        limits.check_dropout(where, "dropout", self.dropout)
        for name in ("w_pitch", "w_time", "w_velocity", "w_instrument"):
            limits.check_float(where, name, getattr(self, name), 0.0, limits.MAX_LOSS_WEIGHT)
        for name in ("pitch", "time", "velocity", "instrument"):
            value = getattr(self, f"lr_scale_{name}")
            limits.check_float(where, f"lr_scale_{name}", value, 0.0, limits.MAX_LOSS_WEIGHT)
        limits.check_labels(where, self)
        check_programs(where, self.programs)
        if self.time_head not in TIME_HEADS:
            raise choice_error(f"{where}: time_head" if where else "time_head", self.time_head,
                               TIME_HEADS)  # fmt: skip
        if self.chain_heads and self.time_head != "classes":
            raise MidiforgeError(
                f"{limits.field_name(where, 'chain_heads')}: true needs time_head: classes "
                "(the chain reads the drawn gap's bin); "
                f"got time_head: {self.time_head!r}; set chain_heads: false for a median head"
            )

    @property
    def n_instruments(self) -> int:
        """Classes of the instrument head: K for K >= 2 programs, else 0 (no head)."""
        return len(self.programs) if len(self.programs) > 1 else 0


def _or_undrawn(values: torch.Tensor | None, h: torch.Tensor, row: int) -> torch.Tensor:
    """``values`` ``(B, T)``, or the embedding's extra row ``row`` (not drawn / unknown) at every
    position of states ``h`` ``(B, T, H)``."""
    if values is not None:
        return values
    return torch.full(h.shape[:-1], row, dtype=torch.long, device=h.device)


class NoteLSTM(MidiModel):
    """Pitch / time / velocity heads over an LSTM of notes."""

    name: ClassVar[str] = "lstm-multihead"
    encoding: ClassVar[str] = "notes"
    sampler: ClassVar[str] = "notes"
    config_class: ClassVar[type] = NoteLSTMConfig

    def __init__(self, config: NoteLSTMConfig) -> None:
        super().__init__(config)
        self.pitch_embed = nn.Embedding(N_PITCHES + 1, config.d_pitch)  # + start row
        self.time_in = nn.Linear(N_TIME + 1, config.d_pitch)  # delta, duration, velocity
        if config.beat_position:  # + off the grid, + start row
            self.position_embed = nn.Embedding(POSITIONS_PER_BEAT + 2, config.d_pitch)
        self.labels = (
            LabelEmbedding(config.n_labels, config.d_pitch, config.label_dropout)
            if config.n_labels > 0
            else None
        )
        self.rnn = nn.LSTM(
            config.d_pitch,
            config.d_hidden,
            num_layers=config.n_layers,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.pitch_head = nn.Linear(config.d_hidden, N_PITCHES)
        classes = config.time_head == "classes"
        bins = len(TIME_BINS)
        if config.chain_heads:
            # the next note drawn in order gap -> pitch -> (duration, velocity): each later head
            # reads a state mixed with what was drawn before it (+1 rows: not drawn yet)
            d = config.d_hidden
            self.time_head = nn.Linear(d, bins)  # the gap alone
            self.gap_embed = nn.Embedding(bins + 1, d)
            self.drawn_pitch = nn.Embedding(N_PITCHES + 1, d)
            self.pitch_mix = nn.Linear(d, d)
            self.note_mix = nn.Linear(d, d)
            self.duration_head = nn.Linear(d, bins)
        else:
            self.time_head = nn.Linear(config.d_hidden, N_TIME * bins if classes else N_TIME)
        # log1p of the bins, and the edges halfway between them (targets: the nearest bin)
        log_bins = torch.log1p(torch.tensor(TIME_BINS))
        self.register_buffer("time_bins", torch.tensor(TIME_BINS), persistent=False)
        self.register_buffer("time_edges", (log_bins[1:] + log_bins[:-1]) / 2, persistent=False)
        self.velocity_head = nn.Linear(config.d_hidden, 1)
        k = config.n_instruments
        self.programs = list(config.programs)
        if k:
            self.instrument_embed = nn.Embedding(k + 1, config.d_pitch)  # + unknown / start
            self.instrument_head = nn.Linear(config.d_hidden, k)
            self.next_instrument = nn.Embedding(k + 1, config.d_hidden)  # conditions the heads
        # feature scaling (mean, std) of log1p(delta), log1p(duration), velocity
        self.register_buffer("feat_mean", torch.tensor([0.0, 0.0, 64.0]))
        self.register_buffer("feat_std", torch.tensor([1.0, 1.0, 32.0]))
        # the onset gaps (beats) of the training notes, fitted with the scaling (snap_time,
        # gap_classes)
        self.delta_values: dict[str, list[float]] = {}

    # ---------------------------------------------------------------- scaling
    def prepare_data(self, dataset: Any) -> dict[str, Any]:
        """Fit mean/std of log1p(delta), log1p(duration) and velocity on the training notes."""
        flat = np.asarray(dataset.notes("train").flat, np.float64)
        n_fields = len(dataset.manifest["note_fields"])
        rows = flat.reshape(-1, n_fields)
        if len(rows) == 0:
            return self._data_state()
        feats = self._raw_features(torch.from_numpy(rows).float())  # (N, 3)
        self.feat_mean.copy_(feats.mean(0))
        self.feat_std.copy_(feats.std(0).clamp_min(1e-3))
        labels = np.repeat(dataset.file_labels("train"), dataset.notes("train").lengths)
        self.delta_values = fit_time_values(rows[:, FIELD["delta"]], labels)
        return self._data_state()

    def _data_state(self) -> dict[str, Any]:
        return {
            "feat_mean": self.feat_mean.tolist(),
            "feat_std": self.feat_std.tolist(),
            "delta_values": self.delta_values,
        }

    def load_data_state(self, state: dict[str, Any]) -> None:
        """A run's scaling and onset gaps; a run saved before the gaps were stored samples its
        time head unsnapped, as it did."""
        if state:
            self.feat_mean.copy_(torch.tensor(state["feat_mean"]))
            self.feat_std.copy_(torch.tensor(state["feat_std"]))
            self.delta_values = read_time_values(state)

    def snap_time(self, raw: torch.Tensor, label: int | None = None) -> torch.Tensor:
        """Unscaled CPU ``(n, 3)`` (delta, duration, velocity) with each delta moved to the
        nearest onset gap of style ``label``'s training notes (:func:`fit_time_values`)."""
        values = style_values(self.delta_values, label)
        if not values:
            return raw
        delta = torch.from_numpy(snap_to_values(raw[:, 0].numpy(), values)).to(raw.dtype)
        return torch.cat([delta[:, None], raw[:, 1:]], dim=-1)

    @staticmethod
    def _raw_features(notes: torch.Tensor) -> torch.Tensor:
        """(…, F) raw note rows → (…, 3): log1p(delta), log1p(duration), velocity."""
        c = FIELD
        return torch.stack(
            [
                torch.log1p(notes[..., c["delta"]].clamp_min(0)),
                torch.log1p(notes[..., c["duration"]].clamp_min(0)),
                notes[..., c["velocity"]],
            ],
            dim=-1,
        )

    def scale(self, notes: torch.Tensor) -> torch.Tensor:
        """Standardised (delta, duration, velocity) features ``(…, 3)`` of raw notes."""
        return (self._raw_features(notes) - self.feat_mean) / self.feat_std

    # ---------------------------------------------------------------- network
    def instrument_index(self, notes: torch.Tensor) -> torch.Tensor:
        """``(…)`` index into ``programs`` of raw note rows ``(…, F)``; K = unknown."""
        return program_indices(notes[..., FIELD["program"]], self.programs)

    def forward(
        self,
        notes: torch.Tensor,
        *,
        label: torch.Tensor | int | None = None,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        next_instrument: torch.Tensor | None = None,
        next_gap: torch.Tensor | None = None,
        next_pitch: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Head outputs for the note after each input note, and the LSTM state.

        Parameters
        ----------
        notes : (B, T, F) raw note rows (NOTE_FIELDS order); pitch -1 marks a start row
        next_instrument : (B, T) instrument index of each next note, which the pitch, time and
            velocity heads are conditioned on (models with instruments; None = unknown). The
            output then also has ``instrument`` logits and the ``hidden`` state for
            :meth:`heads`, which a sampler calls once it has drawn the instrument.
        next_gap, next_pitch : (B, T) the next note's gap bin (index into :data:`TIME_BINS`)
            and pitch, which a chained model's later heads read (``chain_heads``; training
            passes the true ones). Without them those heads read a "not drawn" row, so a
            sampler takes only the gap from this output and calls :meth:`heads` with each
            value it draws (``hidden`` is in the output).
        """
        pitch = notes[..., FIELD["pitch"]].round().long()  # (B, T)
        start = pitch == START_PITCH
        pitch = torch.where(start, torch.full_like(pitch, N_PITCHES), pitch.clamp(0, 127))
        feats = self.scale(notes).masked_fill(start[..., None], 0.0)  # (B, T, 3)
        x = self.pitch_embed(pitch) + self.time_in(feats)  # (B, T, E)
        if self.config.beat_position:
            position = beat_positions(notes[..., FIELD["onset"]])
            x = x + self.position_embed(position.masked_fill(start, POSITIONS_PER_BEAT + 1))
        if self.config.n_instruments:
            own = self.instrument_index(notes).masked_fill(start, self.config.n_instruments)
            x = x + self.instrument_embed(own)
        if self.labels is not None:
            x = x + self.labels(label, notes.shape[0], notes.device)
        h, state = self.rnn(self.drop(x), cache)  # (B, T, H)
        h = self.drop(h)
        out = self.heads(h, next_instrument, next_gap, next_pitch)
        if self.config.n_instruments:
            out["instrument"] = self.instrument_head(h)  # (B, T, K) logits
        if self.config.n_instruments or self.config.chain_heads:
            out["hidden"] = h
        return out, state

    def heads(
        self,
        h: torch.Tensor,
        next_instrument: torch.Tensor | None = None,
        gap: torch.Tensor | None = None,
        pitch: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Pitch, time and velocity outputs of LSTM states ``h`` ``(B, T, H)``, given the next
        note's instrument index ``(B, T)`` when the model has instruments, and for a chained
        model (``chain_heads``) its gap bin and pitch ``(B, T)`` as far as they are drawn."""
        k = self.config.n_instruments
        if k:
            h = h + self.next_instrument(_or_undrawn(next_instrument, h, k))
        if self.config.chain_heads:
            return self._chained_heads(h, gap, pitch)
        return {
            "pitch": self.pitch_head(h),  # (B, T, 128) logits
            # (B, T, 2, bins) logits, or (B, T, 2) standardised log1p(delta, duration)
            "time": self._time_out(self.time_head(h)),
            "velocity": self.velocity_head(h),  # (B, T, 1) standardised velocity
        }

    def _chained_heads(
        self, h: torch.Tensor, gap: torch.Tensor | None, pitch: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """The heads of p(gap) · p(pitch | gap) · p(duration, velocity | gap, pitch).

        Why: with one state for all heads a chorale voice's duration was drawn without knowing
        which voice it is or whether it starts with the chord, and the voices dropped out
        (model card, stop 28). Each later head adds a residual GELU layer over the state plus
        embeddings of the values drawn before it, so they change the distribution, not only
        shift its logits.
        """
        g = self.gap_embed(_or_undrawn(gap, h, len(TIME_BINS)))
        for_pitch = h + F.gelu(self.pitch_mix(h) + g)
        for_note = h + F.gelu(
            self.note_mix(h) + g + self.drawn_pitch(_or_undrawn(pitch, h, N_PITCHES))
        )
        return {
            "pitch": self.pitch_head(for_pitch),  # (B, T, 128) logits
            # (B, T, 2, bins): the gap's logits, the duration's (given gap and pitch)
            "time": torch.stack([self.time_head(h), self.duration_head(for_note)], dim=-2),
            "velocity": self.velocity_head(for_note),  # (B, T, 1) standardised velocity
        }

    def _time_out(self, out: torch.Tensor) -> torch.Tensor:
        if self.config.time_head == "classes":
            return out.unflatten(-1, (N_TIME, len(TIME_BINS)))
        return out

    def time_classes(self, beats: torch.Tensor) -> torch.Tensor:
        """Index into :data:`TIME_BINS` of the nearest bin (in log1p) to each of ``beats``."""
        return torch.bucketize(torch.log1p(beats.clamp_min(0)), self.time_edges)

    def gap_classes(self, label: int | None = None) -> torch.Tensor | None:
        """``(bins,)`` which onset-gap bins the style ``label`` plays (the bins of its training
        notes' onset gaps, :func:`fit_time_values`), or None when the run stored none.

        Why: the categorical head gives every bin some probability, and a gap of eight bars
        drawn once ends a piece or skips an infilled range; the corpus' own gaps (each taken
        by at least 1 training note in 500) are the rhythm vocabulary, as for the median head.
        """
        values = style_values(self.delta_values, label)
        if not values:
            return None
        allowed = torch.zeros(len(TIME_BINS), dtype=torch.bool, device=self.time_bins.device)
        allowed[self.time_classes(torch.tensor(values, device=self.time_bins.device))] = True
        return allowed

    def median_time(self, time: torch.Tensor) -> torch.Tensor:
        """CPU ``(n, 2)`` (delta, duration) in beats of the median head's standardised
        ``(n, 2)`` outputs (``time_head: median``)."""
        z = time * self.feat_std[:N_TIME] + self.feat_mean[:N_TIME]
        return torch.stack([torch.expm1(z[:, 0]).clamp_min(0), torch.expm1(z[:, 1])], -1).cpu()

    def velocity_of(
        self, velocity: torch.Tensor, noise: float = 0.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """CPU ``(n,)`` velocity from the head's standardised ``(n, 1)`` output plus ``noise``."""
        if noise > 0:
            velocity = velocity + noise * torch.randn(
                velocity.shape, generator=generator, device=velocity.device
            )
        return (velocity[:, 0] * self.feat_std[N_TIME] + self.feat_mean[N_TIME]).cpu()

    def start_rows(self, batch: int, n_fields: int, device: torch.device) -> torch.Tensor:
        """``(B, 1, F)`` start rows (raw pitch -1, zeros elsewhere)."""
        rows = torch.zeros(batch, 1, n_fields, device=device)
        rows[..., FIELD["pitch"]] = START_PITCH
        return rows

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        notes = batch["notes"].float()  # (B, L, F)
        b, length, n_fields = notes.shape
        mask = batch.get("mask")
        mask = torch.ones(b, length, dtype=torch.bool) if mask is None else mask.bool()
        inputs = torch.cat([self.start_rows(b, n_fields, notes.device), notes[:, :-1]], dim=1)
        cfg = self.config
        k = cfg.n_instruments
        target_inst = self.instrument_index(notes) if k else None  # (B, L), K = unknown
        target_pitch = notes[..., FIELD["pitch"]].round().long().clamp(0, 127)
        chain = {}
        if cfg.chain_heads:  # the later heads read the true gap and pitch (teacher forcing)
            chain = {"next_gap": self.time_classes(notes[..., FIELD["delta"]]),
                     "next_pitch": target_pitch}  # fmt: skip
        out, _ = self(inputs, label=batch.get("label"), next_instrument=target_inst, **chain)
        w = mask.flatten().float()  # (B*L,)
        denom = w.sum().clamp_min(1.0)
        ce = F.cross_entropy(out["pitch"].flatten(0, 1), target_pitch.flatten(), reduction="none")
        target = self.scale(notes)  # (B, L, 3)
        if cfg.time_head == "classes":
            beats = notes[..., [FIELD["delta"], FIELD["duration"]]]  # (B, L, 2)
            per_note = (
                F.cross_entropy(
                    out["time"].flatten(0, 2), self.time_classes(beats).flatten(), reduction="none"
                )
                .view(b * length, N_TIME)
                .mean(-1)
            )  # nats: the mean of the gap's and the duration's
        else:
            per_note = (out["time"] - target[..., :N_TIME]).abs().mean(-1).flatten()  # L1
        mse = (out["velocity"][..., 0] - target[..., N_TIME]).pow(2).flatten()
        pitch_loss, time_loss, vel_loss = ((v * w).sum() / denom for v in (ce, per_note, mse))
        total = cfg.w_pitch * pitch_loss + cfg.w_time * time_loss + cfg.w_velocity * vel_loss
        losses = {"pitch": pitch_loss, "time": time_loss, "velocity": vel_loss}
        if target_inst is not None:
            known = (target_inst < k).flatten().float() * w  # a program the run lacks: no target
            ce_inst = F.cross_entropy(
                out["instrument"].flatten(0, 1), target_inst.clamp_max(k - 1).flatten(),
                reduction="none",
            )  # fmt: skip
            losses["instrument"] = (ce_inst * known).sum() / known.sum().clamp_min(1.0)
            total = total + cfg.w_instrument * losses["instrument"]
        return {"loss": total, **losses}

    def param_groups(self) -> list[dict[str, Any]]:
        """One group, or body + one group per head with its lr scale."""
        if not self.config.separate_head_optimizers:
            return super().param_groups()
        cfg = self.config
        heads = {
            "pitch": ([self.pitch_head], cfg.lr_scale_pitch),
            "time": ([self.time_head], cfg.lr_scale_time),
            "velocity": ([self.velocity_head], cfg.lr_scale_velocity),
        }
        if cfg.chain_heads:  # a chained head's own layers train with it
            heads["pitch"][0].append(self.pitch_mix)
            heads["time"][0].extend([self.duration_head, self.note_mix])
        if cfg.n_instruments:
            heads["instrument"] = ([self.instrument_head], cfg.lr_scale_instrument)
        head_ids = {id(p) for ms, _ in heads.values() for m in ms for p in m.parameters()}
        body = [p for p in self.parameters() if id(p) not in head_ids]
        groups = [{"name": "body", "params": body, "lr_scale": 1.0}]
        for name, (modules, scale) in heads.items():
            params = [p for m in modules for p in m.parameters()]
            groups.append({"name": name, "params": params, "lr_scale": scale})
        return groups
