"""The generate stage end to end: real POP909/Nottingham files → prepare → a few training steps
→ generate (style, primer, grammar mask, note model) → MIDI files that re-parse with notes."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from midiforge.cli import main
from midiforge.data.corpus import clean_score
from midiforge.data.encode import FIELD, ids_to_score, score_to_ids
from midiforge.data.prepare import prepare
from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.models import registry
from midiforge.models.note_lstm import TIME_BINS
from midiforge.sampling.autoregressive import KV_CACHE, sample_notes
from midiforge.sampling.generate import SAMPLERS, generate, read_primer
from midiforge.sampling.options import KV_CACHE_CHOICES, GenerateOptions
from midiforge.store.run_dir import load_run

from .conftest import link_pop_and_folk, train_tiny

N_PER_CORPUS = 5  # files per corpus: enough for a split, small enough for seconds
TRAIN = ["train.batch_size=4", "train.seq_len=32", "train.window=32", "train.lr=3e-3",
         "train.warmup_steps=2", "train.eval_every=10", "train.eval_batches=1",
         "train.steps=12"]  # fmt: skip
TINY = {
    "transformer": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64",
                    "model.max_seq_len=64", "model.max_rel=32"],
    "lstm-multihead": ["model.d_pitch=16", "model.d_hidden=32", "model.n_layers=1"],
}  # fmt: skip


@pytest.fixture(scope="module")
def dataset(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = link_pop_and_folk(datasets, tmp_path_factory.mktemp("src"), N_PER_CORPUS)
    out = tmp_path_factory.mktemp("ds") / "ds"
    prepare(src, out, labels_from="folder", jobs=1, quiet=True)
    return out


@pytest.fixture(scope="module")
def runs(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_tiny(dict.fromkeys(TINY, dataset), TINY, TRAIN, tmp_path_factory.mktemp("runs"))


def test_transformer_generates_parseable_midi_with_style_and_grammar(runs, tmp_path):
    result = generate(runs["transformer"], out_dir=tmp_path, n=2, max_tokens=96, seed=0,
                      style="folk", top_k=20, grammar_mask=True, device="cpu")  # fmt: skip
    assert [p.name for p in result.paths] == ["sample_000.mid", "sample_001.mid"]
    for path, count in zip(result.paths, result.notes):
        assert count > 0 and load_midi(path).note_num() == count
    assert len(result.grammar_errors) == 2 and all(e >= 0 for e in result.grammar_errors)
    assert all(0 < g <= 96 for g in result.generated)
    assert "grammar errors" in result.summary()
    again = generate(runs["transformer"], out_dir=tmp_path / "again", n=2, max_tokens=96,
                     seed=0, style="folk", top_k=20, grammar_mask=True, device="cpu")  # fmt: skip
    assert [p.read_bytes() for p in again.paths] == [p.read_bytes() for p in result.paths]


def test_grammar_mask_keeps_time_moving_forward_so_miditok_counts_no_error(runs, tmp_path):
    # a 12-step model at temperature 1.5 draws Positions nearly at random: the type grammar
    # alone lets a Position go back in its bar, which MidiTok counts; the mask's time order not
    result = generate(runs["transformer"], out_dir=tmp_path, n=6, max_tokens=256, seed=3,
                      temperature=1.5, grammar_mask=True, device="cpu")  # fmt: skip
    assert sum(result.generated) > 200
    assert result.grammar_errors == [0] * 6
    assert all(count > 0 for count in result.notes)


def _first_bar_sounds(path) -> bool:
    """Whether the file's first note starts inside its first bar (its first time signature)."""
    score = load_midi(path)
    sig = score.time_signatures[0] if len(score.time_signatures) else None
    beats = 4.0 if sig is None else sig.numerator * 4 / sig.denominator
    first = min(n.time for t in score.tracks for n in t.notes)
    return first < beats * score.ticks_per_quarter


