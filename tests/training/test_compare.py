"""``midiforge compare``: four tiny families trained on real Nottingham tunes, one report."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from midiforge import api
from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.metrics.benchmarks import write_token_dataset
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.training.benchmark import benchmark
from midiforge.training.compare import (
    DEFAULT_MODEL,
    Family,
    _budget,
    family_overrides,
    missing_arrays,
    parse_models,
)

from .conftest import TINY_MODELS

FILES = 30  # the first Nottingham tunes in name order
FAMILIES = ["transformer", "lstm", "lstm-multihead", "diffusion"]
TINY_DIFFUSION = ["model.length=32", "model.channels=16", "model.attention_layers=1",
                  "model.attention_heads=2", "model.time_dim=32"]  # fmt: skip
TINY_TRAIN = ["train.batch_size=4", "train.seq_len=64", "train.window=32", "train.eval_every=3",
              "train.eval_batches=1", "train.warmup_steps=1", "train.log_every=2"]  # fmt: skip
STEPS = 6


def tiny_overrides() -> list[str]:
    """``--set`` values of a tiny run of every family (the transformer's context is 64)."""
    per_family = {**TINY_MODELS, "diffusion": TINY_DIFFUSION}
    scoped = [f"{f}.{o}" for f in FAMILIES for o in per_family[f]]
    return [*scoped, *TINY_TRAIN]


def finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@pytest.fixture(scope="module")
def compared(datasets, tmp_path_factory):
    """One comparison of the four families from a plain MIDI folder, shared by the checks."""
    src = tmp_path_factory.mktemp("nottingham30")
    for path in sorted((datasets / "nottingham").glob("*.mid"))[:FILES]:
        shutil.copy(path, src / path.name)
    out = tmp_path_factory.mktemp("compare") / "out"
    lines: list[str] = []
    threads = torch.get_num_threads()
    # one thread, as the function-scoped one_thread fixture gives the other tests (it runs too
    # late for a module fixture): a shared machine's oversubscribed cores stall tiny models
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        try:
            result = api.compare(src, models=",".join(FAMILIES), steps=STEPS, out_dir=out,
                                 overrides=tiny_overrides(), pieces=4, notes=48, device="cpu",
                                 progress=lines.append)  # fmt: skip
        finally:
            torch.set_num_threads(threads)
    return result, json.loads((out / "report.json").read_text()), lines


def test_compare_writes_one_report_with_every_family(compared):
    result, report, lines = compared
    out = result.out_dir
    for name in ("report.md", "report.json", "piano_rolls.png"):
        assert (out / name).is_file(), name
    assert (out / "dataset" / "manifest.json").is_file()  # the folder was prepared once
    assert list(report["families"]) == FAMILIES and report["skipped"] == {}
    assert report["budget"]["text"] == f"{STEPS} steps per family"
    md = (out / "report.md").read_text()
    for family in FAMILIES:
        assert f"| {family} |" in md
        assert any(line.startswith(f"[{FAMILIES.index(family) + 1}/4] {family}: training")
                   for line in lines)  # fmt: skip
        assert len(list((out / "samples" / family).glob("*.mid"))) == 4
    assert "not comparable" in md
    # the piano rolls decode: a held-out panel and one per family, stacked
    image = imread(str(out / "piano_rolls.png"))
    assert image.ndim == 3 and image.shape[0] > image.shape[1] / 2
    assert image[..., :3].std() > 0.05  # notes and axes drawn, not a blank canvas


def test_every_family_has_finite_numbers_where_expected(compared):
    _, report, _ = compared
    data = PreparedDataset(report["dataset"])
    split = report["held_out"]["likelihood_split"]
    counts = data.manifest["splits"][split]
    for name, fam in report["families"].items():
        assert fam["parameters"] > 0
        assert fam["train"]["steps"] == STEPS and fam["train"]["reason"] == "steps"
        assert finite(fam["train"]["items_per_s"]) and fam["train"]["items_per_s"] > 0
        assert finite(fam["sampling"]["notes_per_s"]) and fam["sampling"]["pieces"] == 4
        ll = fam["likelihood"]
        if ll["kind"] == "tokens":
            assert ll["notes"] == counts["notes"]
            assert ll["tokens"] == counts["tokens"] - counts["files"]  # first tokens unscored
            # per note and per token are one summed NLL over two counts
            assert ll["nll_per_note"] * ll["notes"] == pytest.approx(
                ll["nll_per_token"] * ll["tokens"], rel=1e-9
            )
            assert 0 < ll["pitch_nll_per_note"] < ll["nll_per_note"]
        elif ll["kind"] == "notes":
            assert ll["notes"] == counts["notes"]
            # untrained-ish pitch head: near uniform over 128 pitches, ln 128 = 4.85 nats
            assert 2.0 < ll["pitch_nll_per_note"] < 6.0
            assert set(ll["per_head"]) == {"pitch", "time", "velocity"}
        else:
            assert name == "diffusion" and finite(ll["denoising_loss"])
        music = fam["music"]
        if fam["sampling"]["notes"] >= 2 * 4:  # note families always write their notes
            assert 0.0 <= music["mean_overlap"] <= 1.5
            assert music["overlap_ratio"] == pytest.approx(
                music["mean_overlap"] / music["ceiling_mean"]
            )
            assert music["memorization"]["longest_run_max"] >= 0
    # whole pieces: 48 notes each, the LSTM's cut at the last bar line they reach
    assert report["families"]["diffusion"]["sampling"]["notes"] == 4 * 48
    assert 0 < report["families"]["lstm-multihead"]["sampling"]["notes"] <= 4 * 48
    assert finite(report["ceiling"]["mean"]) and 0 < report["ceiling"]["mean"] <= 1.5


def test_ranking_follows_the_numbers(compared):
    result, report, _ = compared
    fams = report["families"]
    order = report["ranking"]["order"]
    assert sorted(order) == sorted(FAMILIES) and result.ranking == order
    ratios = [(fams[n]["music"] or {}).get("overlap_ratio") for n in order]
    known = [r for r in ratios if r is not None]
    assert known == sorted(known, reverse=True)
    assert ratios[: len(known)] == known  # families without a ratio come last
    by_nll = report["likelihood_ranking"]["order"]
    assert sorted(by_nll) == ["lstm", "transformer"]  # only the token families line up
    nll = [fams[n]["likelihood"]["nll_per_note"] for n in by_nll]
    assert nll == sorted(nll)
    summary = result.summary()
    assert summary.index(order[0]) < summary.index(order[-1])


def test_arguments_are_checked_before_any_work(tmp_path, datasets):
    with pytest.raises(MidiforgeError, match="expected one of"):
        parse_models("transformer,wavenet")
    with pytest.raises(MidiforgeError, match="twice"):
        parse_models("lstm,lstm")
    with pytest.raises(MidiforgeError, match="prefix the family"):
        family_overrides(["model.d_model=64"], ["transformer", "lstm"])
    per = family_overrides(["train.lr=1e-3", "lstm.model.d_hidden=8", "gru.model.d_hidden=9"],
                           ["transformer", "lstm"])  # fmt: skip
    assert per == {"transformer": ["train.lr=1e-3"], "lstm": ["train.lr=1e-3", "model.d_hidden=8"]}
    assert _budget(None, None) == (None, 180.0)  # 3 minutes per family by default
    assert _budget(None, "90s") == (None, 90.0) and _budget(50, None) == (50, None)
    spec = Family("diffusion", DEFAULT_MODEL["diffusion"], {"window": 64}, ["model.length=32"])
    assert spec.config()["train"]["window"] == 32  # a diffusion window is its model's length
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("x")
    with pytest.raises(MidiforgeError, match="not empty"):
        api.compare(datasets / "nottingham", out_dir=tmp_path / "out")
    assert main(["compare", str(tmp_path), "--models", "lstm", "-o", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()  # no MIDI in DATA: refused before anything is written


def test_benchmark_says_why_the_note_families_have_no_score(tmp_path):
    for family in ("lstm-multihead", "diffusion"):
        with pytest.raises(MidiforgeError, match="published protocols score NLL per token"):
            benchmark("jsb16", model=family, out=tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written
    assert main(["benchmark", "jsb16", "--model", "lstm-multihead"]) == 2


def test_a_dataset_lacking_what_a_family_reads_is_said_in_one_line(tmp_path):
    """A benchmark encoding: token ids without a tokenizer, and no note rows at all."""
    ids = np.arange(1, 6, dtype=np.int32)
    path = write_token_dataset(tmp_path / "d", {"train": [ids], "valid": [ids]}, "toy", 8)
    data = PreparedDataset(path)
    assert "no tokenizer.json" in missing_arrays("transformer", data)
    assert "no note arrays" in missing_arrays("lstm-multihead", data)
    with pytest.raises(MidiforgeError, match="hold no notes"):
        api.compare(path, models="lstm", steps=1, out_dir=tmp_path / "out")


def test_a_time_budget_alone_lets_the_clock_end_each_run(compared, tmp_path):
    """A DATASET dir given directly; with --time and no --steps the budget stops the run."""
    result, _, _ = compared
    sets = [f"lstm-multihead.{o}" for o in TINY_MODELS["lstm-multihead"]]
    sets += [*TINY_TRAIN, "train.patience=0"]
    again = api.compare(result.out_dir / "dataset", models="lstm-multihead", time="2s",
                        out_dir=tmp_path / "out", overrides=sets, pieces=2, notes=16,
                        device="cpu")  # fmt: skip
    fam = again.report["families"]["lstm-multihead"]
    assert fam["train"]["reason"] == "time" and fam["train"]["steps"] > 1
    assert fam["train"]["seconds"] <= 2.0 + 0.5
    assert again.report["budget"]["text"] == "2s per family"
    assert not (tmp_path / "out" / "dataset").exists()  # a DATASET dir is used where it is
