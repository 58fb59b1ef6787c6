"""Resumable checkpoints: weights + state.pt written whole, loaded weights_only; RNG states."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from midiforge.errors import MidiforgeError
from midiforge.models import registry
from midiforge.store import names
from midiforge.store.checkpoint import (
    capture_rng,
    load_state,
    load_weights,
    restore_rng,
    save_checkpoint,
)

from .conftest import TINY_LSTM, trainer_state


def test_rng_states_round_trip_through_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    sampler = torch.Generator().manual_seed(4)
    state = capture_rng(sampler)
    torch.save({"rng": state}, tmp_path / "state.pt")
    expected = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=sampler))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    sampler.manual_seed(9)
    restore_rng(torch.load(tmp_path / "state.pt", weights_only=True)["rng"], sampler)
    got = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=sampler))
    assert got[0] == expected[0] and got[1] == expected[1]
    assert torch.equal(got[2], expected[2]) and torch.equal(got[3], expected[3])


def test_checkpoint_holds_weights_and_state_and_replaces_the_last(tmp_path):
    with pytest.raises(MidiforgeError, match=r"state\.pt is missing.*--resume"):
        load_state(tmp_path)
    assert not names.can_resume(tmp_path)
    net = registry.build("gru", {**TINY_LSTM, "vocab_size": 20})
    save_checkpoint(tmp_path, net, trainer_state(net, 1))
    save_checkpoint(tmp_path, net, {**trainer_state(net, 2), "best": 0.5})
    assert names.can_resume(tmp_path) and load_state(tmp_path)["step"] == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last"]  # no temps
    again = registry.build("gru", {**TINY_LSTM, "vocab_size": 20})
    load_weights(again, names.weights_path(tmp_path, "last"))
    for (key, a), b in zip(net.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), key