def test_grammar_mask_opens_on_a_bar_that_sounds(runs, tmp_path):
    # drawn nearly at random, bar lines come often: without the mask some pieces open with a
    # silent bar (or several); with it no second bar line comes before the first note
    common = {"n": 8, "max_tokens": 96, "seed": 5, "temperature": 1.5, "device": "cpu"}
    free = generate(runs["transformer"], out_dir=tmp_path / "off", grammar_mask=False, **common)
    masked = generate(runs["transformer"], out_dir=tmp_path / "on", grammar_mask=True, **common)
    assert not all(_first_bar_sounds(p) for p in free.paths if load_midi(p).note_num())
    assert all(_first_bar_sounds(p) for p in masked.paths)


def test_primer_bars_and_window_past_training_length(runs, datasets, tmp_path):
    primer = datasets / "pop909" / "010" / "010.mid"
    result = generate(runs["transformer"], out_dir=tmp_path, n=1, max_tokens=120, seed=1,
                      primer=primer, primer_bars=2, device="cpu")  # fmt: skip
    # the sample starts with the primer's first two bars, as the run's tokenizer renders them
    tok = load_run(runs["transformer"]).tokenizer
    clipped = read_primer(primer, 2)
    ref = ids_to_score(tok, score_to_ids(tok, clean_score(clipped, programs=None, drums=False,
        tracks="merge", max_note_beats=None, max_gap_beats=None)[0]))  # fmt: skip
    want = sorted((n.time, n.pitch, n.duration) for n in ref.tracks[0].notes)
    got = load_midi(result.paths[0])
    last = want[-1][0]
    got_notes = sorted((n.time, n.pitch, n.duration) for n in got.tracks[0].notes)
    assert len(want) > 5 and got.ticks_per_quarter == ref.ticks_per_quarter
    assert [n for n in got_notes if n[0] < last] == [n for n in want if n[0] < last]


def test_style_errors_list_the_labels(runs, tmp_path):
    with pytest.raises(MidiforgeError, match="folk, pop"):
        generate(runs["transformer"], out_dir=tmp_path, n=1, max_tokens=4, style="jazz")


def test_kv_cache_dtype_is_an_option_and_a_bad_one_is_named(runs, tmp_path):
    with pytest.raises(MidiforgeError, match=r"kv_cache.*float32"):
        generate(runs["transformer"], out_dir=tmp_path, n=1, max_tokens=4, kv_cache="int8")
    for kv_cache in ("float32", "float16"):
        result = generate(runs["transformer"], out_dir=tmp_path / kv_cache, n=1,
                          max_tokens=96, seed=0, style="folk", top_k=20, device="cpu",
                          kv_cache=kv_cache)  # fmt: skip
        assert result.notes[0] > 0 and load_midi(result.paths[0]).note_num() == result.notes[0]


def test_options_object_and_fields_together_fields_win(runs, tmp_path):
    opts = GenerateOptions(n=3, max_tokens=24, seed=4, top_k=20, device="cpu")
    result = generate(runs["transformer"], out_dir=tmp_path / "a", options=opts, n=1)
    same = generate(runs["transformer"], out_dir=tmp_path / "b", n=1, max_tokens=24, seed=4,
                    top_k=20, device="cpu")  # fmt: skip
    assert [p.name for p in result.paths] == ["sample_000.mid"]
    assert result.paths[0].read_bytes() == same.paths[0].read_bytes()


def test_options_the_runs_sampler_does_not_read_are_logged(runs, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="midiforge.sampling.generate"):
        result = generate(runs["lstm-multihead"], out_dir=tmp_path, n=1, max_tokens=8, seed=0,
                          top_k=5, kv_cache="float32", steps=8, device="cpu")  # fmt: skip
    assert 0 < result.generated[0] <= 8  # cut at the last bar line the 8 notes reach
    assert "a notes run does not use kv_cache='float32', steps=8" in caplog.text


def test_unknown_or_bad_options_fail_before_any_run_is_loaded(tmp_path):
    missing = tmp_path / "no-such-run"
    with pytest.raises(MidiforgeError, match=r"unknown option 'temprature' \(did you mean"):
        generate(missing, out_dir=tmp_path, temprature=0.5)
    with pytest.raises(MidiforgeError, match=r"top_p: 0\.0 is not accepted; use a finite number"):
        generate(missing, out_dir=tmp_path, options=GenerateOptions(n=1), top_p=0.0)
    assert not any(tmp_path.iterdir())


