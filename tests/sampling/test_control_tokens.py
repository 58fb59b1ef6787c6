"""Learned controls at sampling time, on a tiny transformer really trained a few steps on POP909
songs (their chords from the annotations beside them) and three band songs (the detector's),
prepared with ``--controls chords,density,polyphony``: the grammar places control tokens, the
sampler forces the requested ones after every bar line of 20 pieces, leaves them to the model
otherwise, keeps the chord steer on top unless told not to; infilling and harmonizing run on
such a model; a model without the tokens refuses --density / --polyphony in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from midiforge.cli import main
from midiforge.data.controls import control_tokens
from midiforge.data.prepare import prepare, tokenizer_for
from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.sampling.autoregressive import sample
from midiforge.sampling.generate import generate
from midiforge.sampling.grammar import TypeGrammar
from midiforge.sampling.musical import Musical
from midiforge.sampling.token_rules import MusicalConstraint, musical_constraints
from midiforge.store.run_dir import load_run

from .conftest import BAND_FOLDER, train_tiny
from .test_infill import check_infilled

SONGS = [f"{i:03d}" for i in range(1, 9)]  # POP909 songs, each with its chord_midi.txt
BAND = ["Aicha.mid", "Funkytown.mid", "Mr. Blue Sky.mid"]  # band songs: the detector's chords
TRAIN = ["train.batch_size=4", "train.seq_len=32", "train.window=32", "train.lr=3e-3",
         "train.warmup_steps=2", "train.eval_every=100", "train.eval_batches=1",
         "train.steps=8"]  # fmt: skip
TINY = {"transformer": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2",
                        "model.d_ff=64", "model.max_seq_len=64", "model.max_rel=32"]}  # fmt: skip
PIECES = 20
CHORDS, CHORD_TOKENS = "Am F C G", ["Chord_A:min", "Chord_F:maj", "Chord_C:maj", "Chord_G:maj"]
CONTROL_KINDS = ("Chord", "Density", "Polyphony")


@pytest.fixture(scope="module")
def run(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("pop")
    for song in SONGS:  # POP909's layout: NNN/NNN.mid beside NNN/chord_midi.txt
        (src / song).mkdir()
        for name in (f"{song}.mid", "chord_midi.txt"):
            (src / song / name).symlink_to((datasets / "pop909" / song / name).resolve())
    (src / "band").mkdir()  # instruments besides the piano, for an accompaniment to play on
    for name in BAND:
        (src / "band" / name).symlink_to((datasets / BAND_FOLDER / name).resolve())
    data = tmp_path_factory.mktemp("ds") / "ds"
    prepare(src, data, controls=["chords", "density", "polyphony"], jobs=1, quiet=True)
    return train_tiny({"transformer": data}, TINY, TRAIN, tmp_path_factory.mktemp("runs"))[
        "transformer"]  # fmt: skip


@pytest.fixture(scope="module")
def loaded(run: Path):
    return load_run(run, device="cpu")


def _sample(loaded, musical: Musical, max_tokens: int, n: int = PIECES) -> list[list[str]]:
    """What ``generate`` samples for a token run (grammar + musician's rules), as tokens."""
    tok = loaded.tokenizer
    start = [tok.vocab["BOS_None"]]
    rules = musical_constraints(tok, musical, max_tokens=max_tokens, primer_ids=start)
    seqs = sample(loaded.model, n=n, max_tokens=max_tokens, primer_ids=start, seed=0,
                  grammar=TypeGrammar(tok), eos_id=tok.vocab["EOS_None"],
                  constraints=rules)  # fmt: skip
    names = {i: t for t, i in tok.vocab.items()}
    return [[names[i] for i in seq] for seq in seqs]


def _kind(token: str) -> str:
    return token.split("_")[0]


def test_the_grammar_puts_controls_after_the_bar_s_time_signature_in_order(loaded):
    tok = loaded.tokenizer
    grammar = TypeGrammar(tok)
    names = {i: t for t, i in tok.vocab.items()}

    def after(token: str) -> set[str]:
        row = grammar.after[tok.vocab[token]]
        return {_kind(names[i]) for i in range(len(names)) if row[i]}

    assert set(CONTROL_KINDS) <= after("TimeSig_4/4")
    assert after("Chord_A:min") & set(CONTROL_KINDS) == {"Density", "Polyphony"}
    assert after("Density_3") & set(CONTROL_KINDS) == {"Polyphony"}
    for token in ("Polyphony_2", "Bar_None", "Position_0", "Pitch_60", "Duration_1.0.8"):
        assert not after(token) & set(CONTROL_KINDS), token
    assert {"Position", "Bar"} <= after("Polyphony_2")  # then the bar goes on as after TimeSig


def test_requested_controls_follow_every_bar_line_of_20_pieces(loaded):
    musical = Musical(chords=CHORDS, density="8 2", polyphony="2", bars=4)
    density, polyphony = ["Density_3", "Density_1"], "Polyphony_3"  # 8 notes: 5-8; 2: <=2.5
    for tokens in _sample(loaded, musical, max_tokens=160):
        bars = [k for k, t in enumerate(tokens) if t == "Bar_None"]
        assert len(bars) == 4  # the length rule still closes the piece on bar 4
        for b, k in enumerate(bars):
            head = tokens[k + 1 : k + 5]
            if head[:1] == ["EOS_None"] or k + 1 == len(tokens):
                continue  # the piece ends on this bar line
            assert _kind(head[0]) == "TimeSig", head
            assert head[1:] == [CHORD_TOKENS[b % 4], density[b % 2], polyphony], (b, head)
            assert k + 5 == len(tokens) or _kind(tokens[k + 5]) not in CONTROL_KINDS


def test_20_pieces_with_chords_only_carry_each_bar_s_chord_token(loaded):
    written = 0
    for tokens in _sample(loaded, Musical(chords=CHORDS), max_tokens=120):
        bars = [k for k, t in enumerate(tokens) if t == "Bar_None"]
        for b, k in enumerate(bars):
            if k + 2 < len(tokens):
                assert tokens[k + 2] == CHORD_TOKENS[b % 4], (b, tokens[k : k + 4])
                written += 1
    assert written >= PIECES


def test_without_requests_the_model_writes_its_own_controls_in_order(loaded):
    tok = loaded.tokenizer
    assert musical_constraints(tok, Musical(), max_tokens=200) == []  # nothing forced
    for tokens in _sample(loaded, Musical(), max_tokens=200):
        for k, t in enumerate(tokens):
            if _kind(t) in CONTROL_KINDS:  # what it writes of its own keeps their order
                before = _kind(tokens[k - 1])
                assert before == "TimeSig" or (
                    before in CONTROL_KINDS
                    and CONTROL_KINDS.index(before) < CONTROL_KINDS.index(_kind(t))
                ), tokens[k - 3 : k + 1]
    # with other rules on (a length) and no control asked, every control id stays open
    rule = MusicalConstraint(tok, Musical(bars=4), max_tokens=64)
    assert rule.controls is None
    rule.start(torch.tensor([[tok.vocab[t] for t in ("BOS_None", "Bar_None", "TimeSig_4/4")]]))
    (row,) = rule.rows()
    grammar = TypeGrammar(tok).mask_bits([tok.vocab["TimeSig_4/4"]])[0]
    for token in control_tokens(["chords", "density", "polyphony"]):
        assert (row & grammar) >> tok.vocab[token] & 1, token


def test_the_chord_steer_stays_on_top_unless_turned_off(loaded):
    tok = loaded.tokenizer
    both = MusicalConstraint(tok, Musical(chords=CHORDS), max_tokens=64)
    forced_only = MusicalConstraint(tok, Musical(chords=CHORDS, chord_steer=False), max_tokens=64)
    assert both.chords is not None and both.controls is not None
    assert forced_only.chords is None and forced_only.controls is not None
    ids = torch.tensor([[tok.vocab[t] for t in ("BOS_None", "Bar_None", "TimeSig_4/4")]])
    forced_only.start(ids)
    (row,) = forced_only.rows()
    assert row == 1 << tok.vocab["Chord_A:min"]  # a mask of one id


def test_a_model_without_control_tokens_refuses_density_and_polyphony():
    plain = tokenizer_for("remi", "all")
    for name, value in (("density", "8"), ("polyphony", "2")):
        with pytest.raises(MidiforgeError) as caught:
            MusicalConstraint(plain, Musical(**{name: value}), max_tokens=64)
        text = str(caught.value)
        assert text.startswith(f"{name}: '{value}' was given, but this model was not trained "
                               f"with {name} tokens") and "\n" not in text  # fmt: skip
    assert MusicalConstraint(plain, Musical(chords=CHORDS), max_tokens=64).chords is not None
    with pytest.raises(MidiforgeError, match=r"^chord_steer: off, but this model has no chord"):
        MusicalConstraint(plain, Musical(chords=CHORDS, chord_steer=False), max_tokens=64)
    partial = tokenizer_for("remi", "all", "programs", ["chords"])
    assert len(partial) == len(plain) + len(control_tokens(["chords"]))
    with pytest.raises(MidiforgeError, match=r"^density: .*not trained with density tokens"):
        MusicalConstraint(partial, Musical(chords=CHORDS, density="4"), max_tokens=64)


def test_a_bad_density_is_a_one_line_error_naming_the_forms(tmp_path, capsys):
    code = main(["generate", str(tmp_path / "no-run"), "-o", str(tmp_path), "--density", "lots"])
    err = capsys.readouterr().err
    assert code == 2 and "density: 'lots' is not accepted; give notes per bar" in err
    assert len(err.strip().splitlines()) == 1


def test_infilling_and_harmonizing_run_on_a_controls_model(run, datasets, tmp_path):
    song = datasets / "pop909" / "009" / "009.mid"
    result = generate(run, out_dir=tmp_path / "infill", infill=song, bars="3-4", chords="Am F",
                      n=1, seed=0, max_tokens=400, device="cpu")  # fmt: skip
    check_infilled(song, result.paths[0], 3, 4)
    melody = sorted((datasets / "nottingham").glob("*.mid"))[0]
    result = generate(run, out_dir=tmp_path / "harmonize", harmonize=melody, n=1, seed=0,
                      device="cpu")  # fmt: skip
    written, tune = load_midi(result.paths[0]), load_midi(melody)
    assert written.note_num() > tune.note_num() and len(written.tracks) > len(tune.tracks)
