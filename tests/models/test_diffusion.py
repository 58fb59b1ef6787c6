"""The diffusion family: noise-schedule math with known answers, features, U-Net, loss.

The schedule tests use a denoiser that knows the answer (the data is one point, so the exact
ε is computable): every sampler must then land on that point, which checks each formula.
The training test runs real optimizer steps on real Nottingham windows.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from symusic import Score

from midiforge.data import encode
from midiforge.errors import MidiforgeError
from midiforge.models import registry
from midiforge.models.diffusion import NoteDiffusion
from midiforge.models.diffusion_schedule import (
    DDIMScheduler,
    DDPMScheduler,
    NoiseSchedule,
    ScheduleConfig,
    make_betas,
)
from midiforge.models.note_features import (
    BAR_BEATS,
    TIME_GRID_BEATS,
    Rhythm,
    fit_onset_grids,
    fit_pickups,
    fit_scaler,
    fit_time_values,
)
from midiforge.schema import NOTE_FIELDS as RAW_FIELDS

from ..tiny_diffusion import fit_batch

TINY = {  # a toy U-Net: two levels, four attention layers of width 32
    "length": 32,
    "channels": 16,
    "channel_mults": (1, 2),
    "kernel_sizes": (5, 3),
    "attention_heads": 2,
    "time_dim": 32,
    "n_labels": 2,
}
BATCH = 16  # windows in the training-step test
TUNE_PREFIXES = ("ashover", "jigs")  # two real Nottingham sub-collections, used as two labels


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Toy models run fastest on one thread, and the test machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def nottingham_notes(datasets: Path, per_prefix: int = 4) -> tuple[list[np.ndarray], list[int]]:
    """Raw note rows of a few real Nottingham tunes, and a label per tune (its collection)."""
    notes, labels = [], []
    for label, prefix in enumerate(TUNE_PREFIXES):
        files = sorted((datasets / "nottingham").glob(f"{prefix}*.mid"))[:per_prefix]
        for path in files:
            notes.append(encode.notes_from_score(Score(str(path))))
            labels.append(label)
    return notes, labels


def note_windows(
    notes: list[np.ndarray], labels: list[int], length: int
) -> dict[str, torch.Tensor]:
    """Every whole window of ``length`` notes of each tune, as one batch."""
    rows, tags = [], []
    for piece, label in zip(notes, labels):
        for start in range(0, len(piece) - length + 1, length):
            rows.append(piece[start : start + length])
            tags.append(label)
    return {
        "notes": torch.from_numpy(np.stack(rows)),  # (B, L, n_fields)
        "mask": torch.ones(len(rows), length, dtype=torch.bool),
        "label": torch.tensor(tags),
    }


def tiny_model(notes: list[np.ndarray], **overrides: object) -> NoteDiffusion:
    torch.manual_seed(0)
    model = registry.build("diffusion", {**TINY, **overrides})
    assert isinstance(model, NoteDiffusion)
    state = {
        "features": fit_scaler(np.concatenate(notes), encode.NOTE_FIELDS).to_dict(),
        "labels": list(TUNE_PREFIXES),
    }
    model.load_data_state(state)
    return model


# ---- schedule ----------------------------------------------------------------------------------


def test_betas_match_their_definitions():
    linear = make_betas(ScheduleConfig(beta_schedule="linear", num_train_timesteps=1000))
    assert linear[0] == pytest.approx(1e-4) and linear[-1] == pytest.approx(0.02)
    cosine = make_betas(ScheduleConfig(beta_schedule="cosine", num_train_timesteps=1000))
    abar = np.cumprod(1 - cosine)
    s = 0.008  # ᾱ(t) = f(t)/f(0) with f(t) = cos²((t/T + s)/(1 + s) · π/2)
    f = lambda t: math.cos((t / 1000 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert abar[499] == pytest.approx(f(500) / f(0), rel=1e-6)
    assert np.all(np.diff(abar) < 0) and abar[-1] < 1e-4


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_target_and_prediction_invert_each_other(prediction):
    sched = NoiseSchedule(ScheduleConfig(prediction=prediction, clip_sample=0.0))
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 3, 8, generator=g) * 2 - 1
    noise = torch.randn(4, 3, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    x_t = sched.add_noise(x0, noise, t)
    abar = sched.alphas_cumprod[500]
    assert torch.allclose(x_t[2], abar.sqrt() * x0[2] + (1 - abar).sqrt() * noise[2])
    x0_hat, eps_hat = sched.split_prediction(sched.training_target(x0, noise, t), t, x_t)
    assert torch.allclose(x0_hat[:3], x0[:3], atol=1e-4)  # t = 999 is nearly pure noise
    assert torch.allclose(eps_hat, noise, atol=1e-4)


def _oracle(sched: NoiseSchedule, point: torch.Tensor):
    """The exact denoiser for data that is always ``point``."""

    def output(x_t: torch.Tensor, t: int) -> torch.Tensor:
        abar = sched.alphas_cumprod[t]
        eps = (x_t - abar.sqrt() * point) / (1 - abar).sqrt()
        if sched.config.prediction == "epsilon":
            return eps
        return abar.sqrt() * eps - (1 - abar).sqrt() * point

    return output


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("kind", ["ddpm", "ddim", "ddim-eta"])
def test_samplers_reach_the_data_with_an_exact_denoiser(kind, prediction):
    config = ScheduleConfig(num_train_timesteps=200, prediction=prediction)
    sched = DDPMScheduler(config) if kind == "ddpm" else DDIMScheduler(config)
    if kind == "ddpm":
        sched.set_timesteps()
    else:
        sched.set_timesteps(20)
    g = torch.Generator().manual_seed(0)
    point = torch.rand(2, 3, 16, generator=g) * 2 - 1
    x = torch.randn(2, 3, 16, generator=g)
    oracle = _oracle(sched, point)
    for t in sched.timesteps.tolist():
        kwargs = {"eta": 1.0} if kind == "ddim-eta" else {}
        x, x0 = sched.step(oracle(x, t), t, x, generator=g, **kwargs)
        assert torch.allclose(x0, point, atol=1e-3)
    assert torch.allclose(x, point, atol=1e-4)


def test_scheduler_errors_name_the_fix():
    with pytest.raises(MidiforgeError, match="set_timesteps"):
        DDIMScheduler(ScheduleConfig()).step(torch.zeros(1, 3, 4), 999, torch.zeros(1, 3, 4))
    with pytest.raises(MidiforgeError, match="DDIM"):
        DDPMScheduler(ScheduleConfig()).set_timesteps(50)
    with pytest.raises(MidiforgeError, match="beta_schedule"):
        make_betas(ScheduleConfig(beta_schedule="quadratic"))  # type: ignore[arg-type]


def test_ddim_timesteps_span_noise_to_clean():
    sched = DDIMScheduler(ScheduleConfig(num_train_timesteps=1000))
    sched.set_timesteps(50)
    steps = sched.timesteps.tolist()
    assert len(steps) == 50 and steps[0] == 999 and steps[-1] == 0
    assert all(a > b for a, b in itertools.pairwise(steps))


# ---- features ----------------------------------------------------------------------------------


def test_note_fields_match_the_dataset_contract():
    assert tuple(encode.NOTE_FIELDS) == RAW_FIELDS


def test_features_round_trip_real_notes(datasets):
    notes, _ = nottingham_notes(datasets, per_prefix=2)
    for method, coding in (("max", "log"), ("max", "beats"), ("standard", "log")):
        scaler = fit_scaler(
            np.concatenate(notes), encode.NOTE_FIELDS, method=method, time_coding=coding
        )
        piece = notes[0][:48]
        x = scaler.encode(torch.from_numpy(piece)).numpy()  # (48, 3)
        if method == "max":
            assert x.min() >= -1 - 1e-6 and x.max() <= 1 + 1e-6
        back = scaler.decode(x)
        assert np.array_equal(back[:, 0], piece[:, 0])  # pitch: exact
        for name in ("duration", "delta"):
            col = RAW_FIELDS.index(name)
            err = np.abs(back[1:, col] - piece[1:, col]).max()
            assert err <= TIME_GRID_BEATS / 2 + 1e-6, (name, err)
        onset = RAW_FIELDS.index("onset")
        assert np.allclose(back[:, onset], piece[:, onset] - piece[0, onset], atol=0.5)


def test_decoded_gaps_are_the_styles_own(datasets):
    notes, labels = nottingham_notes(datasets, per_prefix=2)
    delta = RAW_FIELDS.index("delta")
    gaps = np.concatenate([piece[:, delta] for piece in notes])
    per_note = np.concatenate([[label] * len(piece) for piece, label in zip(notes, labels)])
    values = fit_time_values(gaps, per_note)
    assert set(values) == {"all", *(str(label) for label in set(labels))}
    common = np.rint(np.array(values["all"]) * 12)
    assert 0 in common and 6 in common  # chords and eighths: what these tunes are made of
    steps = np.rint(gaps * 12)
    assert all((steps == v).mean() >= 0.002 for v in common)  # each kept gap is common
    scaler = fit_scaler(np.concatenate(notes), encode.NOTE_FIELDS)
    x = scaler.encode(torch.from_numpy(notes[0][:64])).numpy()
    x[:, 2] += np.random.default_rng(0).normal(0, 0.05, len(x))  # gaps between the values
    snapped = np.rint(scaler.decode(x, rhythm=Rhythm(gaps=tuple(values["all"])))[1:, delta] * 12)
    assert np.isin(snapped, common).all()
    assert not np.isin(np.rint(scaler.decode(x)[1:, delta] * 12), common).all()  # 1/12 grid


def test_the_tunes_pickups_are_where_in_their_bar_they_begin(datasets):
    """Real tunes begin on a pickup (their first note before the bar line) more often than
    not; the table counts where in the bar each begins, silent whole bars left out."""
    notes, labels = nottingham_notes(datasets, per_prefix=12)
    firsts = np.array([piece[:, RAW_FIELDS.index("onset")].min() for piece in notes])
    table = fit_pickups(firsts, np.array(labels))
    assert sum(c for _, c in table["all"]) == len(notes)
    for key in ("0", "1"):
        assert sum(c for _, c in table[key]) == labels.count(int(key))
    assert all(0 <= beats < BAR_BEATS for beats, _ in table["all"])
    on_beat = sum(c for beats, c in table["all"] if beats == 0.0)
    assert on_beat < 0.5 * len(notes)  # most tunes open with a pickup
    expected = {round(float(f % BAR_BEATS) * 12) / 12 for f in firsts}
    assert {beats for beats, _ in table["all"]} == expected
    late = fit_pickups(firsts + 2 * BAR_BEATS, np.array(labels))  # two silent bars more
    assert late == table


def test_decoded_notes_take_the_styles_durations_and_onset_grid(datasets):
    notes, labels = nottingham_notes(datasets, per_prefix=2)
    col = {name: RAW_FIELDS.index(name) for name in ("onset", "duration", "delta")}
    rows = np.concatenate(notes)
    per_note = np.concatenate([[label] * len(piece) for piece, label in zip(notes, labels)])
    grids = fit_onset_grids(rows[:, col["onset"]], per_note)
    assert grids[str(TUNE_PREFIXES.index("jigs"))] == 0.5  # 6/8 jigs: every onset an eighth
    for key, grid in grids.items():
        which = np.ones(len(rows), bool) if key == "all" else per_note == int(key)
        onsets = rows[which, col["onset"]]
        for step, holds in ((grid, True), (1.0, False)):  # a quarter grid would not hold them
            on = np.isclose(onsets / step, np.rint(onsets / step), atol=1e-3)
            assert (on.mean() >= 0.85) == holds, (key, step, on.mean())
    durations = fit_time_values(rows[:, col["duration"]], per_note)["all"]
    gaps = fit_time_values(rows[:, col["delta"]], per_note)["all"]
    scaler = fit_scaler(rows, encode.NOTE_FIELDS)
    x = scaler.encode(torch.from_numpy(notes[0][:64])).numpy()
    noise = np.random.default_rng(0).normal(0, 0.08, (len(x), 2))
    x[:, 1:3] += noise  # durations and gaps between the values
    rhythm = Rhythm(gaps=tuple(gaps), durations=tuple(durations), grid=grids["all"])
    for start in (None, 2.3):  # a new piece; one continued from an onset off the grid
        out = scaler.decode(x, rhythm=rhythm, start=start)
        onset = out[:, col["onset"]] / grids["all"]
        assert np.allclose(onset, np.rint(onset), atol=1e-4)
        assert np.all(np.diff(out[:, col["onset"]]) >= 0)  # still in order
        steps = np.diff(out[:, col["onset"]], prepend=0.0 if start is None else start)
        assert np.allclose(out[:, col["delta"]], steps, atol=1e-4)  # deltas agree with onsets
        assert np.isin(
            np.rint(out[:, col["duration"]] * 12), np.rint(np.array(durations) * 12)
        ).all()
    plain = scaler.decode(x) / 1  # the 1/12-beat grid alone leaves values between them
    assert not np.isin(
        np.rint(plain[:, col["duration"]] * 12), np.rint(np.array(durations) * 12)
    ).all()
    assert not np.allclose(
        plain[:, col["onset"]] / grids["all"], np.rint(plain[:, col["onset"]] / grids["all"])
    )


def test_features_need_fitting():
    model = registry.build("diffusion", TINY)
    with pytest.raises(MidiforgeError, match="prepare_data"):
        model.encode(torch.zeros(1, 32, len(RAW_FIELDS)))


# ---- network -----------------------------------------------------------------------------------


def test_unet_shapes_and_config_errors():
    model = registry.build("diffusion", TINY)
    x = torch.randn(3, 3, 32)  # (B, F, L)
    assert model(x, torch.tensor([0, 5, 99]), torch.tensor([0, 1, -1])).shape == (3, 3, 32)
    with pytest.raises(MidiforgeError, match="length"):
        registry.build("diffusion", {**TINY, "length": 31})
    with pytest.raises(MidiforgeError, match="kernel_sizes"):
        registry.build("diffusion", {**TINY, "kernel_sizes": (3,)})
    velocity = registry.build("diffusion", {**TINY, "velocity": True})
    assert velocity(torch.randn(1, 4, 32), torch.tensor([3])).shape == (1, 4, 32)


def test_causal_unet_sees_only_earlier_notes():
    torch.manual_seed(0)
    model = registry.build("diffusion", {**TINY, "causal": True})
    torch.nn.init.normal_(model.unet.out.weight)  # the zero-initialized head hides everything
    x = torch.randn(1, 3, 32, requires_grad=True)
    model(x, torch.tensor([10]))[0, :, 13].sum().backward()
    influence = x.grad[0].abs().sum(0)  # (L,)
    assert influence[14:].sum() == 0 and influence[:14].sum() > 0
    open_model = registry.build("diffusion", TINY)
    torch.nn.init.normal_(open_model.unet.out.weight)
    y = torch.randn(1, 3, 32, requires_grad=True)
    open_model(y, torch.tensor([10]))[0, :, 13].sum().backward()
    assert y.grad[0, :, 14:].abs().sum() > 0


# ---- training ----------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
def test_optimizer_steps_lower_the_loss_on_real_windows(datasets, prediction):
    notes, labels = nottingham_notes(datasets, per_prefix=2)
    model = tiny_model(notes, schedule={"prediction": prediction, "num_train_timesteps": 100})
    batch = note_windows(notes, labels, TINY["length"])
    batch = {key: value[:BATCH] for key, value in batch.items()}
    assert batch["notes"].shape[0] == BATCH

    before, after, out = fit_batch(model, batch)
    assert set(out) == {"loss", "mse_log_frequency", "mse_duration", "mse_delta"}
    assert after < 0.9 * before, (before, after)


def test_loss_rejects_a_window_of_another_length(datasets):
    notes, labels = nottingham_notes(datasets, per_prefix=1)
    model = tiny_model(notes)
    with pytest.raises(MidiforgeError, match="length"):
        model.loss(note_windows(notes, labels, 16))
