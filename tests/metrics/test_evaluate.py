"""`evaluate`: held-out likelihood of a run, and a generated folder against a reference."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import symusic

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.metrics import benchmarks as bm
from midiforge.metrics import music, pitch, rhythm
from midiforge.metrics.evaluate import evaluate
from midiforge.metrics.likelihood import run_likelihood

REFERENCE_FILES = ["jigs1.mid", "jigs2.mid", "reelsa-c1.mid", "reelsa-c2.mid", "waltzes1.mid",
                   "hpps1.mid"]  # fmt: skip


def _write(path, notes, tpq=480, drums=()):
    score = symusic.Score(tpq)
    for is_drum, rows in ((False, notes), (True, drums)):
        if len(rows) == 0:
            continue
        track = symusic.Track("drums" if is_drum else "piano", 0, is_drum)
        for p, onset, dur in rows:
            track.notes.append(symusic.Note(round(onset * tpq), round(dur * tpq), int(p), 80))
        score.tracks.append(track)
    score.dump_midi(str(path))


def test_generated_against_reference_folder(datasets, tmp_path):
    ref = tmp_path / "ref"
    ref.mkdir()
    for name in REFERENCE_FILES:
        shutil.copy(datasets / "nottingham" / name, ref / name)
    gen = tmp_path / "gen"
    gen.mkdir()
    # a C major scale up and down in quarters: range 12, 8 distinct pitches, 7 classes
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60]
    _write(gen / "scale.mid", [(p, i, 1) for i, p in enumerate(scale)])
    # a copy of a reference tune transposed up a tone: memorized
    copied = music.pitch_onset_duration(symusic.Score(str(ref / "jigs1.mid")))
    _write(gen / "copy.mid", [(p + 2, o, d) for p, o, d in copied])
    out = tmp_path / "report"
    assert (
        main(["evaluate", "--generated", str(gen), "--reference", str(ref), "--out", str(out)]) == 0
    )
    report = json.loads((out / "report.json").read_text())
    files = {f["file"]: f for f in report["per_file"]}
    assert files["scale.mid"]["pitch_range"] == 12
    assert files["scale.mid"]["n_pitches_used"] == 8
    assert files["scale.mid"]["n_pitch_classes_used"] == 7
    assert files["scale.mid"]["scale_consistency"] == pytest.approx(1.0)
    assert files["scale.mid"]["polyphony"] == 1.0
    # the copy shares all of its notes with jigs1 (transposition-invariant)
    assert files["copy.mid"]["longest_training_run"] == len(copied)
    assert files["scale.mid"]["longest_training_run"] < 20
    assert report["memorization"]["share_flagged"] == 0.5
    assert report["n_reference"] == len(REFERENCE_FILES)
    ref_ranges = [
        pitch.pitch_range(music.pitch_onset_duration(symusic.Score(str(ref / n))))
        for n in REFERENCE_FILES
    ]
    agg = report["aggregate"]["pitch_range"]
    assert agg["reference"]["mean"] == pytest.approx(np.mean(ref_ranges))
    assert 0.0 <= agg["oa"] <= 1.0
    cv = report["framewise"]["ceiling"]["pitch"]
    assert 0.0 <= cv["consistency"] <= 1.0
    # bars from each file's time signature: jigs 6/8 (3 beats), waltzes 3/4, reels and hornpipes
    # 4/4; the generated files state none (4/4)
    meters = {n: music.score_beats_per_bar(symusic.Score(str(ref / n))) for n in REFERENCE_FILES}
    assert meters["jigs1.mid"] == 3.0
    counts = {f"{b:g}": list(meters.values()).count(b) for b in set(meters.values())}
    assert report["bar_lengths"] == {
        "source": "time signature", "generated": {"4": 2}, "reference": counts
    }  # fmt: skip
    assert report["overlap_bounds"] == "minmax"
    assert "drum_pattern_consistency" not in report["aggregate"]  # no drums anywhere
    md = (out / "report.md").read_text()
    assert "| pitch_range |" in md and "Memorization" in md and "ceiling" in md
    assert "between the smallest and the largest distance, as MGEval's code" in md.split("##")[0]
    assert "Bar lengths" in md and "overlap area (minmax)" in md
    assert (out / "pitch_range.png").stat().st_size > 1000
    assert (out / "longest_training_run.png").is_file()


def test_run_likelihood_matches_the_exact_scorer(datasets, tmp_path):
    """TokenWindows + model.loss (evaluate RUN) equals per-token scoring of whole pieces."""
    pieces = {s: v[:4] for s, v in bm.encode_benchmark("polyphonic", "jsb", datasets).items()}
    data = bm.write_token_dataset(tmp_path / "data", pieces, "poly-jsb", bm.POLY_VOCAB)
    longest = max(len(p) for v in pieces.values() for p in v)
    from midiforge.training.run import train

    run = train(
        data,
        model="gru",
        config={
            "model": {"d_embed": 16, "d_hidden": 16, "n_layers": 1},
            "train": {
                "steps": 3,
                "batch_size": 2,
                "seq_len": longest,
                "eval_every": 3,
                "eval_batches": 1,
                "warmup_steps": 1,
            },
        },
        run_dir=tmp_path / "run",
        device="cpu",
    )
    res = run_likelihood(run, "test")
    from midiforge.store.run_dir import load_run

    exact = bm.score_split(load_run(run).model, pieces["test"], None, "token")
    assert res["count"] == exact["count"] == sum(len(p) - 1 for p in pieces["test"])
    assert res["nats"] == pytest.approx(exact["nats"], rel=1e-5)
    assert res["bits"] == pytest.approx(res["nats"] / math.log(2))
    assert res["perplexity"] == pytest.approx(math.exp(res["nats"]))
    assert main(["evaluate", str(run), "--split", "valid"]) == 0
    # another dataset of the run's ids (dataset=): its pieces are scored, not the run's own
    other = {s: v[::-1][:2] for s, v in pieces.items()}
    elsewhere = bm.write_token_dataset(tmp_path / "other", other, "poly-jsb", bm.POLY_VOCAB)
    res = run_likelihood(run, "test", dataset=elsewhere)
    exact = bm.score_split(load_run(run).model, other["test"], None, "token")
    assert res["count"] == exact["count"] and res["nats"] == pytest.approx(exact["nats"], rel=1e-5)
    wider = bm.write_token_dataset(tmp_path / "wider", other, "poly-jsb", bm.POLY_VOCAB + 5)
    with pytest.raises(MidiforgeError, match=r"ids; the run .* knows"):
        run_likelihood(run, "test", dataset=wider)


def test_evaluate_needs_one_mode():
    with pytest.raises(MidiforgeError, match="either RUN"):
        evaluate()
    with pytest.raises(MidiforgeError, match="--reference"):
        evaluate(generated="somewhere")


def test_note_models_per_head_and_diffusion(datasets, tmp_path):
    """lstm-multihead reports per-head losses; diffusion a seeded fixed-grid denoising loss."""
    from midiforge.data.prepare import prepare
    from midiforge.training.run import train

    src = tmp_path / "midi"
    src.mkdir()
    for name in sorted((datasets / "nottingham").glob("reelsa-c1*.mid"))[:6]:
        shutil.copy(name, src / name.name)
    data = prepare(src, tmp_path / "data", split=(0.5, 0.5, 0.0), min_tokens=16, min_notes=16,
                   jobs=1, quiet=True).path  # fmt: skip
    small = {"steps": 2, "batch_size": 2, "window": 16, "eval_every": 2, "eval_batches": 1,
             "warmup_steps": 1}  # fmt: skip
    lstm = train(
        data,
        model="lstm-multihead",
        config={"model": {"d_pitch": 8, "d_hidden": 8, "n_layers": 1}, "train": small},
        run_dir=tmp_path / "lstm",
        device="cpu",
    )
    # a DATASET reference: its train split is the reference and the memorization corpus
    report = evaluate(generated=src, reference=data, out=tmp_path / "report")
    n_train = json.loads((data / "manifest.json").read_text())["splits"]["train"]["files"]
    assert report["n_reference"] == n_train > 0
    assert report["memorization"]["share_flagged"] > 0  # the training files themselves
    res = run_likelihood(lstm, "valid")
    assert res["kind"] == "notes" and res["count"] > 0
    heads = res["per_head"]
    # the model's loss is w_pitch·pitch + w_time·time + w_velocity·velocity (1, 1, 0.5), and
    # count-weighted means are linear, so the same holds for the averages
    expected = heads["pitch"] + heads["time"] + 0.5 * heads["velocity"]
    assert res["loss"] == pytest.approx(expected, rel=1e-5)
    diff_cfg = {"length": 16, "channels": 8, "channel_mults": [1, 2], "kernel_sizes": [3, 3],
                "attention_layers": 1, "attention_heads": 1, "time_dim": 16}  # fmt: skip
    diffusion = train(
        data,
        model="diffusion",
        config={"model": diff_cfg, "train": {**small, "window": 16}},
        run_dir=tmp_path / "diffusion",
        device="cpu",
    )
    first = run_likelihood(diffusion, "valid", diffusion_timesteps=2)
    assert first["kind"] == "diffusion" and math.isfinite(first["denoising_loss"])
    again = run_likelihood(diffusion, "valid", diffusion_timesteps=2)
    assert again["denoising_loss"] == first["denoising_loss"]  # seeded noise, fixed grid


def test_dataset_reference_held_out_split_and_style(datasets, tmp_path):
    # two styles in one dataset; the reference is the held-out split of one style, while
    # memorization is measured against everything the model trained on
    from midiforge.data.prepare import prepare
    from midiforge.store.dataset_dir import PreparedDataset

    src = tmp_path / "src"
    for label, folder in (("folk", "nottingham"), ("pop", "pop909")):
        (src / label).mkdir(parents=True)
        pattern = "*.mid" if folder == "nottingham" else "*/[0-9][0-9][0-9].mid"
        for path in sorted((datasets / folder).glob(pattern))[:10]:
            shutil.copy(path, src / label / path.name)
    data_dir = tmp_path / "data"
    split_file = tmp_path / "splits.csv"  # fix which files are held out, by name
    held = sorted((src / "folk").iterdir())[:3]
    split_file.write_text("path,split\n" + "".join(f"folk/{p.name},test\n" for p in held))
    prepare(src, data_dir, labels_from="folder", split_by=str(split_file), jobs=1, quiet=True)
    data = PreparedDataset(data_dir)
    folk = data.labels.index("folk")
    expected_test_folk = int((data.file_labels("test") == folk).sum())
    assert expected_test_folk >= len(held)
    gen = tmp_path / "gen"
    gen.mkdir()
    first_train = music.notes_from_fields(
        np.asarray(data.notes("train")[0]), data.manifest["note_fields"]
    )
    _write(gen / "copy.mid", [(p, o, d) for p, o, d in first_train])  # copies a training piece
    report = evaluate(
        generated=gen,
        reference=data_dir,
        reference_split="test",
        style="folk",
        out=tmp_path / "report",
    )
    assert report["n_reference"] == expected_test_folk
    assert "test split, style folk" in report["reference"]
    assert report["per_file"][0]["longest_training_run"] == len(first_train)
    with pytest.raises(MidiforgeError, match="labels"):
        evaluate(generated=gen, reference=data_dir, style="jazz", out=tmp_path / "r2")


def test_drums_bars_and_the_full_line_overlap(datasets, tmp_path):
    """Drum metrics only where drums are; a given bar length; --overlap full in the report."""
    ref = tmp_path / "ref"
    ref.mkdir()
    for name in ("jigs132.mid", "jigs14.mid", "reelsa-c1.mid"):
        shutil.copy(datasets / "nottingham" / name, ref / name)
    gen = tmp_path / "gen"
    gen.mkdir()
    # the same melody twice, once over a kick on every beat and an 8th-triplet hi-hat
    melody = [(60 + (i % 5), i, 1) for i in range(16)]
    kit = [(36, b, 0.25) for b in range(16)] + [(42, b + 1 / 3, 0.25) for b in range(16)]
    _write(gen / "drums.mid", melody, drums=kit)
    _write(gen / "plain.mid", melody)
    out = tmp_path / "report"
    args = ["evaluate", "--generated", str(gen), "--reference", str(ref), "--out", str(out)]
    assert main([*args, "--overlap", "full", "--beats-per-bar", "3"]) == 0
    report = json.loads((out / "report.json").read_text())
    files = {f["file"]: f for f in report["per_file"]}
    # kicks on the beat are on both grids, hi-hats on the triplet one only: duple 1/2, triple 1
    assert files["drums.mid"]["drum_pattern_consistency"] == pytest.approx(1.0)
    assert "drum_pattern_consistency" not in files["plain.mid"]
    # the pitched metrics do not see the drums
    pitched = {k: v for k, v in files["drums.mid"].items() if k != "drum_pattern_consistency"}
    assert {**pitched, "file": "plain.mid"} == files["plain.mid"]
    notes = np.array(melody, dtype=np.float64)
    assert files["plain.mid"]["groove_consistency"] == rhythm.groove_consistency(
        notes, beats_per_bar=3
    )
    bars = {"source": "given", "generated": {"3": 2}, "reference": {"3": 3}}
    assert report["bar_lengths"] == bars
    assert report["overlap_bounds"] == "full"
    drum_row = report["aggregate"]["drum_pattern_consistency"]
    assert drum_row["generated"]["n"] == 1 and drum_row["reference"]["n"] == 0
    md = (out / "report.md").read_text()
    assert "integrated over the whole line" in md.split("##")[0]
    assert "| plain.mid |" in md  # the per-file table holds files with and without drums
    assert "given for every piece" in md
    with pytest.raises(MidiforgeError, match="overlap"):
        evaluate(generated=gen, reference=ref, out=tmp_path / "r2", overlap_bounds="whole")
