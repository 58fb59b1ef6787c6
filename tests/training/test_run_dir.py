"""The train stage's contract: MIDI folders, fine-tuning, early stopping and user errors."""

from __future__ import annotations

import csv
import shutil
import subprocess

import pytest
import yaml

import midiforge
from midiforge.data.encode import build_tokenizer
from midiforge.errors import MidiforgeError
from midiforge.store import checkpoint as ckpt
from midiforge.store.listing import read_run
from midiforge.store.run_dir import load_run
from midiforge.training.run import train

from .conftest import cli, cli_env, tiny

RAW_SONGS = ("013", "014", "015", "016", "017", "018", "019", "020", "021", "022")


def read_rows(run):
    with (run / "metrics.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_early_stopping_on_validation_loss(pop909_small, tmp_path):
    patience = 2
    run = train(
        pop909_small,
        model="lstm",
        # lr far too high: validation gets worse after the first evaluation
        overrides=tiny(
            "lstm",
            "train.lr=0.5",
            "train.warmup_steps=0",
            "train.eval_every=1",
            f"train.patience={patience}",
            steps=50,
        ),
        run_dir=tmp_path / "run",
        device="cpu",
    )
    rows = read_rows(run)
    valid = [float(r["loss"]) for r in rows if r["split"] == "valid"]
    last_step = max(int(r["step"]) for r in rows)
    assert last_step < 50
    best_at = valid.index(min(valid))
    assert len(valid) == best_at + 1 + patience  # stopped after `patience` worse evaluations
    state = ckpt.load_state(run)
    assert int(state["step"]) == last_step and state["bad_evals"] == patience


def test_raw_midi_folder_is_prepared_into_the_run(datasets, tmp_path):
    src = tmp_path / "my_midi"
    src.mkdir()
    for song in RAW_SONGS:
        shutil.copy(datasets / "pop909" / song / f"{song}.mid", src / f"{song}.mid")
    run = train(
        src,
        model="gru",
        overrides=tiny("gru", "train.eval_every=2", steps=2),
        run_dir=tmp_path / "run",
        device="cpu",
    )
    manifest = run / "dataset" / "manifest.json"
    assert manifest.is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    assert saved["dataset"].endswith("dataset") and saved["model"] == "gru"
    assert (run / "tokenizer.json").read_bytes() == (
        run / "dataset" / "tokenizer.json"
    ).read_bytes()
    assert load_run(run).tokenizer is not None

    # Fine-tune: model config comes from the initial run, its weights start the new one.
    tuned = train(
        run / "dataset",
        init=run,
        overrides=["train.steps=1", "train.batch_size=2", "train.seq_len=16", "train.lr=1e-9"],
        run_dir=tmp_path / "tuned",
        device="cpu",
    )
    base, new = load_run(run, "last").model, load_run(tuned, "last").model
    tuned_cfg = yaml.safe_load((tuned / "config.yaml").read_text(encoding="utf-8"))
    assert tuned_cfg["model"] == "gru" and tuned_cfg["model_config"] == saved["model_config"]
    for (name, a), b in zip(base.state_dict().items(), new.state_dict().values()):
        assert (a - b).abs().max() < 1e-6, name  # lr 1e-9: still the initial weights


def test_init_with_another_tokenizer_is_refused(pop909_small, tmp_path):
    run = train(
        pop909_small,
        model="lstm",
        overrides=tiny("lstm", steps=1),
        run_dir=tmp_path / "run",
        device="cpu",
    )
    other = tmp_path / "other"
    shutil.copytree(pop909_small, other)
    build_tokenizer("tsd").save(other, filename="tokenizer.json")
    with pytest.raises(MidiforgeError, match="different tokenizer"):
        train(other, init=run, overrides=["train.steps=1"], run_dir=tmp_path / "t2", device="cpu")


def test_init_over_a_tokenizer_with_added_tokens_grows_the_model(datasets, tmp_path):
    from midiforge.data.prepare import prepare

    src = tmp_path / "songs"
    src.mkdir()
    for song in RAW_SONGS:
        shutil.copy(datasets / "pop909" / song / f"{song}.mid", src / f"{song}.mid")
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    prepare(src, plain, jobs=1, quiet=True)
    prepare(src, marked, jobs=1, quiet=True, controls=["density"], fim=True)
    run = train(plain, model="transformer", overrides=tiny("transformer", steps=1),
                run_dir=tmp_path / "run", device="cpu")  # fmt: skip
    tuned = train(marked, init=run, overrides=["train.steps=1", "train.batch_size=2",
                  "train.seq_len=16", "train.lr=1e-9", "train.fim=0.5"],
                  run_dir=tmp_path / "tuned", device="cpu")  # fmt: skip
    base, new = load_run(run, "last").model, load_run(tuned, "last").model
    old_vocab, grown = base.config.vocab_size, new.config.vocab_size
    assert grown == old_vocab + 7 + 2  # Density_0..6 and the two markers
    for name, a in base.state_dict().items():
        b = new.state_dict()[name]
        if name in ("embed.weight", "head.weight"):
            assert tuple(b.shape) == (grown, a.shape[1])
            b = b[:old_vocab]
        assert (a - b).abs().max() < 1e-6, name  # lr 1e-9: the trained rows carried over
    assert new.state_dict()["embed.weight"][old_vocab:].abs().sum() > 0  # fresh, not zeros
    assert read_run(tuned).controls == ["density"] and read_run(run).controls == []


def test_user_errors_name_the_problem(pop909_small, tmp_path):
    with pytest.raises(MidiforgeError, match="bf16"):
        midiforge.train(  # the public function, with midiforge.training already imported
            pop909_small,
            model="lstm",
            overrides=tiny("lstm", "train.precision=bf16"),
            run_dir=tmp_path / "a",
            device="cpu",
        )
    with pytest.raises(MidiforgeError, match="d_modle"):
        train(
            pop909_small,
            model="transformer",
            overrides=["model.d_modle=8"],
            run_dir=tmp_path / "b",
            device="cpu",
        )
    with pytest.raises(MidiforgeError, match="no MIDI files"):
        train(tmp_path, model="lstm", run_dir=tmp_path / "c", device="cpu")
    run = train(
        pop909_small,
        model="lstm",
        overrides=tiny("lstm", steps=1),
        run_dir=tmp_path / "d",
        device="cpu",
    )
    with pytest.raises(MidiforgeError, match="already holds a run"):
        train(pop909_small, model="lstm", run_dir=run, device="cpu")


def test_cli_yaml_and_set_with_unknown_key_exits_2(pop909_small, tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("train:\n  steps: 3\n  lr_max: 1\n", encoding="utf-8")
    done = subprocess.run(
        cli(
            "train",
            str(pop909_small),
            "--config",
            str(config),
            "--run-dir",
            str(tmp_path / "run"),
            "--set",
            "train.steps=2",
        ),
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "lr_max" in done.stderr and len(done.stderr.strip().splitlines()) == 1
