"""Pitch classes as categorical diffusion channels, on real Nottingham tunes.

With ``pitch_classes`` the 12 ±1 channels choose a note's class and the log-frequency channel
only its register, so an error in log-frequency that would round to a wrong semitone leaves the
pitch right; the key projection sets both; runs saved before the option decode as before.
"""

from __future__ import annotations

import numpy as np
import torch

from midiforge.data import encode
from midiforge.models import registry
from midiforge.models.note_features import FeatureScaler, fit_scaler, pitch_in_class
from midiforge.sampling.musical import Musical
from midiforge.sampling.note_rules import DiffusionRules
from midiforge.schema import FIELD

from ..tiny_diffusion import TINY, fit_batch, tunes, window_batch

SEMITONE = 1 / 12  # log2-frequency of one semitone


def _semitones(scaler: FeatureScaler, k: float) -> float:
    """``k`` semitones of log-frequency in the scaled units of channel 0."""
    return k * SEMITONE / scaler.scale[0] * (2 if scaler.method == "max" else 1)


def test_the_class_channels_decide_the_class_and_log_frequency_the_register(datasets):
    notes = np.concatenate(tunes(datasets))
    scaler = fit_scaler(notes, encode.NOTE_FIELDS, pitch_classes=True)
    assert scaler.names[-12:] == tuple(f"pitch_class_{c}" for c in range(12))
    x = scaler.encode(torch.from_numpy(notes)).numpy()
    block = x[:, scaler.pitch_class_slice]
    assert set(np.unique(block).tolist()) == {-1.0, 1.0}
    assert ((block == 1).sum(1) == 1).all()  # one class on per note
    pitch = notes[:, FIELD["pitch"]].astype(int)
    assert np.array_equal(scaler.decode(x)[:, FIELD["pitch"]], pitch)
    off = x.copy()
    off[:, 0] += _semitones(scaler, 0.45)  # nearly half a semitone sharp: still the same notes
    assert np.array_equal(scaler.decode(off)[:, FIELD["pitch"]], pitch)
    off[:, 0] += _semitones(scaler, 3.0)  # 3.45 semitones sharp: a wrong note by frequency ...
    plain = fit_scaler(notes, encode.NOTE_FIELDS)
    plain_x = plain.encode(torch.from_numpy(notes)).numpy()
    plain_x[:, 0] += _semitones(plain, 3.45)
    assert (plain.decode(plain_x)[:, FIELD["pitch"]] != pitch).mean() > 0.9
    assert np.array_equal(scaler.decode(off)[:, FIELD["pitch"]], pitch)  # ... the class holds
    moved = x.copy()  # a different class channel on: that class, in the same register
    moved[:, scaler.pitch_class_slice] = -1
    moved[:, scaler.pitch_class_slice.start + 2] = 1  # D
    got = scaler.decode(moved)[:, FIELD["pitch"]].astype(int)
    assert (got % 12 == 2).all() and (np.abs(got - pitch) <= 6).mean() > 0.9
    assert got.min() >= pitch.min() and got.max() <= pitch.max()  # within the training range


def test_pitch_in_class_keeps_the_training_range():
    got = pitch_in_class(np.array([60.4, 20.0, 110.0, 66.0]), np.array([7, 0, 11, 6]), 36, 96)
    assert got.tolist() == [55, 36, 95, 66]


def test_saved_scalings_keep_the_option_and_older_ones_load_without_it(datasets):
    notes = np.concatenate(tunes(datasets, 2))
    scaler = fit_scaler(notes, encode.NOTE_FIELDS, pitch_classes=True)
    again = FeatureScaler.from_dict(scaler.to_dict())
    assert again.pitch_classes and again.names == scaler.names
    old = scaler.to_dict()
    del old["pitch_classes"]
    assert not FeatureScaler.from_dict(old).pitch_classes


def test_a_model_with_pitch_classes_trains_them_as_one_loss_term(datasets):
    pieces = tunes(datasets)
    torch.manual_seed(0)
    model = registry.build("diffusion", {**TINY, "pitch_classes": True})
    scaler = fit_scaler(np.concatenate(pieces), encode.NOTE_FIELDS, pitch_classes=True)
    model.load_data_state({"features": scaler.to_dict(), "labels": ["a", "b"]})
    assert model.n_features == 3 + 12
    batch = window_batch(pieces, 32)

    before, after, out = fit_batch(model, batch, steps=30)
    assert set(out) == {"loss", "mse_log_frequency", "mse_duration", "mse_delta",
                        "mse_pitch_class"}  # fmt: skip
    terms = [out[k] for k in out if k != "loss"]
    assert torch.isclose(out["loss"], torch.stack(terms).mean())  # 12 channels, one term
    assert after < 0.9 * before, (before, after)


def test_the_key_projection_moves_the_decoded_pitch_and_sets_its_class(datasets):
    notes = np.concatenate(tunes(datasets))
    scaler = fit_scaler(notes, encode.NOTE_FIELDS, pitch_classes=True)
    musical = Musical(key="F# dorian", range="C4-C5")
    rules = DiffusionRules(musical, scaler)
    x = torch.randn(3, len(scaler.names), 32, generator=torch.Generator().manual_seed(0))
    projected = rules.project(x)
    assert torch.equal(projected[:, 1:3], x[:, 1:3])  # timing untouched
    allowed = set(np.flatnonzero(musical.pitch_table()[1]))
    for window in projected:
        pitches = scaler.decode(window.T.numpy())[:, FIELD["pitch"]].astype(int)
        assert set(pitches) <= allowed and len(set(pitches)) > 1
        block = window[scaler.pitch_class_slice]
        assert ((block == 1).sum(0) == 1).all()  # one class on per note: the written one
        assert (block.argmax(0).numpy() == pitches % 12).all()


def test_a_length_rule_alone_leaves_every_step_as_the_model_denoised_it(datasets):
    scaler = fit_scaler(np.concatenate(tunes(datasets)), encode.NOTE_FIELDS, pitch_classes=True)
    x = torch.randn(2, len(scaler.names), 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(DiffusionRules(Musical(bars=8), scaler).project(x), x)
    moved = DiffusionRules(Musical(bars=8, range="C3-C6"), scaler).project(x)
    assert not torch.equal(moved[:, scaler.pitch_class_slice], x[:, scaler.pitch_class_slice])
