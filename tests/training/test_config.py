"""Config resolution, schedule, precision and RNG capture: the parts that need no training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from midiforge.config import from_dict
from midiforge.errors import MidiforgeError
from midiforge.training.run import split_config
from midiforge.training.settings import TrainConfig, check_config, lr_factor, resolve_precision


def test_yaml_sections_and_set_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("model:\n  d_model: 64\ntrain:\n  lr: 0.01\n  steps: 7\n", encoding="utf-8")
    model, train = split_config(path, ["train.lr=1e-3", "model.n_layers=3"])
    assert model == {"d_model": 64, "n_layers": 3}
    cfg = from_dict(TrainConfig, train, where="train")
    assert cfg.lr == pytest.approx(1e-3) and cfg.steps == 7
    assert cfg.batch_size == TrainConfig().batch_size


def test_unknown_keys_and_sections_are_named():
    _, train = split_config(None, ["train.learning_rate=1"])
    with pytest.raises(MidiforgeError, match="learning_rate"):
        from_dict(TrainConfig, train, where="train")
    with pytest.raises(MidiforgeError, match=r"unknown section.*optim"):
        split_config({"optim": {"lr": 1}}, None)
    with pytest.raises(MidiforgeError, match=r"train\.steps"):
        check_config(TrainConfig(steps=0))


def test_schedule_warms_up_then_decays_to_min_ratio():
    cfg = TrainConfig(steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, cfg) for s in range(cfg.steps + 1)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))  # monotone decay
    assert factors[100] == pytest.approx(0.1)
    mid = 10 + 45  # half-way through the cosine
    assert factors[mid] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_bf16_on_cpu_is_an_error_that_says_why():
    cpu = torch.device("cpu")
    with pytest.raises(MidiforgeError, match=r"bf16.*CPU"):
        resolve_precision("bf16", cpu)
    assert resolve_precision("auto", cpu) is None
    assert resolve_precision("auto", torch.device("cuda")) is torch.bfloat16
