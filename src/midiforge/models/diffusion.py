"""A diffusion model over windows of notes: a 1-D U-Net denoiser along the note axis.

A window of L notes is a sequence of feature vectors (log-frequency, duration, delta, optionally
velocity, for a run over K >= 2 instruments K one-hot instrument channels at ±1, and with
``pitch_classes`` 12 one-hot pitch-class channels; see :mod:`midiforge.models.note_features`);
chords are notes stacked with delta 0. The denoiser ``forward(x_t, t, label)`` maps a noisy
window ``(B, F, L)`` to the schedule's target. It knows nothing of noise schedules:
:mod:`midiforge.models.diffusion_schedule` owns those, and :meth:`NoteDiffusion.loss` only
calls its ``add_noise`` and ``training_target``.

Network (bottom-up): sinusoidal time embedding (+ a label embedding, dropped to "no label" at
random for classifier-free guidance) → residual conv blocks with squeeze-and-excitation whose
kernel shrinks with depth while channels grow and the sequence halves → a bottleneck of
multi-head self-attention layers in which every note's channel vector is a token → the mirror
path up with skip connections. ``causal=True`` makes every layer see only earlier notes.

The loss is the masked MSE per channel, averaged over the continuous features with the K
instrument channels counted together as *one* feature (their mean), so adding instruments does
not drown pitch and timing in 2K−1 extra terms; the 12 pitch-class channels likewise count as
one.

With ``self_condition`` (Chen et al. 2022, "Analog Bits", §3) the denoiser also reads its own
previous estimate of the clean window, concatenated to ``x_t`` along the channels: in training
half the windows first get an estimate from a gradient-free pass of the same network (the
other half read zeros), and the sampler feeds each step the estimate of the step before. The
paper found it decisive for ±1 categorical channels such as the instrument and pitch-class
blocks, whose sign an unconditioned denoiser must rediscover from noise at every step.

With ``key_condition`` the denoiser is also told the window's diatonic scale (one of 12, named
by its major tonic: :func:`midiforge.pitches.diatonic_scale`), a second embedding added to the
time embedding. Training reads it from the (transposed) window's own notes and drops it as
often as the label; the sampler tells every window of a piece the same scale (``--key``'s, the
primer's, or one drawn), so the piece does not have to find its key inside each 64-note window
and keep it across windows, which the unconditioned model fails at (notes in their best scale:
0.69 against 0.95 for real music, docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from midiforge.errors import MidiforgeError
from midiforge.models import limits
from midiforge.models.base import MidiModel
from midiforge.models.diffusion_schedule import NoiseSchedule, ScheduleConfig
from midiforge.models.note_features import (
    ALL_STYLES,
    N_SCALES,
    NO_SCALE,
    FeatureScaler,
    Rhythm,
    check_programs,
    feature_names,
    fit_onset_grids,
    fit_pickups,
    fit_scaler,
    fit_time_values,
    read_time_values,
    style_values,
    window_scales,
)
from midiforge.schema import NO_LABEL
from midiforge.style_parts import Parts, fit_style_parts, style_parts
from midiforge.style_scale import fit_style_accidentals, style_accidentals

SE_REDUCTION = 4  # squeeze-and-excitation bottleneck ratio
MAX_PERIOD = 10_000.0  # longest period of the sinusoidal embeddings (Vaswani et al. 2017)
GROUPS = 8  # GroupNorm groups (fewer when the channels are not a multiple)
SELF_CONDITION_RATE = 0.5  # share of training windows that read an estimate (Chen et al. 2022)


@dataclass
class DiffusionConfig:
    """Constructor arguments of :class:`NoteDiffusion` (saved with every checkpoint)."""

    length: int = 64  # L, notes per window (a multiple of 2^(levels − 1))
    velocity: bool = False  # also denoise velocity (else generated notes get a fixed one)
    scaling: Literal["max", "standard"] = "max"  # feature scaling fitted on the train split
    time_coding: Literal["beats", "log"] = "log"  # duration/delta as beats or log2(1 + b/grid)
    channels: int = 64  # channels of the first level
    channel_mults: tuple[int, ...] = (1, 2, 4)  # channels per level, × channels
    kernel_sizes: tuple[int, ...] = (7, 5, 3)  # conv kernel per level (shrinks with depth)
    blocks_per_level: int = 1  # residual blocks per level on the way down
    attention_layers: int = 4  # self-attention layers in the bottleneck
    attention_heads: int = 4  # heads of each attention layer
    causal: bool = False  # every output note sees only itself and earlier notes
    time_dim: int = 128  # width of the time/label embedding
    dropout: float = 0.0  # dropout inside residual blocks and attention
    n_labels: int = 16  # style labels the embedding has room for (index n_labels = none)
    label_dropout: float = 0.1  # P(label → none) in training, for classifier-free guidance
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)  # the noise process
    programs: list[int] = field(default_factory=list)  # instruments (from the dataset); K >= 2
    # adds K one-hot channels
    pitch_classes: bool = False  # 12 one-hot pitch-class channels: the key is categorical
    self_condition: bool = False  # the denoiser also reads its previous estimate of x_0
    key_condition: bool = False  # the denoiser is told the window's diatonic scale (12 + none)

    def check(self, where: str = "") -> None:
        """Refuse values outside their ranges (see :mod:`midiforge.models.limits`)."""
        limits.check_int(where, "length", self.length, 1, limits.MAX_CONTEXT)
        limits.check_int(where, "channels", self.channels, 1, limits.MAX_WIDTH)
        levels = limits.MAX_LAYERS // 8  # each level halves the window
        limits.check_ints(where, "channel_mults", self.channel_mults, 1, 64, max_len=levels)
        limits.check_ints(where, "kernel_sizes", self.kernel_sizes, 1, limits.MAX_KERNEL,
                          max_len=levels)  # fmt: skip
        limits.check_int(where, "blocks_per_level", self.blocks_per_level, 1, limits.MAX_LAYERS)
        limits.check_int(where, "attention_layers", self.attention_layers, 0, limits.MAX_LAYERS)
        limits.check_int(where, "attention_heads", self.attention_heads, 1, limits.MAX_WIDTH)
        limits.check_int(where, "time_dim", self.time_dim, 1, limits.MAX_WIDTH)
        limits.check_dropout(where, "dropout", self.dropout)
        limits.check_labels(where, self)
        check_programs(where, self.programs)
        if not isinstance(self.schedule, ScheduleConfig):
            raise MidiforgeError(
                f"{limits.field_name(where, 'schedule')}: expected a mapping of schedule settings"
            )
        self.schedule.check(limits.field_name(where, "schedule"))


def sinusoidal(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(N, dim)`` of positions or timesteps ``(N,)``."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(MAX_PERIOD) * torch.arange(half, device=positions.device) / max(half, 1)
    )
    args = positions.float()[:, None] * freqs[None, :]  # (N, half)
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))  # (N, dim)


class Conv(nn.Conv1d):
    """A 1-D convolution with 'same' padding, or left-only padding when causal."""

    def __init__(self, c_in: int, c_out: int, kernel: int, *, causal: bool, stride: int = 1):
        super().__init__(c_in, c_out, kernel, stride=stride)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        k = self.kernel_size[0]
        pad = (k - 1, 0) if self.causal else ((k - 1) // 2, k // 2)
        if self.stride[0] == 2 and not self.causal:
            pad = ((k - 1) // 2, (k - 1) - (k - 1) // 2)  # output i centred on input 2i
        return super().forward(F.pad(x, pad))


class SqueezeExcite(nn.Module):
    """Channel gates from a summary over notes (Hu et al. 2018); a running mean when causal."""

    def __init__(self, channels: int, *, causal: bool) -> None:
        super().__init__()
        hidden = max(channels // SE_REDUCTION, 1)
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(), nn.Linear(hidden, channels))
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        if self.causal:
            count = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype)
            summary = (x.cumsum(-1) / count).transpose(1, 2)  # (B, L, C)
            return x * torch.sigmoid(self.fc(summary)).transpose(1, 2)
        gate = torch.sigmoid(self.fc(x.mean(-1)))  # (B, C)
        return x * gate[:, :, None]


class Norm(nn.GroupNorm):
    """GroupNorm over channels and notes; when causal, over each note's channels alone."""

    def __init__(self, channels: int, *, causal: bool) -> None:
        super().__init__(math.gcd(GROUPS, channels), channels)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        if not self.causal:
            return super().forward(x)
        b, c, length = x.shape  # fold the notes into the batch so no note sees another
        y = super().forward(x.transpose(1, 2).reshape(b * length, c, 1))
        return y.reshape(b, length, c).transpose(1, 2)


