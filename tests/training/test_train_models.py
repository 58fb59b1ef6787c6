"""Every model family trains on real POP909 windows, and its run dir reloads exactly."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from midiforge.config import from_dict
from midiforge.models import registry
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import load_run, write_run_files
from midiforge.training.run import make_windows, train
from midiforge.training.trainer import TrainConfig, Trainer

from .conftest import tiny

STEPS = 15
FAMILIES = ["lstm", "gru", "transformer", "lstm-multihead"]


def rows(run, split):
    with (run / "metrics.csv").open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


@pytest.mark.parametrize("family", FAMILIES)
def test_family_trains_and_reloads_exactly(family, pop909_small, tmp_path):
    run = train(
        pop909_small,
        model=family,
        overrides=tiny(family, "train.eval_every=5", "train.save_every=5", steps=STEPS),
        run_dir=tmp_path / "run",
        device="cpu",
    )
    for name in ("config.yaml", "metrics.csv", "loss.png", "train.log", "model.safetensors"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last" / "state.pt").is_file()
    train_rows = rows(run, "train")
    assert [int(r["step"]) for r in train_rows] == list(range(1, STEPS + 1))
    losses = [float(r["loss"]) for r in train_rows]
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert last < first, f"{family}: loss did not fall ({first:.4f} -> {last:.4f})"
    assert all(float(r["tokens_per_s"]) > 0 for r in train_rows)

    # The best weights, reloaded from disk, reproduce the best validation loss on record.
    loaded = load_run(run, "best")
    assert loaded.config["model"] == family
    assert not loaded.model.training
    data = PreparedDataset(pop909_small)
    cfg = from_dict(TrainConfig, loaded.config["train"], where="train")
    valid = make_windows(data, loaded.model, cfg, "valid", train=False)
    again = Trainer(loaded.model, cfg, valid, valid, tmp_path / "eval", device=torch.device("cpu"))
    recorded = min(float(r["loss"]) for r in rows(run, "valid"))
    assert again.evaluate()["loss"] == pytest.approx(recorded, abs=1e-6)
    if loaded.model.encoding == "tokens":
        assert loaded.tokenizer is not None and len(loaded.tokenizer) == data.vocab_size
    else:
        heads = set(train_rows[0]) - {"step", "split", "loss", "lr", "tokens_per_s", "seconds"}
        assert len(heads) >= 2, f"per-head losses missing from metrics.csv: {sorted(heads)}"
        assert (run / "data_state.json").is_file()


def test_diffusion_trains_and_its_validation_loss_is_repeatable(pop909_small, tmp_path):
    sets = [
        "model.length=32",
        "model.channels=16",
        "model.attention_layers=1",
        "model.attention_heads=2",
        "model.time_dim=32",
    ]
    run = train(
        pop909_small,
        model="diffusion",
        overrides=tiny("diffusion", *sets, "train.eval_every=2", steps=4),
        run_dir=tmp_path / "run",
        device="cpu",
    )
    train_rows = rows(run, "train")
    assert len(train_rows) == 4 and all(float(r["loss"]) > 0 for r in train_rows)
    loaded = load_run(run, "best")
    cfg = from_dict(TrainConfig, loaded.config["train"], where="train")
    valid = make_windows(PreparedDataset(pop909_small), loaded.model, cfg, "valid", train=False)
    again = Trainer(loaded.model, cfg, valid, valid, tmp_path / "eval", device=torch.device("cpu"))
    recorded = min(float(r["loss"]) for r in rows(run, "valid"))
    assert again.evaluate()["loss"] == pytest.approx(recorded, abs=1e-6)


def test_saved_checkpoint_gives_the_trained_models_logits(pop909_small, tmp_path):
    data = PreparedDataset(pop909_small)
    cfg = TrainConfig(steps=3, batch_size=4, seq_len=32, log_every=1, save_every=3, lr=1e-2)
    values = {"vocab_size": data.vocab_size, "d_embed": 32, "d_hidden": 32, "n_layers": 1}
    net = registry.build("lstm", values)  # d_embed == d_hidden: tied embedding and head
    before = {k: v.clone() for k, v in net.state_dict().items()}
    windows = make_windows(data, net, cfg, "train", train=True)
    Trainer(net, cfg, windows, None, tmp_path, device=torch.device("cpu")).fit()
    assert any(not torch.equal(before[k], v) for k, v in net.state_dict().items())
    write_run_files(tmp_path, net, "lstm", cfg, data, pop909_small, [], {})
    tokens = torch.as_tensor(np.array(data.tokens("valid")[0][:33], np.int64))[None]  # (1, T)
    net.eval()
    with torch.no_grad():
        expected, _ = net(tokens)  # (1, T, V)
        for which in ("last", "best"):  # no validation split given: best is the last step
            got, _ = load_run(tmp_path, which).model(tokens)
            assert torch.equal(got, expected), which
    assert expected.shape == (1, 33, data.vocab_size)
