"""Resumable checkpoints: weights + state.pt written whole, loaded weights_only and checked;
RNG states; a crash between the two renames; damaged and unsafe files named, never run."""

from __future__ import annotations

import pickle
import random
import struct

import numpy as np
import pytest
import torch

from midiforge.errors import MidiforgeError
from midiforge.models import registry
from midiforge.store import names
from midiforge.store.atomic import TEMP_SUFFIX
from midiforge.store.checkpoint import (
    NEW_PREFIX,
    capture_rng,
    check_state_fits,
    last_checkpoint,
    load_state,
    load_weights,
    restore_rng,
    save_checkpoint,
    save_weights,
)

from ..hostile import _Payload
from .conftest import TINY_LSTM, trainer_state

LAST_OLD = names.LAST_OLD_DIR


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


def _save_two(run, net):
    save_checkpoint(run, net, trainer_state(net, 1))
    save_checkpoint(run, net, trainer_state(net, 2))


def test_a_crash_between_the_two_renames_resumes_from_the_checkpoint_beside(tmp_path):
    net = registry.build("gru", {**TINY_LSTM, "vocab_size": 20})
    _save_two(tmp_path, net)
    # what a kill after "last -> .last-old" and before "new -> last" leaves on disk, with the
    # temporary folder of the new checkpoint half written by a process that no longer exists
    (tmp_path / names.LAST_DIR).rename(tmp_path / names.LAST_OLD_DIR)
    dead = tmp_path / "checkpoints" / f"{NEW_PREFIX}999999999{TEMP_SUFFIX}"
    dead.mkdir()
    (dead / "state.pt").write_bytes(b"PK\x03\x04 half")
    assert names.can_resume(tmp_path) and last_checkpoint(tmp_path) == tmp_path / LAST_OLD
    assert load_state(tmp_path)["step"] == 2  # and it is back in place as checkpoints/last
    assert (tmp_path / names.LAST_DIR).is_dir() and not (tmp_path / LAST_OLD).exists()
    save_checkpoint(tmp_path, net, trainer_state(net, 3))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["last"]
    assert load_state(tmp_path)["step"] == 3


def test_a_pickled_state_is_refused_as_unsafe_and_never_runs(tmp_path):
    net = registry.build("gru", {**TINY_LSTM, "vocab_size": 20})
    save_checkpoint(tmp_path, net, trainer_state(net, 1))
    proof = tmp_path / "pwned"
    for protocol, named in ((2, "refers to the Python object getattr"), (5, "not plain data")):
        with names.state_path(tmp_path).open("wb") as fh:
            pickle.dump({"step": 1, "payload": _Payload(str(proof))}, fh, protocol=protocol)
        with pytest.raises(MidiforgeError) as caught:
            load_state(tmp_path)
        message = str(caught.value)
        assert "state.pt: unsafe or damaged file, not loaded" in message and named in message
        assert "weights_only" not in message  # never the advice to load it unsafely
    assert not proof.exists()


def _state_with(net, **changes):
    state = trainer_state(net, 2)
    for key, value in changes.items():
        node, *path = key.split("__")
        target = state
        for part in [node, *path][:-1]:
            target = target[part]
        target[[node, *path][-1]] = value
    return state


def test_every_field_of_state_pt_is_checked(tmp_path):
    net = registry.build("gru", {**TINY_LSTM, "vocab_size": 20})
    cases = {
        "step is 'two'": _state_with(net, step="two"),
        "bad_evals is -1": _state_with(net, bad_evals=-1),
        "best is nan": _state_with(net, best=float("nan")),
        "optimizer is not an optimizer state": _state_with(net, optimizer=[1]),
        "scheduler.lr_lambdas": _state_with(net, scheduler__lr_lambdas=[]),
        "rng: ": _state_with(net, rng__torch=torch.zeros(3, dtype=torch.uint8)),
        "field\\(s\\) rng missing": {k: v for k, v in trainer_state(net, 1).items() if k != "rng"},
    }
    for message, state in cases.items():
        save_checkpoint(tmp_path, net, state)
        with pytest.raises(MidiforgeError, match=f"state.pt: unsafe or damaged.*{message}"):
            load_state(tmp_path)
    for data in (b"", b"garbage" * 100, names.state_path(tmp_path).read_bytes()[:500]):
        names.state_path(tmp_path).write_bytes(data)
        with pytest.raises(MidiforgeError, match=r"state\.pt: unsafe or damaged file, not loaded"):
            load_state(tmp_path)


def test_an_optimizer_state_of_another_model_is_named(tmp_path):
    small = registry.build("gru", {**TINY_LSTM, "vocab_size": 20})
    save_checkpoint(tmp_path, small, trainer_state(small, 1))
    wider = registry.build("gru", {**TINY_LSTM, "d_embed": 24, "d_hidden": 24, "vocab_size": 20})
    with pytest.raises(MidiforgeError, match=r"optimizer.state\[\d+\]\.exp_avg has shape"):
        check_state_fits(load_state(tmp_path), wider, tmp_path)
    untied = registry.build("gru", {**TINY_LSTM, "d_hidden": 24, "vocab_size": 20})
    with pytest.raises(MidiforgeError, match=r"groups of \[6\] tensors.*has \[7\]"):
        check_state_fits(load_state(tmp_path), untied, tmp_path)
    check_state_fits(load_state(tmp_path), small, tmp_path)


def test_damaged_weights_files_are_named_not_loaded(tmp_path):
    net = registry.build("gru", {**TINY_LSTM, "vocab_size": 20})
    path = tmp_path / names.WEIGHTS_FILE
    save_weights(net, path)
    good = path.read_bytes()
    (length,) = struct.unpack("<Q", good[:8])
    cases = {
        b"": "too short for a safetensors header",
        good[: len(good) // 2]: "truncated: the tensors need",
        good + b"extra": "longer than its tensors",
        struct.pack("<Q", 2**60) + good[8:]: "the header claims",
        good[:8] + b"x" * length + good[8 + length :]: "the header is not JSON",
        bytes(range(256)) * 8: "not loaded \\(the header claims",
    }
    for data, message in cases.items():
        path.write_bytes(data)
        with pytest.raises(MidiforgeError, match=f"model.safetensors: damaged.*{message}"):
            load_weights(registry.build("gru", {**TINY_LSTM, "vocab_size": 20}), path)
    with torch.no_grad():
        next(net.parameters())[0, 0] = float("nan")
    save_weights(net, path)
    with pytest.raises(MidiforgeError, match="holds NaN or infinite values"):
        load_weights(registry.build("gru", {**TINY_LSTM, "vocab_size": 20}), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [names.WEIGHTS_FILE]  # no temps