class ResBlock(nn.Module):
    """Norm → SiLU → conv, + time/label embedding, norm → SiLU → conv, squeeze-excite, + skip."""

    def __init__(self, c_in: int, c_out: int, kernel: int, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.norm1 = Norm(c_in, causal=cfg.causal)
        self.conv1 = Conv(c_in, c_out, kernel, causal=cfg.causal)
        self.emb = nn.Linear(cfg.time_dim, c_out)
        self.norm2 = Norm(c_out, causal=cfg.causal)
        self.drop = nn.Dropout(cfg.dropout)
        self.conv2 = Conv(c_out, c_out, kernel, causal=cfg.causal)
        self.se = SqueezeExcite(c_out, causal=cfg.causal)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, L)
        h = h + self.emb(emb)[:, :, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.se(h) + self.skip(x)


class Bottleneck(nn.Module):
    """Self-attention between notes: each position's full channel vector is one token."""

    def __init__(self, channels: int, cfg: DiffusionConfig) -> None:
        super().__init__()
        if channels % cfg.attention_heads:
            raise MidiforgeError(
                f"attention_heads: {cfg.attention_heads} does not divide the bottleneck's "
                f"{channels} channels; pick a divisor"
            )
        layer = nn.TransformerEncoderLayer(
            channels,
            cfg.attention_heads,
            dim_feedforward=2 * channels,
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, cfg.attention_layers, enable_nested_tensor=False)
        self.causal = cfg.causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        length = x.shape[-1]
        tokens = x.transpose(1, 2) + sinusoidal(torch.arange(length, device=x.device), x.shape[1])
        mask = nn.Transformer.generate_square_subsequent_mask(length) if self.causal else None
        out = self.layers(tokens, mask=mask, is_causal=self.causal)  # (B, L, C)
        return out.transpose(1, 2)


class UNet1D(nn.Module):
    """The denoiser ``(x_t (B, F, L), t (B,), label (B,)) → (B, F, L)``."""

    def __init__(self, n_features: int, cfg: DiffusionConfig) -> None:
        super().__init__()
        levels = len(cfg.channel_mults)
        if len(cfg.kernel_sizes) != levels:
            raise MidiforgeError(
                f"kernel_sizes: {len(cfg.kernel_sizes)} values for {levels} levels "
                "(channel_mults); give one kernel size per level"
            )
        if cfg.length % 2 ** (levels - 1):
            raise MidiforgeError(
                f"length: {cfg.length} notes cannot be halved {levels - 1} times; use a "
                f"multiple of {2 ** (levels - 1)}"
            )
        self.cfg = cfg
        widths = [cfg.channels * m for m in cfg.channel_mults]
        self.time_mlp = nn.Sequential(
            nn.Linear(cfg.time_dim, cfg.time_dim), nn.SiLU(), nn.Linear(cfg.time_dim, cfg.time_dim)
        )
        self.label_emb = nn.Embedding(cfg.n_labels + 1, cfg.time_dim)
        if cfg.key_condition:  # index NO_SCALE = not told
            self.key_emb = nn.Embedding(N_SCALES + 1, cfg.time_dim)
        inputs = 2 * n_features if cfg.self_condition else n_features  # x_t, then x̂_0
        self.stem = Conv(inputs, widths[0], cfg.kernel_sizes[0], causal=cfg.causal)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        c = widths[0]
        for i, (w, k) in enumerate(zip(widths, cfg.kernel_sizes)):
            blocks = nn.ModuleList()
            for _ in range(cfg.blocks_per_level):
                blocks.append(ResBlock(c, w, k, cfg))
                c = w
            self.down.append(blocks)
            last = i == levels - 1
            self.downsample.append(
                nn.Identity() if last else Conv(c, c, k, causal=cfg.causal, stride=2)
            )
        self.mid1 = ResBlock(c, c, cfg.kernel_sizes[-1], cfg)
        self.attention = Bottleneck(c, cfg)
        self.mid2 = ResBlock(c, c, cfg.kernel_sizes[-1], cfg)
        self.up = nn.ModuleList()
        for w, k in zip(reversed(widths), reversed(cfg.kernel_sizes)):
            self.up.append(ResBlock(c + w, w, k, cfg))
            c = w
        self.out_norm = Norm(c, causal=cfg.causal)
        self.out = nn.Conv1d(c, n_features, 1)
        nn.init.zeros_(self.out.weight)  # start by predicting 0: a stable first step
        nn.init.zeros_(self.out.bias)

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        up = x.repeat_interleave(2, dim=-1)  # (B, C, 2L)
        if self.cfg.causal:  # position 2i would see 2i+1 through note i: shift right by one
            up = F.pad(up, (1, 0))[..., :-1]
        return up

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        label: torch.Tensor | None = None,
        estimate: torch.Tensor | None = None,
        key: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, _, length = x.shape  # (B, F, L)
        if self.cfg.self_condition:  # no estimate yet reads as zeros, as in training
            x = torch.cat([x, torch.zeros_like(x) if estimate is None else estimate], dim=1)
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)
        if label is None:
            label = torch.full((b,), NO_LABEL, dtype=torch.long, device=x.device)
        label = torch.as_tensor(label, device=x.device).long().reshape(-1).expand(b)
        label = torch.where(label < 0, torch.full_like(label, self.cfg.n_labels), label)
        emb = self.time_mlp(sinusoidal(t, self.cfg.time_dim)) + self.label_emb(label)  # (B, E)
        if self.cfg.key_condition:
            key = torch.full((b,), NO_SCALE) if key is None else torch.as_tensor(key)
            emb = emb + self.key_emb(key.to(x.device).long().reshape(-1).expand(b))
        h = self.stem(x)  # (B, C0, L)
        h = h + sinusoidal(torch.arange(length, device=x.device), h.shape[1]).T[None]
        skips = []
        for blocks, down in zip(self.down, self.downsample):
            for block in blocks:
                h = block(h, emb)
            skips.append(h)
            h = down(h)  # (B, C_i, L / 2^i)
        h = self.mid2(self.attention(self.mid1(h, emb)), emb)
        for i, block in enumerate(self.up):
            skip = skips.pop()
            if i > 0:
                h = self._upsample(h)
            h = block(torch.cat([h, skip], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))  # (B, F, L)