def test_every_registered_model_declares_a_sampler_generate_has():
    for name in registry.names():
        assert registry.model_class(name).sampler in SAMPLERS, name
    assert set(KV_CACHE) == set(KV_CACHE_CHOICES)


def test_note_model_generates_notes(runs, datasets, tmp_path):
    primer = sorted((datasets / "nottingham").glob("*.mid"))[10]
    result = generate(runs["lstm-multihead"], out_dir=tmp_path, n=2, max_tokens=40, seed=0,
                      primer=primer, primer_bars=1, noise=0.1, device="cpu")  # fmt: skip
    primer_notes = load_midi(result.paths[0]).note_num() - result.generated[0]
    for path, generated in zip(result.paths, result.generated):
        score = load_midi(path)
        assert 0 < generated <= 40 and score.note_num() == primer_notes + generated
        _assert_ends_on_a_bar_line(score)
    assert result.grammar_errors == []


def _assert_ends_on_a_bar_line(score) -> None:
    """The file ends on a bar line of its 4/4 (its end marker), no note sounding past it."""
    from midiforge.sampling.musical import END_MARKER

    bar = 4 * score.ticks_per_quarter
    ends = [n.time + n.duration for t in score.tracks for n in t.notes]
    assert [m.text for m in score.markers] == [END_MARKER]
    line = score.markers[0].time
    assert line % bar == 0 and max(ends) <= line and score.end() == line


