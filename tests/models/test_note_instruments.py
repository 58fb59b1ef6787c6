"""Instruments in the note-feature models, on real multi-track pop songs with drums.

The diffusion features code each program as a ±1 one-hot block that decodes back to exactly
the program it came from; the multi-head LSTM's instrument head trains with the other heads;
configs from before instruments build the very same network as before.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from symusic import Score

from midiforge.data import encode
from midiforge.errors import MidiforgeError
from midiforge.models import registry
from midiforge.models.note_features import fit_scaler, program_indices
from midiforge.sampling.diffusion_instruments import spread_instruments
from midiforge.schema import FIELD, NOTE_FIELDS

SONGS = ("Funkytown.mid", "Mr. Blue Sky.mid")
NOTE_TINY = {"d_pitch": 16, "d_hidden": 32, "n_layers": 1, "dropout": 0.0}
WINDOW = 48


@pytest.fixture(scope="module")
def songs(datasets) -> list[np.ndarray]:
    folder = datasets / "robustness" / "MIDIs_multitrack"
    return [encode.notes_from_score(Score(str(folder / name))) for name in SONGS]


def _programs(notes: list[np.ndarray]) -> list[int]:
    return sorted({int(p) for x in notes for p in x[:, FIELD["program"]]})


def test_the_songs_have_drums_and_several_instruments(songs):
    programs = _programs(songs)
    assert -1 in programs and len(programs) >= 5


def test_instrument_channels_round_trip_every_program(songs):
    notes = np.concatenate(songs)
    programs = _programs(songs)
    scaler = fit_scaler(notes, NOTE_FIELDS, programs=programs)
    assert scaler.n_instruments == len(programs)
    assert scaler.names[-len(programs) :] == tuple(f"program_{p}" for p in programs)
    x = scaler.encode(torch.from_numpy(notes))  # (N, 3 + K)
    block = x[:, len(scaler.continuous) :]
    assert set(block.unique().tolist()) == {-1.0, 1.0}
    assert (block == 1).sum(1).eq(1).all()  # one channel on per note
    back = scaler.decode(x.numpy())
    np.testing.assert_array_equal(back[:, FIELD["program"]], notes[:, FIELD["program"]])
    # the saved scaling keeps the mapping, so a reloaded run decodes the same programs
    again = type(scaler).from_dict(scaler.to_dict())
    np.testing.assert_array_equal(again.decode(x.numpy())[:, FIELD["program"]], back[:, 6])


def test_an_unseen_program_is_all_off_and_allowed_restricts_the_argmax(songs):
    notes = np.concatenate(songs)
    programs = _programs(songs)
    scaler = fit_scaler(notes, NOTE_FIELDS, programs=programs)
    odd = notes[:4].copy()
    odd[:, FIELD["program"]] = 109  # bagpipe: not in these songs
    block = scaler.encode(torch.from_numpy(odd))[:, len(scaler.continuous) :]
    assert (block == -1).all()
    assert program_indices(torch.tensor([109.0, -1.0]), programs).tolist() == [
        len(programs),
        programs.index(-1),
    ]
    feats = scaler.encode(torch.from_numpy(notes)).numpy()
    allowed = [programs[1], programs[2]]
    chosen = scaler.choose_instruments(feats, allowed)
    assert {programs[c] for c in chosen} <= set(allowed)


def test_single_program_runs_have_no_channels_and_write_their_program(songs):
    notes = np.concatenate(songs)
    for programs, expected in (([], 0), ([33], 33)):
        scaler = fit_scaler(notes, NOTE_FIELDS, programs=programs)
        assert scaler.names == ("log_frequency", "duration", "delta")
        out = scaler.decode(scaler.encode(torch.from_numpy(notes[:10])).numpy())
        assert set(out[:, FIELD["program"]].tolist()) == {expected}
    with pytest.raises(MidiforgeError, match="programs"):
        fit_scaler(notes, NOTE_FIELDS, programs=[0, 0])


def test_spread_gives_every_requested_instrument_notes():
    scores = np.zeros((20, 3))
    scores[:, 0] = 1.0  # channel 0 wins every note
    scores[:5, 1] = 0.9  # these five come closest for channel 1
    chosen = spread_instruments(scores, scores.argmax(1), [0, 1, 2])
    counts = np.bincount(chosen, minlength=3)
    need = int(0.25 * 20 / 3)  # MIN_SHARE of a fair share
    assert counts.min() >= need and counts[0] == 20 - 2 * need
    assert set(np.flatnonzero(chosen == 1)) <= set(range(5))  # the closest notes moved
    assert np.array_equal(spread_instruments(scores, scores.argmax(1), [0]), scores.argmax(1))


def _windows(songs: list[np.ndarray]) -> dict[str, torch.Tensor]:
    rows = [x[i : i + WINDOW] for x in songs for i in range(0, len(x) - WINDOW, 4 * WINDOW)]
    notes = torch.from_numpy(np.stack(rows))
    return {"notes": notes, "mask": torch.ones(notes.shape[:2], dtype=torch.bool)}


def test_instrument_head_trains_with_the_other_heads(songs):
    batch = _windows(songs)
    programs = _programs(songs)
    torch.manual_seed(0)
    model = registry.build("lstm-multihead", {**NOTE_TINY, "programs": programs,
                                              "separate_head_optimizers": True})  # fmt: skip
    assert [g["name"] for g in model.param_groups()][-1] == "instrument"
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        first = model.loss(batch)
    assert first["instrument"].item() == pytest.approx(np.log(len(programs)), rel=0.2)
    weighted = first["pitch"] + first["time"] + 0.5 * first["velocity"] + first["instrument"]
    assert first["loss"].item() == pytest.approx(weighted.item(), rel=1e-5)
    for _ in range(30):
        opt.zero_grad()
        model.loss(batch)["loss"].backward()
        opt.step()
    assert model.loss(batch)["instrument"].item() < 0.7 * first["instrument"].item()


def test_the_next_instrument_changes_the_pitch_head(songs):
    programs = _programs(songs)
    torch.manual_seed(0)
    model = registry.build("lstm-multihead", {**NOTE_TINY, "programs": programs}).eval()
    x = torch.from_numpy(songs[0][None, :8])
    out, _ = model(x)
    assert out["instrument"].shape == (1, 8, len(programs))
    drums = torch.full((1, 8), programs.index(-1))
    other = model.heads(out["hidden"], drums)
    assert not torch.allclose(other["pitch"], out["pitch"])


def test_configs_without_programs_build_the_old_network():
    torch.manual_seed(0)
    old = registry.build("lstm-multihead", NOTE_TINY)
    assert not any("instrument" in k for k in old.state_dict())
    one = registry.build("lstm-multihead", {**NOTE_TINY, "programs": [5]})
    assert one.config.n_instruments == 0
    with pytest.raises(MidiforgeError, match="programs"):
        registry.build("lstm-multihead", {**NOTE_TINY, "programs": [200, 1]})
    diffusion = registry.build("diffusion", {"length": 16, "channels": 8, "channel_mults": [1],
                                             "kernel_sizes": [3], "attention_layers": 0,
                                             "time_dim": 16})  # fmt: skip
    assert diffusion.n_features == 3
    wide = registry.build("diffusion", {"length": 16, "channels": 8, "channel_mults": [1],
                                        "kernel_sizes": [3], "attention_layers": 0,
                                        "time_dim": 16, "programs": [-1, 0, 33]})  # fmt: skip
    assert wide.n_features == 6