class NoteDiffusion(MidiModel):
    """The ``diffusion`` family: a :class:`UNet1D` plus the schedule it was trained with."""

    name = "diffusion"
    encoding = "notes"
    sampler = "diffusion"
    config_class = DiffusionConfig

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__(config)
        if not 0 <= config.label_dropout <= 1:
            raise MidiforgeError(f"label_dropout: {config.label_dropout} must lie in 0..1")
        self.n_features = len(feature_names(config.velocity, config.programs, config.pitch_classes))
        self.unet = UNet1D(self.n_features, config)
        self.schedule = NoiseSchedule(config.schedule)
        self.scaler = FeatureScaler(
            method=config.scaling,
            velocity=config.velocity,
            time_coding=config.time_coding,
            programs=list(config.programs),
            pitch_classes=config.pitch_classes,
        )
        self.label_names: list[str] = []
        # the training notes' onset gaps and durations (beats) and onset grids, per style:
        # decoding puts the notes on them (rhythm)
        self.delta_values: dict[str, list[float]] = {}
        self.duration_values: dict[str, list[float]] = {}
        self.onset_grids: dict[str, float] = {}
        # each style's band and the parts of it that play one line (style_parts)
        self.style_parts: dict[str, dict[str, Any]] = {}
        # each style's pieces by how many classes outside their scale they use (style_scale)
        self.style_accidentals: dict[str, list[int]] = {}
        # where in its bar each style's training pieces begin (note_features.pickups)
        self.pickups: dict[str, list[list[float]]] = {}

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        label: torch.Tensor | None = None,
        estimate: torch.Tensor | None = None,
        key: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The denoiser's output for noisy features ``x`` ``(B, F, L)`` at timesteps ``t``;
        ``estimate`` ``(B, F, L)`` is the previous x̂_0 of a self-conditioned model (ignored
        otherwise; None reads as zeros); ``key`` ``(B,)`` the diatonic scale each window is in
        (:func:`~midiforge.models.note_features.window_scales`) for a ``key_condition`` model
        (ignored otherwise; None or ``NO_SCALE``: not told)."""
        return self.unet(x, t, label, estimate, key)

    # ---- data state ------------------------------------------------------------------------

    def prepare_data(self, dataset: Any) -> dict[str, Any]:
        """Fit the feature scaling on the training notes; remember the label names."""
        fields = dataset.manifest.get("note_fields", [])
        self.scaler = fit_scaler(
            dataset.notes("train").flat,
            fields,
            method=self.config.scaling,
            velocity=self.config.velocity,
            time_coding=self.config.time_coding,
            programs=self.config.programs,
            pitch_classes=self.config.pitch_classes,
        )
        self.label_names = list(dataset.labels)
        fields = list(fields)
        if "delta" in fields and len(dataset.notes("train").flat):
            rows = np.asarray(dataset.notes("train").flat).reshape(-1, len(fields))
            labels = np.repeat(dataset.file_labels("train"), dataset.notes("train").lengths)
            self.delta_values = fit_time_values(rows[:, fields.index("delta")], labels)
            self.duration_values = fit_time_values(rows[:, fields.index("duration")], labels)
            self.onset_grids = fit_onset_grids(rows[:, fields.index("onset")], labels)
        if "program" in fields and "onset" in fields and "duration" in fields:
            train = dataset.notes("train")
            pieces = [train[i] for i in range(len(train))]  # views into the memory map
            styles = [str(i) if i >= 0 else None for i in dataset.file_labels("train").tolist()]
            self.style_parts = fit_style_parts(pieces, styles, ALL_STYLES, fields)
            self.style_accidentals = fit_style_accidentals(pieces, styles, ALL_STYLES, fields)
            onset = fields.index("onset")
            firsts = [float(p[:, onset].min()) if len(p) else 0.0 for p in pieces]
            self.pickups = fit_pickups(np.array(firsts), dataset.file_labels("train"))
        if len(self.label_names) > self.config.n_labels:
            raise MidiforgeError(
                f"n_labels: the dataset has {len(self.label_names)} labels but the model has "
                f"room for {self.config.n_labels}; set n_labels={len(self.label_names)}"
            )
        return {
            "features": self.scaler.to_dict(),
            "labels": self.label_names,
            "delta_values": self.delta_values,
            "duration_values": self.duration_values,
            "onset_grids": self.onset_grids,
            "style_parts": self.style_parts,
            "style_accidentals": self.style_accidentals,
            "pickups": self.pickups,
        }

    def load_data_state(self, state: dict[str, Any]) -> None:
        if "features" not in state:
            raise MidiforgeError(
                "data_state.json has no 'features' entry: this run was not trained by the "
                "diffusion model of this version; retrain it"
            )
        scaler = FeatureScaler.from_dict(state["features"])
        if len(scaler.names) != self.n_features:
            raise MidiforgeError(
                f"data_state.json: the features {list(scaler.names)} do not match the model's "
                f"{self.n_features} channels (programs {self.config.programs}); the run is "
                "inconsistent, retrain it"
            )
        self.scaler = scaler
        self.label_names = list(state.get("labels", []))
        self.delta_values = read_time_values(state)
        self.duration_values = read_time_values(state, "duration_values")
        self.onset_grids = {str(k): float(v) for k, v in state.get("onset_grids", {}).items()}
        self.style_parts = dict(state.get("style_parts", {}))
        self.style_accidentals = {
            str(k): [int(c) for c in v] for k, v in state.get("style_accidentals", {}).items()
        }
        self.pickups = {
            str(k): [[float(b), int(c)] for b, c in v] for k, v in state.get("pickups", {}).items()
        }

    def rhythm(self, label: int | None) -> Rhythm:
        """The time values the decoder puts style ``label``'s notes on (the whole corpus' for
        None or a style without its own; a run saved before one of them was stored leaves
        that one on the 1/12-beat grid)."""
        grids = self.onset_grids
        return Rhythm(
            gaps=tuple(style_values(self.delta_values, label)),
            durations=tuple(style_values(self.duration_values, label)),
            grid=grids.get(str(label), grids.get(ALL_STYLES)),
        )

    def parts(self, label: int | None) -> Parts:
        """Style ``label``'s band and lines (:mod:`midiforge.style_parts`; none for a
        run saved before they were stored)."""
        style = None if label is None or label < 0 else str(label)
        return style_parts(self.style_parts, style, ALL_STYLES)

    def pickup_table(self, label: int | None) -> list[list[float]]:
        """Where in its bar style ``label``'s training pieces begin, ``[[beats, pieces], ...]``
        (:func:`~midiforge.models.note_features.pickups`; the corpus' for None or a style
        without its own; empty for a run saved before the table: every piece on beat 0)."""
        return list(self.pickups.get(str(label), self.pickups.get(ALL_STYLES, [])))

    def accidentals(self, label: int | None) -> list[int]:
        """Style ``label``'s training pieces by how many classes outside their scale they use
        (:mod:`midiforge.style_scale`; empty for a run saved before the table)."""
        style = None if label is None or label < 0 else str(label)
        return style_accidentals(self.style_accidentals, style, ALL_STYLES)

    # ---- training ----------------------------------------------------------------------------

    def encode(self, notes: torch.Tensor) -> torch.Tensor:
        """Scaled features ``(B, F, L)`` of raw note windows ``(B, L, n_fields)``."""
        return self.scaler.encode(notes).transpose(1, 2)

    def loss(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Masked mean squared error between the output and the target (DDPM eq. 14)."""
        x0 = self.encode(batch["notes"].float())  # (B, F, L)
        b, _, length = x0.shape
        if length != self.config.length:
            raise MidiforgeError(
                f"the batch has windows of {length} notes but the model's length is "
                f"{self.config.length}; set the train window and the model length equal"
            )
        mask = batch.get("mask")
        mask = torch.ones(b, length, dtype=torch.bool) if mask is None else mask.bool()
        x0 = torch.where(mask[:, None, :], x0, torch.zeros_like(x0))  # padding → 0
        label = batch.get("label")
        label = torch.full((b,), NO_LABEL) if label is None else label.long().reshape(b)
        label = label.to(x0.device)
        label = self._dropped(label, NO_LABEL)
        key = self.window_keys(batch["notes"], mask)
        key = None if key is None else self._dropped(key, NO_SCALE)  # as often as the label
        t = torch.randint(0, self.schedule.num_train_timesteps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        x_t = self.schedule.add_noise(x0, noise, t)  # eq. 4
        target = self.schedule.training_target(x0, noise, t)
        estimate = self._estimate(x_t, t, label, mask, key) if self.config.self_condition else None
        err = (self.unet(x_t, t, label, estimate, key) - target).pow(2)  # (B, F, L)
        weights = mask[:, None, :].to(err.dtype).expand_as(err)
        per_feature = (err * weights).sum(dim=(0, 2)) / weights[:, 0].sum().clamp_min(1.0)
        s = self.scaler
        terms = list(per_feature[: len(s.continuous)])
        out: dict[str, torch.Tensor] = {}
        for name, value in zip(s.continuous, per_feature):
            out[f"mse_{name}"] = value.detach()
        # each one-hot block weighs as one feature
        blocks = (("instrument", s.instrument_slice), ("pitch_class", s.pitch_class_slice))
        for name, block in blocks:
            if block.stop > block.start:
                terms.append(per_feature[block].mean())
                out[f"mse_{name}"] = terms[-1].detach()
        return {"loss": torch.stack(terms).mean(), **out}

    def _dropped(self, values: torch.Tensor, none: int) -> torch.Tensor:
        """``values`` ``(B,)`` with a random ``label_dropout`` of them set to ``none`` in
        training (classifier-free guidance learns the output told nothing); as they are in
        evaluation."""
        if not self.training or self.config.label_dropout <= 0:
            return values
        drop = torch.rand(values.shape[0], device=values.device) < self.config.label_dropout
        return torch.where(drop, torch.full_like(values, none), values)

    def window_keys(self, notes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """``(B,)``: the diatonic scale of each window of raw rows ``(B, L, n_fields)`` that a
        ``key_condition`` model is told in training and scoring; None for other models."""
        if not self.config.key_condition:
            return None
        return window_scales(notes.float(), mask).to(mask.device)

    def estimate(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        label: torch.Tensor | None,
        mask: torch.Tensor,
        key: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The gradient-free x̂_0 ``(B, F, L)`` of a pass that reads no estimate: what a
        self-conditioned model reads on its second pass. Padding (``mask`` False) reads zeros,
        as it does in ``x_0``."""
        with torch.no_grad():
            first = self.unet(x_t, t, label, None, key)  # no estimate: reads zeros
            estimate, _ = self.schedule.split_prediction(first, t, x_t)
        return torch.where(mask[:, None, :], estimate, torch.zeros_like(estimate))

    def _estimate(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        label: torch.Tensor,
        mask: torch.Tensor,
        key: torch.Tensor | None,
    ) -> torch.Tensor:
        """The estimate the loss's pass reads: :meth:`estimate` for a random
        ``SELF_CONDITION_RATE`` of the windows in training (zeros for the rest), for every
        window in evaluation, which is the path the sampler takes after its first step."""
        if self.training:
            chosen = torch.rand(x_t.shape[0], device=x_t.device) < SELF_CONDITION_RATE
            mask = mask & chosen[:, None]
        return self.estimate(x_t, t, label, mask, key)
