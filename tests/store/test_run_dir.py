"""A RUN dir saved and loaded: config, weights, data state, tokenizer; export; clear errors."""

from __future__ import annotations

import shutil
import stat

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open

from midiforge.errors import MidiforgeError
from midiforge.models import registry
from midiforge.store import names
from midiforge.store.checkpoint import save_checkpoint, save_weights
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import (
    default_run,
    export_run,
    load_run,
    read_run_config,
    write_run_files,
)
from midiforge.training.settings import TrainConfig

from .conftest import TINY_LSTM
from .test_dataset_dir import write

TINY_NOTE_LSTM = {"d_pitch": 8, "d_hidden": 16, "n_layers": 1, "dropout": 0.0}


def save_run(run, data_path, name: str, values: dict, *, init=None):
    """What ``train`` writes, without the loop: config, tokenizer, data state, weights."""
    data = PreparedDataset(data_path)
    torch.manual_seed(0)
    net = registry.build(name, values)
    data_state = net.prepare_data(data) or {}
    run.mkdir()
    write_run_files(run, net, name, TrainConfig(steps=7), data, data_path, data.labels,
                    data_state, init)  # fmt: skip
    save_weights(net, names.weights_path(run))
    return net.eval(), data


@pytest.fixture
def dataset(encoded_tunes, tmp_path):
    write(tmp_path / "ds", encoded_tunes)
    return tmp_path / "ds"


def test_a_saved_token_run_loads_with_the_same_predictions(dataset, tmp_path):
    vocab = PreparedDataset(dataset).vocab_size
    net, data = save_run(tmp_path / "run", dataset, "lstm", {**TINY_LSTM, "vocab_size": vocab})
    config = read_run_config(tmp_path / "run")
    assert config["format"] == names.RUN_FORMAT and config["train"]["steps"] == 7
    assert config["dataset"] == str(dataset.resolve()) and config["labels"] == ["jig", "reel"]
    assert config["tokenizer"] == data.manifest["tokenizer"]
    loaded = load_run(tmp_path / "run")
    assert not loaded.model.training and loaded.labels == ["jig", "reel"]
    assert loaded.tokenizer.vocab == data.tokenizer.vocab  # the run's own tokenizer.json
    tokens = torch.as_tensor(np.asarray(data.tokens("valid")[0][:40], np.int64))[None]
    with torch.no_grad():
        assert torch.equal(loaded.model(tokens)[0], net(tokens)[0])


def test_last_checkpoint_and_data_state_round_trip(dataset, tmp_path):
    net, _ = save_run(tmp_path / "run", dataset, "lstm-multihead", TINY_NOTE_LSTM)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)  # the last checkpoint differs from the best weights
    save_checkpoint(tmp_path / "run", net, {"step": 3})
    best, last = load_run(tmp_path / "run"), load_run(tmp_path / "run", "last")
    assert best.data_state and best.data_state == last.data_state
    assert torch.equal(last.model.feat_mean, net.feat_mean)  # data state restored into the model
    for (key, a), b in zip(net.state_dict().items(), last.model.state_dict().values()):
        assert torch.equal(a, b), key
    assert not torch.equal(next(best.model.parameters()), next(net.parameters()))
    assert best.tokenizer is not None  # the dataset's tokenizer travels with every run
    with pytest.raises(MidiforgeError, match="which: 'first'"):
        load_run(tmp_path / "run", "first")


def test_export_halves_weights_and_keeps_predictions(dataset, tmp_path):
    vocab = PreparedDataset(dataset).vocab_size
    values = {"vocab_size": vocab, "d_model": 32, "n_layers": 1, "n_heads": 2, "d_ff": 64,
              "max_seq_len": 64, "max_rel": 64, "dropout": 0.0}  # fmt: skip
    save_run(tmp_path / "run", dataset, "transformer", values)
    shipped = export_run(tmp_path / "run", tmp_path / "shipped", dataset="five Nottingham tunes")
    assert sorted(p.name for p in shipped.iterdir()) == sorted(
        [names.CONFIG_FILE, names.WEIGHTS_FILE, names.TOKENIZER_FILE]
    )
    with safe_open(str(names.weights_path(shipped)), framework="pt") as fh:
        assert {fh.get_tensor(k).dtype for k in fh.keys()} == {torch.float16}  # noqa: SIM118
    for path in [shipped, *shipped.iterdir()]:
        assert path.stat().st_mode & stat.S_IROTH, f"{path} is not readable by others"
    assert load_run(shipped).config["dataset"] == "five Nottingham tunes"  # no local path
    original, exported = load_run(tmp_path / "run").model, load_run(shipped).model
    assert next(exported.parameters()).dtype == torch.float32  # cast back on load
    tokens = torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = original(tokens)[0], exported(tokens)[0]
    assert torch.allclose(a, b, atol=2e-2), (a - b).abs().max()


def test_weights_that_do_not_fit_the_config_are_named(dataset, tmp_path):
    vocab = PreparedDataset(dataset).vocab_size
    save_run(tmp_path / "run", dataset, "gru", {**TINY_LSTM, "vocab_size": vocab})
    path = names.config_path(tmp_path / "run")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("d_hidden: 16", "d_hidden: 24"), "utf-8")
    with pytest.raises(MidiforgeError, match=r"tensor \S+ of shape \[.*\] but the config builds"):
        load_run(tmp_path / "run")
    path.write_text(text.replace("model: gru", "model: lstm"), "utf-8")
    with pytest.raises(MidiforgeError, match="holds weights of model 'gru'"):
        load_run(tmp_path / "run")


def test_a_damaged_run_dir_says_what_is_wrong(dataset, tmp_path):
    with pytest.raises(MidiforgeError, match="run directory not found"):
        read_run_config(tmp_path / "nowhere")
    with pytest.raises(MidiforgeError, match=r"config\.yaml is missing"):
        read_run_config(dataset)
    vocab = PreparedDataset(dataset).vocab_size
    save_run(tmp_path / "run", dataset, "gru", {**TINY_LSTM, "vocab_size": vocab})
    path = names.config_path(tmp_path / "run")
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    cases = {
        "model: [unclosed": "cannot read it",
        yaml.safe_dump({**config, "format_version": 2}): "version 2 is not readable",
        yaml.safe_dump({**config, "format": "other"}): "not a midiforge run",
        yaml.safe_dump({k: v for k, v in config.items() if k != "model_config"}): "model_config",
    }
    for text, message in cases.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(MidiforgeError, match=message):
            load_run(tmp_path / "run")
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    names.weights_path(tmp_path / "run").unlink()
    with pytest.raises(MidiforgeError, match="weights file not found"):
        load_run(tmp_path / "run")


def test_the_shipped_default_model_loads(tmp_path):
    loaded = load_run(default_run())
    assert loaded.config["model"] == "transformer" and loaded.tokenizer is not None
    assert loaded.model.config.vocab_size == len(loaded.tokenizer)
    copy = tmp_path / "default"
    shutil.copytree(default_run(), copy)
    assert load_run(copy).config == loaded.config
