"""The musician's hard constraints for every family: tiny transformer, GRU, LSTM (with Program
tokens), multi-head LSTM and diffusion runs trained a few steps on real POP909/Nottingham files
(barely trained models are the hardest case: they would put anything anywhere), 20 pieces each,
every note of every written file checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from midiforge.cli import main
from midiforge.data.corpus import clean_score
from midiforge.data.encode import build_tokenizer, ids_to_score, score_to_ids, train_bpe
from midiforge.data.prepare import prepare
from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.metrics.adherence import length_bars, pitched_notes, polyphony
from midiforge.models.note_features import Rhythm
from midiforge.pitches import scale_pitches
from midiforge.sampling.generate import generate
from midiforge.sampling.musical import END_MARKER, Musical
from midiforge.sampling.note_rules import DiffusionRules, end_on_last_bar_line
from midiforge.sampling.remi_state import RemiState, RemiVocab, check_tokenizer
from midiforge.schema import FIELD
from midiforge.store.run_dir import load_run

from .conftest import link_pop_and_folk, train_tiny

N_PER_CORPUS = 5
PIECES = 20
TRAIN = ["train.batch_size=4", "train.seq_len=32", "train.window=32", "train.lr=3e-3",
         "train.warmup_steps=2", "train.eval_every=10", "train.eval_batches=1",
         "train.steps=10"]  # fmt: skip
RNN = ["model.d_embed=32", "model.d_hidden=32", "model.n_layers=1"]
TINY = {
    "transformer": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64",
                    "model.max_seq_len=64", "model.max_rel=32"],
    "gru": RNN,
    "lstm": RNN,
    "lstm-multihead": ["model.d_pitch=16", "model.d_hidden=32", "model.n_layers=1"],
    "diffusion": ["model.length=32", "model.channels=16", "model.attention_layers=1",
                  "model.attention_heads=2", "model.time_dim=32"],
}  # fmt: skip
FAMILY_OPTIONS = {"diffusion": {"steps": 8}}  # DDIM: a few steps, not all 1000
PROGRAMS = {"lstm"}  # this family's run is prepared with --tracks all: Program tokens
ASK = {"key": "D minor", "range": "C3-C6", "max_polyphony": 3, "bars": 4}
LOW, HIGH = 48, 84  # C3, C6


@pytest.fixture(scope="session")  # shared with test_chords_steer: trained once
def sources(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return link_pop_and_folk(datasets, tmp_path_factory.mktemp("src"), N_PER_CORPUS)


@pytest.fixture(scope="session")
def runs(sources: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    data = {}
    for tracks in ("merge", "all"):
        data[tracks] = root / f"ds-{tracks}"
        prepare(sources, data[tracks], labels_from="folder", jobs=1, quiet=True, tracks=tracks)
    by_family = {name: data["all" if name in PROGRAMS else "merge"] for name in TINY}
    return train_tiny(by_family, TINY, TRAIN, root)


def _merged(score):
    """One track, as ``prepare --tracks merge`` writes it."""
    return clean_score(score, programs=None, drums=False, tracks="merge", max_note_beats=None,
                       max_gap_beats=None)[0]  # fmt: skip


def _bar_ticks(score) -> int:
    (ts,) = score.time_signatures  # one meter: the length rule keeps the first
    return score.ticks_per_quarter * 4 * ts.numerator // ts.denominator


@pytest.mark.parametrize("family", sorted(TINY))
def test_every_note_of_20_pieces_keeps_key_range_polyphony_and_bars(runs, family, tmp_path):
    result = generate(runs[family], out_dir=tmp_path, n=PIECES, seed=0, max_tokens=300,
                      device="cpu", **FAMILY_OPTIONS.get(family, {}), **ASK)  # fmt: skip
    scale = np.array(scale_pitches(ASK["key"]))
    written = 0
    for path in result.paths:
        score = load_midi(path)  # the file as written, re-parsed
        notes = pitched_notes(score)
        written += len(notes)
        assert scale[notes[:, 1]].all(), path
        assert ((notes[:, 1] >= LOW) & (notes[:, 1] <= HIGH)).all(), path
        assert polyphony(score) <= ASK["max_polyphony"], path
        end = ASK["bars"] * _bar_ticks(score)
        assert (notes[:, 3] <= end).all(), path  # no note runs past the last bar line
        assert score.end() == end and length_bars(score) == ASK["bars"], path
        assert [m.text for m in score.markers] == [END_MARKER]
    assert written >= PIECES * 4, "the rules should leave the model notes to write"


def _rows(*notes: tuple[float, float]) -> np.ndarray:
    rows = np.zeros((len(notes), len(FIELD)), np.float32)
    rows[:, FIELD["onset"]], rows[:, FIELD["duration"]] = np.array(notes).T
    rows[:, FIELD["pitch"]] = 60 + np.arange(len(notes))
    return rows


def test_a_free_length_sample_is_cut_at_its_last_bar_line_and_its_primer_kept():
    primer = _rows((0.0, 6.0))  # rings past the line: the primer's notes stay as they are
    new = _rows((1.0, 1.0), (3.5, 2.0), (6.0, 2.5), (8.0, 1.0), (9.0, 0.5))
    cut, end = end_on_last_bar_line(np.concatenate([primer, new]), first_new=1)
    assert end == 8.0  # the last onset, 9.0, is in the bar from 8
    assert cut[:, FIELD["onset"]].tolist() == [0.0, 1.0, 3.5, 6.0]
    assert cut[:, FIELD["duration"]].tolist() == [6.0, 1.0, 2.0, 2.0]  # 6 + 2.5 ends on 8
    assert cut[:, FIELD["pitch"]].tolist() == [60, 60, 61, 62]
    within = _rows((4.0, 1.0), (5.0, 3.0))  # all in one bar: nothing to cut at
    same, none = end_on_last_bar_line(within, first_new=0)
    assert none is None and np.array_equal(same, within)
    kept, no_end = end_on_last_bar_line(primer, first_new=1)  # no new notes
    assert no_end is None and np.array_equal(kept, primer)


def test_chromatic_passing_notes_are_rationed_and_short(runs, tmp_path):
    share = 0.2
    result = generate(runs["transformer"], out_dir=tmp_path, n=PIECES, seed=1, max_tokens=200,
                      key="C major", chromatic=share, device="cpu")  # fmt: skip
    scale = np.array(scale_pitches("C major"))
    off_total = 0
    for path in result.paths:
        score = load_midi(path)
        notes = pitched_notes(score)
        off = ~scale[notes[:, 1]]
        off_total += int(off.sum())
        assert off.sum() <= share * len(notes) + 1e-9, path
        assert (notes[off, 3] - notes[off, 2] <= score.ticks_per_quarter).all(), path
    assert off_total > 0, "a share above 0 should let some passing notes through"


def test_seconds_is_the_whole_bars_that_fit(runs, tmp_path):
    seconds = 5.0  # 10 beats at 120 bpm: two bars of 4/4, three of 3/4, five of 2/4
    result = generate(runs["gru"], out_dir=tmp_path, n=8, seed=2, max_tokens=200,
                      seconds=seconds, device="cpu")  # fmt: skip
    for path in result.paths:
        score = load_midi(path)
        bar_seconds = _bar_ticks(score) / score.ticks_per_quarter * 0.5
        length = score.end() / score.ticks_per_quarter * 0.5
        assert length <= seconds < length + bar_seconds and length_bars(score).is_integer()
        assert (pitched_notes(score)[:, 3] <= score.end()).all()


def test_a_range_per_instrument_holds_for_its_programs(runs, tmp_path):
    result = generate(runs["lstm"], out_dir=tmp_path, n=8, seed=3, max_tokens=200,
                      range="piano:C4-C5,C2-C3", device="cpu")  # fmt: skip
    for path in result.paths:
        notes = pitched_notes(load_midi(path))
        piano = notes[:, 0] < 8  # the Piano family: the programs "piano" can mean
        assert ((notes[piano, 1] >= 60) & (notes[piano, 1] <= 72)).all()
        assert ((notes[~piano, 1] >= 36) & (notes[~piano, 1] <= 48)).all()


@pytest.mark.parametrize("programs", [False, True])
def test_the_state_follows_miditok_decoding_of_real_files(datasets, programs):
    tok = build_tokenizer("remi", use_programs=programs)
    vocab = RemiVocab(tok)
    files = [datasets / "pop909" / "002" / "002.mid",
             *sorted((datasets / "nottingham").glob("ashover1*.mid"))[:3]]  # fmt: skip
    for path in files:  # 2/4, 3/4 → 2/4, 4/4, 6/8 among them
        score = load_midi(path)
        if not programs:
            score = _merged(score)
        ids = score_to_ids(tok, score)
        state = RemiState(vocab, scale=np.ones(128, bool))
        state.start(torch.tensor([[tok.vocab["BOS_None"]]]))
        mine = []
        for i in ids:
            tick, pitch, den = int(state.tick[0]), int(state.pending[0]), int(state.den[0])
            state.step(np.array([i]))
            if pitch >= 0 and state.pending[0] == -1:  # a Duration completed the note
                mine.append((tick, tick + int(vocab.dur_ticks[den, i]), pitch))
        theirs = [(n.time, n.end, n.pitch) for t in ids_to_score(tok, ids).tracks for n in t.notes]
        assert sorted(mine) == sorted(theirs) and len(mine) > 100, path


def test_bad_key_range_or_length_is_a_one_line_error_naming_the_forms(runs, tmp_path):
    run = runs["transformer"]
    cases = [({"key": "H minor"}, "key: 'H minor' is not a key; use a tonic A-G"),
             ({"key": "C majr"}, r"modes?|dorian"),
             ({"range": "C3-"}, "range: 'C3-' is not a pitch range; use LOW-HIGH"),
             ({"range": "C6-C3"}, "goes down"),
             ({"range": "kazoo:C3-C6"}, "kazoo"),
             ({"bars": 0}, r"bars: 0 is not accepted; use a whole number >= 1"),
             ({"bars": 2, "seconds": 4.0}, "give one length, not both"),
             ({"key": "C major", "range": "C#4-C#4"}, "has no pitch in the range C#4-C#4"),
             ({"bars": 200, "max_tokens": 50}, "max_tokens: 50 tokens cannot hold")]  # fmt: skip
    for ask, message in cases:
        with pytest.raises(MidiforgeError, match=message) as err:
            generate(run, out_dir=tmp_path, n=1, device="cpu", **ask)
        assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("*.mid"))


def test_the_cli_exits_2_with_the_message(runs, tmp_path, capsys):
    code = main(["generate", str(runs["gru"]), "-o", str(tmp_path), "--key", "H minor"])
    assert code == 2 and "key: 'H minor' is not a key; use a tonic" in capsys.readouterr().err
    code = main(["generate", str(runs["gru"]), "-o", str(tmp_path), "--range", "48-200"])
    assert code == 2 and "outside MIDI pitches 0..127" in capsys.readouterr().err


def test_other_tokenizations_and_bpe_are_refused_by_name(datasets):
    with pytest.raises(MidiforgeError, match="tokenizer is TSD; these rules read REMI"):
        check_tokenizer(build_tokenizer("tsd"))
    tok = build_tokenizer("remi")
    path = sorted((datasets / "nottingham").glob("*.mid"))[0]
    ids = np.asarray(score_to_ids(tok, _merged(load_midi(path))))
    train_bpe(tok, lambda: [ids], 1, len(tok) + 20)
    with pytest.raises(MidiforgeError, match="uses BPE, whose merged ids hide pitches"):
        check_tokenizer(tok)


def test_diffusion_projection_lands_every_step_on_an_allowed_pitch(runs):
    model = load_run(runs["diffusion"], device="cpu").model
    rules = DiffusionRules(Musical(key="F# dorian", range="C4-C5"), model.scaler)
    x = torch.randn(
        3, model.n_features, model.config.length, generator=torch.Generator().manual_seed(0)
    )
    projected = rules.project(x)
    assert torch.equal(projected[:, 1:], x[:, 1:])  # only the pitch channel moves
    pitches = model.scaler.decode(projected[0].T.numpy())[:, 0].astype(int)
    allowed = set(np.flatnonzero(Musical(key="F# dorian", range="C4-C5").pitch_table()[1]))
    assert set(pitches) <= allowed and len(set(pitches)) > 1


def test_diffusion_chord_rule_reads_the_onsets_the_decoder_writes(runs):
    model = load_run(runs["diffusion"], device="cpu").model
    gaps = (0.0, 0.25, 0.5, 1.0)  # a style's onset gaps (fit_time_values)
    x = torch.randn(
        2, model.n_features, model.config.length, generator=torch.Generator().manual_seed(1)
    ).clamp(-1, 1)
    onset = FIELD["onset"]
    rhythms = (Rhythm(gaps=gaps), Rhythm(gaps=gaps, grid=0.5), Rhythm())
    reads = []
    for rhythm in rhythms:
        rules = DiffusionRules(Musical(chords="Am F"), model.scaler, rhythm=rhythm)
        rules.window(None, 0)
        read = rules._onsets(x)
        written = [model.scaler.decode(row.T.numpy(), rhythm=rhythm)[:, onset] for row in x]
        assert np.allclose(read, np.stack(written), atol=1e-6)
        reads.append(read)
        rules.window(np.array([3.3, 7.0]), 4)  # a continued window: 4 known notes
        read = rules._onsets(x)[:, 4:]
        written = [
            model.scaler.decode(row[:, 4:].T.numpy(), rhythm=rhythm, start=s)[:, onset]
            for row, s in zip(x, (3.3, 7.0))
        ]
        assert np.allclose(read, np.stack(written), atol=1e-6)
    gridded = reads[1] * 2
    assert np.allclose(gridded, np.rint(gridded))  # every onset on an eighth
    assert not np.allclose(reads[0], reads[2])  # the gaps move the onsets
    assert not np.allclose(reads[0], reads[1])  # so does the grid


def test_the_shipped_model_ends_in_its_last_bar_instead_of_filling_it(tmp_path):
    """In the last bar, the model's wish for a new bar becomes EOS (LengthRule.steer): before,
    the shipped model piled 124-227 notes into bar 8 of `--bars 8` until its budget ran out."""
    from midiforge.sampling.generate import generate

    result = generate(out_dir=tmp_path, n=4, bars=4, seed=0, device="cpu", max_tokens=1024)
    assert max(result.generated) < 1000, result.generated  # ended by EOS, not the budget
    for path in result.paths:
        score = load_midi(path)
        sig = score.time_signatures[0]  # the model picks one meter per piece
        bar = score.ticks_per_quarter * 4 * sig.numerator // sig.denominator
        onsets = np.array([n.time for t in score.tracks for n in t.notes])
        per_bar = np.bincount(np.minimum(onsets // bar, 3).astype(int), minlength=4)
        assert per_bar[3] <= 2 * per_bar[:3].max() + 4, (path.name, per_bar)
