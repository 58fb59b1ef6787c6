"""LSTM/GRU token models and the multi-head note LSTM: state-carrying decoding, safetensors round
trip, and per-head losses that fall on real Nottingham notes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_model, save_model

from midiforge.data.encode import notes_from_score
from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.models.note_lstm import TIME_BINS
from midiforge.models.registry import build

VOCAB = 30
TINY = {"vocab_size": VOCAB, "d_embed": 24, "d_hidden": 24, "n_layers": 2, "dropout": 0.0}
NOTE_TINY = {"d_pitch": 32, "d_hidden": 48, "n_layers": 1, "dropout": 0.0}


@pytest.mark.parametrize("family", ["lstm", "gru"])
def test_state_carrying_equals_full_pass(family):
    torch.manual_seed(0)
    model = build(family, TINY).eval()
    x = torch.randint(0, VOCAB, (2, 20))
    with torch.no_grad():
        full, _ = model(x)
        a, state = model(x[:, :7])
        b, _ = model(x[:, 7:], cache=state)
    torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-6, rtol=1e-5)
    assert model.head.weight is model.embed.weight  # sizes match → tied


@pytest.mark.parametrize("family", ["lstm", "gru", "lstm-multihead"])
def test_safetensors_round_trip(tmp_path, family):
    cfg = NOTE_TINY if family == "lstm-multihead" else {**TINY, "n_labels": 2}
    torch.manual_seed(0)
    model = build(family, cfg).eval()
    save_model(model, str(tmp_path / "m.safetensors"))
    torch.manual_seed(1)
    other = build(family, cfg).eval()
    load_model(other, str(tmp_path / "m.safetensors"))
    if family == "lstm-multihead":
        x = torch.tensor([[[60, 0, 0, 1, 0.5, 80, 0]] * 5], dtype=torch.float32)
        torch.testing.assert_close(other(x)[0]["pitch"], model(x)[0]["pitch"])
    else:
        x = torch.randint(0, VOCAB, (2, 9))
        torch.testing.assert_close(other(x, label=1)[0], model(x, label=1)[0])


def test_untied_when_sizes_differ_and_loss_trains():
    torch.manual_seed(0)
    model = build("gru", {**TINY, "d_hidden": 40})
    assert model.head.weight is not model.embed.weight
    x = torch.randint(0, 8, (4, 17))  # a small alphabet the model can learn quickly
    batch = {"tokens": x, "mask": torch.ones(4, 16, dtype=torch.bool)}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(30):
        loss = model.loss(batch)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def _nottingham_batch(datasets, n_files=4, length=64):
    files = sorted((datasets / "nottingham").glob("*.mid"))[:n_files]
    rows = []
    for f in files:
        notes = notes_from_score(load_midi(f))
        assert len(notes) >= length
        rows.append(notes[:length])
    notes = torch.from_numpy(np.stack(rows))  # (B, L, F)
    return {"notes": notes, "mask": torch.ones(notes.shape[:2], dtype=torch.bool)}


def test_multihead_losses_fall_on_real_notes(datasets):
    batch = _nottingham_batch(datasets)
    torch.manual_seed(0)
    model = build("lstm-multihead", {**NOTE_TINY, "separate_head_optimizers": True,
                                     "lr_scale_velocity": 0.5})  # fmt: skip
    flat = batch["notes"].reshape(-1, batch["notes"].shape[-1])

    # what prepare_data reads of a PreparedDataset: the notes, as one unlabelled file
    data = SimpleNamespace(
        manifest={"note_fields": list(range(flat.shape[1]))},
        notes=lambda split: SimpleNamespace(flat=flat.numpy(), lengths=np.array([len(flat)])),
        file_labels=lambda split: np.array([-1]),
    )
    state = model.prepare_data(data)
    assert set(state["delta_values"]) == {"all"} and 0.0 in state["delta_values"]["all"]
    assert state["feat_std"][0] > 0.05  # log1p(delta) varies on this data
    assert np.allclose(state["feat_mean"][2], flat[:, 5].float().mean().item(), rtol=1e-4)
    groups = model.param_groups()
    assert [g["name"] for g in groups] == ["body", "pitch", "time", "velocity"]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    opt = torch.optim.Adam([{"params": g["params"], "lr": 3e-3 * g["lr_scale"]} for g in groups])
    first = model.loss(batch)
    assert set(first) == {"loss", "pitch", "time", "velocity"}
    assert all(torch.isfinite(v) for v in first.values())
    for _ in range(25):
        out = model.loss(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    last = model.loss(batch)
    for key in ("loss", "pitch", "time"):
        assert last[key] < first[key], key


def test_time_classes_are_the_nearest_bin_in_log_beats():
    model = build("lstm-multihead", NOTE_TINY)
    bins = torch.tensor(TIME_BINS)
    assert torch.equal(model.time_classes(bins), torch.arange(len(bins)))  # each bin is its own
    log = torch.log1p(bins)
    between = torch.expm1(log[:-1] + 0.49 * (log[1:] - log[:-1]))  # just under halfway up
    assert torch.equal(model.time_classes(between), torch.arange(len(bins) - 1))
    assert model.time_classes(torch.tensor([-1.0, 1000.0])).tolist() == [0, len(bins) - 1]
    music = [0, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1, 1.5, 2, 3, 4, 6, 8, 16]
    assert np.isclose(np.array(music)[:, None], np.array(TIME_BINS), atol=1e-9).any(1).all()
    with pytest.raises(
        MidiforgeError, match=r"time_head: 'mean' is not accepted; expected one of: classes, median"
    ):
        build("lstm-multihead", {**NOTE_TINY, "time_head": "mean"})
