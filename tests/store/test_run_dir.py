"""A RUN dir saved and loaded: config, weights, data state, tokenizer; export; clear errors
naming the file and the field for every damaged or edited part; unfinished runs replaced."""

from __future__ import annotations

import shutil
import stat

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open

from midiforge.assets import SHIPPED
from midiforge.errors import MidiforgeError
from midiforge.models import registry
from midiforge.store import names
from midiforge.store.checkpoint import save_checkpoint, save_weights
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import (
    clear_unfinished_run,
    default_run,
    export_run,
    is_unfinished_run,
    load_run,
    read_run_config,
    shipped_run,
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


SHIPPED_BYTES_MAX = 24 << 20  # every shipped model together, weights in float16


@pytest.mark.parametrize("model", sorted(SHIPPED))
def test_each_shipped_model_loads_as_its_family_in_float16(model):
    loaded = load_run(shipped_run(model))
    assert loaded.config["model"] == model and loaded.labels == ["chorale", "folk", "pop"]
    with safe_open(str(names.weights_path(shipped_run(model))), "pt") as weights:
        dtypes = {weights.get_tensor(k).dtype for k in weights.keys()}  # noqa: SIM118
    assert dtypes == {torch.float16}, f"{model}: weights stored as {dtypes}"


def test_the_shipped_models_stay_small_and_an_unknown_one_names_those_that_ship():
    size = sum(p.stat().st_size for d in SHIPPED.values() for p in d.rglob("*") if p.is_file())
    assert size <= SHIPPED_BYTES_MAX, f"shipped models take {size / 2**20:.1f} MiB"
    with pytest.raises(MidiforgeError) as err:
        shipped_run("wavenet")
    assert str(err.value) == (
        "model: 'wavenet' is not accepted; expected one of: diffusion, lstm-multihead, transformer"
    )


def test_the_shipped_default_model_loads(tmp_path):
    loaded = load_run(default_run())
    assert loaded.config["model"] == "transformer" and loaded.tokenizer is not None
    assert loaded.model.config.vocab_size == len(loaded.tokenizer)
    copy = tmp_path / "default"
    shutil.copytree(default_run(), copy)
    assert load_run(copy).config == loaded.config


def _edit(run, **changes):
    path = names.config_path(run)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            config[section][field] = value
        else:
            config[section] = value
    path.write_text(yaml.safe_dump(config), encoding="utf-8")


def test_config_values_are_checked_by_type_range_and_model_size(dataset, tmp_path):
    vocab = PreparedDataset(dataset).vocab_size
    save_run(tmp_path / "good", dataset, "lstm", {**TINY_LSTM, "vocab_size": vocab})
    cases = {
        "model_config__d_hidden=wide": r"model_config\.d_hidden: expected int, got 'wide'",
        "model_config__d_hidden=-16": r"model_config\.d_hidden: -16 is not accepted",
        "model_config__n_layers=10000000": r"model_config\.n_layers: 10000000 is not accepted",
        "model_config__dropout=2.0": r"model_config\.dropout: 2\.0 is not accepted.* 0 up to",
        "model_config__dropout=nan": r"model_config\.dropout: nan is not accepted",
        "model_config__d_hidden=65536": r"model_config: these sizes build a model of [\d,]+ par",
        "model=[lstm]": r"model is \['lstm'\], not text",
        "model=mystery": r"model: 'mystery' is not accepted",
        "labels=7": r"labels is 7, not a list",
        "train=[1, 2]": r"train is \[1, 2\], not a mapping",
    }
    for i, (change, message) in enumerate(cases.items()):
        run = tmp_path / f"run{i}"
        shutil.copytree(tmp_path / "good", run)
        key, value = change.split("=", 1)
        _edit(run, **{key: yaml.safe_load(value)})
        with pytest.raises(MidiforgeError, match=f"{run}/config\\.yaml: ?{message}"):
            load_run(run)
    names.config_path(run).write_bytes(bytes(range(256)))
    with pytest.raises(MidiforgeError, match=r"config\.yaml: cannot read it .*utf-8"):
        load_run(run)


def test_damaged_tokenizer_and_data_state_are_named(dataset, tmp_path):
    vocab = PreparedDataset(dataset).vocab_size
    save_run(tmp_path / "tokens", dataset, "lstm", {**TINY_LSTM, "vocab_size": vocab})
    save_run(tmp_path / "notes", dataset, "lstm-multihead", TINY_NOTE_LSTM)
    tokenizer = names.tokenizer_path(tmp_path / "tokens")
    good = tokenizer.read_text(encoding="utf-8")
    for text, message in (
        ("{not json", "not a readable tokenizer file"),
        ('{"tokenization": "MuMIDI"}', "tokenization 'MuMIDI' is not supported"),
        (good.replace('"Pitch_21": ', '"Pitch_21_gone": ', 1)[: len(good) // 2], "not a readable"),
    ):
        tokenizer.write_text(text, encoding="utf-8")
        with pytest.raises(MidiforgeError, match=f"tokenizer.json: {message}"):
            load_run(tmp_path / "tokens")
    _edit(tmp_path / "tokens", model_config__vocab_size=vocab + 1)
    tokenizer.write_text(good, encoding="utf-8")
    with pytest.raises(MidiforgeError, match=r"tokenizer\.json has \d+ tokens but the model"):
        _load_with_vocab(tmp_path, vocab)
    state = names.data_state_path(tmp_path / "notes")
    for text, message in (
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"feat_mean": "x"}', "damaged data state, not loaded"),
        ('{"feat_mean": [0, 0, 0], "feat_std": [1, NaN, 1]}', "holds NaN or infinite values"),
    ):
        state.write_text(text, encoding="utf-8")
        with pytest.raises(MidiforgeError, match=f"data_state.json: .*{message}"):
            load_run(tmp_path / "notes")


def _load_with_vocab(tmp_path, vocab):
    """The run's weights re-saved for vocab + 1, so only the tokenizer disagrees."""
    run = tmp_path / "tokens"
    net = registry.build("lstm", {**TINY_LSTM, "vocab_size": vocab + 1})
    save_weights(net, names.weights_path(run))
    load_run(run)


def test_an_unfinished_run_is_replaced_and_a_finished_or_shipped_one_never(dataset, tmp_path):
    vocab = PreparedDataset(dataset).vocab_size
    run = tmp_path / "run"
    save_run(run, dataset, "gru", {**TINY_LSTM, "vocab_size": vocab})
    (run / names.TRAIN_LOG_FILE).write_text("started\n", encoding="utf-8")
    (run / "notes.txt").write_text("mine", encoding="utf-8")  # not a run's file: kept
    assert is_unfinished_run(run) and clear_unfinished_run(run)
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    save_run(tmp_path / "done", dataset, "gru", {**TINY_LSTM, "vocab_size": vocab})
    net = registry.build("gru", {**TINY_LSTM, "vocab_size": vocab})
    save_checkpoint(tmp_path / "done", net, {"step": 1})
    (tmp_path / "done" / names.TRAIN_LOG_FILE).write_text("x", encoding="utf-8")
    shipped = export_run(tmp_path / "done", tmp_path / "shipped")  # no train.log, no checkpoint
    for folder in (tmp_path / "done", shipped):
        assert not is_unfinished_run(folder) and not clear_unfinished_run(folder)
        assert names.is_run(folder)