def test_a_free_length_note_sample_ends_on_the_last_bar_line_it_reaches(runs, tmp_path):
    from midiforge.sampling.generate import _sampler_for

    loaded = load_run(runs["lstm-multihead"], device="cpu")
    raw = sample_notes(loaded.model, n=3, max_notes=120, seed=1)  # what is drawn, uncut
    # as drawn: not moved onto a pickup (style_parts) nor steered past the window (key_memory)
    opts = GenerateOptions(n=3, max_tokens=120, seed=1, device="cpu", style_parts=False,
                           key_memory=False)  # fmt: skip
    scores, generated, _ = _sampler_for(loaded.model)(loaded, opts, None, None)
    for notes, score, count in zip(raw, scores, generated):
        _assert_ends_on_a_bar_line(score)
        line = score.markers[0].time / score.ticks_per_quarter
        starts = np.rint(notes[:, FIELD["onset"]] * score.ticks_per_quarter)
        assert line == 4 * (starts.max() // (4 * score.ticks_per_quarter))  # the last one
        assert count == int((starts < line * score.ticks_per_quarter).sum()) < 120


def test_note_model_draws_its_rhythm_from_the_time_classes(runs):
    model = load_run(runs["lstm-multihead"]).model
    assert model.config.time_head == "classes"  # the default of a new run
    bins = np.array(TIME_BINS)

    def drawn(seed: int = 0, **options) -> np.ndarray:
        rows = sample_notes(model, n=3, max_notes=60, seed=seed, label=0, **options)
        return np.concatenate([r[:, [FIELD["delta"], FIELD["duration"]]] for r in rows])

    free = drawn()
    on_bins = np.isclose(free[:, :, None], bins, atol=1e-4).any(-1)  # float32 onset sums
    assert on_bins[:, 0].all()  # every onset gap is one of the bins ...
    plays = model.gap_classes(0).nonzero()[:, 0].numpy()  # ... that the style's notes take
    assert np.isin(model.time_classes(torch.from_numpy(free[:, 0])).numpy(), plays).all()
    assert model.gap_classes(0).sum() < len(bins)
    assert (on_bins[:, 1] | (free[:, 1] <= 0.05)).all()  # a 0 duration is floored
    assert len(np.unique(free[:, 0])) > 2  # a drawn rhythm, not one point a step
    greedy = drawn(temperature=0.0)  # the most likely bin: the same whatever the seed
    assert (greedy == drawn(seed=5, temperature=0.0)).all() and not (greedy == free).all()


def test_a_median_time_head_snaps_onto_the_styles_onset_gaps():
    model = registry.build("lstm-multihead", {"d_pitch": 16, "d_hidden": 32, "n_layers": 1,
                                              "n_labels": 2, "time_head": "median",
                                              "chain_heads": False})  # fmt: skip
    model.delta_values = {"all": [0.0, 0.5, 1.0], "0": [0.0, 1.0], "1": [0.0, 0.25, 0.5]}

    def gaps(label: int) -> np.ndarray:  # time noise: raw gaps spread over a continuum
        rows = sample_notes(model, n=3, max_notes=60, seed=label, label=label, time_noise=0.5)
        return np.concatenate([r[:, FIELD["delta"]] for r in rows])

    for label in (0, 1):
        assert np.isin(gaps(label), model.delta_values[str(label)]).all()
    model.delta_values = {}  # a run saved before the gaps were stored: unsnapped
    assert not np.isin(gaps(0), [0.0, 1.0]).all()


def test_a_run_saved_before_the_time_classes_loads_its_median_head(dataset, tmp_path):
    from midiforge.training.run import train

    run = train(dataset, model="lstm-multihead", overrides=TRAIN + TINY["lstm-multihead"]
                + ["model.time_head=median", "model.chain_heads=false", "train.steps=2"],
                run_dir=tmp_path / "old",
                device="cpu")  # fmt: skip
    config = run / "config.yaml"
    text = config.read_text()
    assert "time_head: median" in text
    old = text.replace("  time_head: median\n", "").replace("  chain_heads: false\n", "")
    config.write_text(old)  # as an older midiforge wrote
    loaded = load_run(run).model
    assert loaded.config.time_head == "median" and loaded.time_head.out_features == 2
    assert len(sample_notes(loaded, n=1, max_notes=5, seed=0)[0]) == 5


def test_cli_generate(runs, tmp_path, capsys):
    code = main(["generate", str(runs["transformer"]), "-o", str(tmp_path), "--n", "1",
                 "--max-tokens", "32", "--seed", "3", "--device", "cpu",
                 "--kv-cache", "float32"])  # fmt: skip
    assert code == 0 and (tmp_path / "sample_000.mid").is_file()
    assert "sample_000.mid" in capsys.readouterr().out
    assert main(["generate", str(tmp_path / "missing"), "-o", str(tmp_path)]) == 2


def test_a_merged_run_plays_its_one_instrument_and_names_it(runs, tmp_path):
    with pytest.raises(MidiforgeError, match=r"never learned 'bass'; it knows Acoustic Grand "
                       r"Piano \(0\)$"):  # fmt: skip
        generate(runs["transformer"], out_dir=tmp_path, n=1, max_tokens=8, instruments="bass")
    result = generate(runs["transformer"], out_dir=tmp_path, n=1, max_tokens=96, seed=0,
                      style="folk", top_k=20, grammar_mask=True, instruments="piano",
                      device="cpu")  # fmt: skip
    tracks = load_midi(result.paths[0]).tracks
    assert [(t.program, t.is_drum, t.name) for t in tracks] == [(0, False, "Acoustic Grand Piano")]


def test_samples_with_no_notes_are_drawn_again_and_the_others_kept(runs):
    from midiforge.sampling.generate import _sampler_for, redraw_empty

    loaded = load_run(runs["transformer"], device="cpu")
    sampler = _sampler_for(loaded.model)
    call = (loaded, GenerateOptions(n=8, max_tokens=8, seed=0, device="cpu"), None, None)
    drawn = sampler(*call)  # 8 tokens: a nearly untrained model often ends before a note
    empty = [i for i, score in enumerate(drawn[0]) if score.note_num() == 0]
    assert 0 < len(empty) < 8
    full = {i: score for i, score in enumerate(drawn[0]) if i not in empty}
    left = redraw_empty(sampler, call, drawn, tries=10)
    assert left == sum(score.note_num() == 0 for score in drawn[0]) < len(empty)
    assert all(drawn[0][i] is score for i, score in full.items())  # kept, not drawn again
    assert len(drawn[0]) == len(drawn[1]) == len(drawn[2]) == 8
