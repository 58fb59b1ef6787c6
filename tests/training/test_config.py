"""Config resolution, durations, schedule, precision, RNG capture, ETA and the stop line:
the parts that need no training."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from midiforge.config import from_dict
from midiforge.errors import MidiforgeError
from midiforge.training.logbook import eta, stop_message
from midiforge.training.run import split_config
from midiforge.training.settings import (
    FOLDER_EVAL_EVERY,
    FOLDER_TIME_S,
    TrainConfig,
    check_config,
    folder_defaults,
    format_duration,
    load_train_config,
    lr_factor,
    parse_duration,
    resolve_precision,
)


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
    for share in (-0.1, 1.5, math.nan):
        with pytest.raises(MidiforgeError, match=r"train\.piece_start: must lie in 0\.\.1"):
            check_config(TrainConfig(piece_start=share))
    check_config(TrainConfig(piece_start=0.25))  # a share is accepted


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


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("600", 600.0), (600, 600.0), ("90s", 90.0), ("10m", 600.0), ("1h30m", 5400.0),
     ("1h", 3600.0), ("2.5m", 150.0), ("1h 5m 3s", 3903.0), ("none", None)],
)  # fmt: skip
def test_durations_in_the_accepted_forms(text, seconds):
    assert parse_duration(text) == seconds
    if seconds is not None:
        assert parse_duration(format_duration(seconds)) == seconds  # format is parse's inverse


@pytest.mark.parametrize("text", ["10x", "", "0", "-5", "1h30", "m", "ten minutes", True])
def test_a_bad_duration_names_the_value_and_the_accepted_forms(text):
    with pytest.raises(MidiforgeError, match=r"--time: .* accepted: seconds \(600\).*10m"):
        parse_duration(text, "--time")


def test_time_in_a_config_is_a_duration_and_is_checked():
    _, train = split_config({"train": {"time": "1h30m"}}, ["train.steps=7"])
    assert load_train_config(train).time == 5400.0
    assert load_train_config({"time": 90}).time == 90.0
    assert load_train_config({}).time is None  # a prepared dataset: no time limit
    with pytest.raises(MidiforgeError, match=r"train\.time: 'soon'"):
        load_train_config({"time": "soon"})
    with pytest.raises(MidiforgeError, match=r"train\.time: must be a positive"):
        check_config(TrainConfig(time=-1.0))


def test_folder_defaults_budget_time_unless_steps_are_given_alone():
    folder = folder_defaults({})
    assert folder["time"] == FOLDER_TIME_S == 600.0
    assert folder["eval_every"] == FOLDER_EVAL_EVERY < TrainConfig().eval_every
    assert folder_defaults({"steps": 50}) == {"steps": 50}  # today's behaviour
    both = folder_defaults({"steps": 50, "time": 30.0, "eval_every": 7})
    assert both["steps"] == 50 and both["time"] == 30.0 and both["eval_every"] == 7


def test_eta_comes_from_the_limit_that_ends_the_run_first():
    # 100 of 2000 steps in 60 s: 1140 s to go by steps, but a 600 s budget leaves 540 s
    assert eta(100, 2000, 0, 60.0, 600.0) == (540.0, "time budget")
    assert eta(100, 200, 0, 60.0, 600.0) == (60.0, "steps")
    assert eta(150, 200, 100, 25.0, None) == (25.0, "steps")  # a resumed session's pace
    assert eta(0, 200, 0, 0.0, None)[0] == math.inf


def test_stop_message_says_what_was_reached_and_why():
    common = dict(
        steps=2000, budget_s=600.0, patience=5, best=1.234, best_step=400, last_train_loss=1.1
    )
    line = stop_message(
        reason="time", step=412, start_step=0, wall_s=598.2, per_token=True, **common
    )
    assert line == (
        "stopped after 9m58s at step 412 (time budget 10m): best validation loss 1.234 "
        f"at step 400 (perplexity {math.exp(1.234):.2f})"
    )
    line = stop_message(
        reason="patience", step=300, start_step=100, wall_s=61, per_token=False, **common
    )
    assert line.startswith("stopped after 1m01s at step 300 (resumed at step 100; early stop")
    assert "perplexity" not in line
    line = stop_message(
        reason="steps",
        step=2000,
        start_step=0,
        wall_s=5,
        per_token=True,
        **{**common, "best": None},
    )
    assert (
        line == "finished after 5s at step 2000 (train.steps 2000): no validation split; "
        "last training loss 1.100"
    )
