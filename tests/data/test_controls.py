"""Learned controls (``prepare --controls``) on real music: labels against POP909's annotation
and against the detector on a Nottingham tune, where the tokens go, the round trip, dropout
rates on a real folder, determinism, the tokenizer file, transposition and the options' errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from midiforge.chords import harte_root, harte_tones, read_chord_labels
from midiforge.data import controls
from midiforge.data.augment import TokenShifter
from midiforge.data.corpus import clean_score
from midiforge.data.encode import control_ids, ids_to_score, score_to_array
from midiforge.data.prepare import prepare, tokenizer_for
from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.metrics.adherence import bar_bounds, chord_adherence, detected_chords
from midiforge.pitches import SHARP_NAMES
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.tokenizer_file import ADDED_TOKENS, load_tokenizer, save_tokenizer

ALL = ["chords", "density", "polyphony"]
KEEP_ALL = "0" * 31 + "1"  # a content hash whose dropout draw keeps the piece (checked below)
DROPOUT_FILES = 240  # Nottingham tunes for the dropout rates: ~48 pieces without controls


def _cleaned(path: Path, tracks: str = "all"):
    score, _ = clean_score(load_midi(path), programs=None, drums=True, tracks=tracks,
                           max_note_beats=16.0, max_gap_beats=16.0)  # fmt: skip
    return score


@pytest.fixture(scope="module")
def tok():
    return tokenizer_for("remi", "all", "programs", ALL)


def test_the_vocabulary_is_fixed_and_named():
    tokens = controls.control_tokens(ALL)
    assert len(tokens) == 85 + 7 + 6
    assert tokens[:3] == ["Chord_N", "Chord_C:maj", "Chord_C:min"]
    assert "Chord_A:min" in tokens and "Chord_F#:min7" in tokens
    assert tokens[85:] == [f"Density_{k}" for k in range(7)] + [f"Polyphony_{k}" for k in range(6)]
    assert controls.control_tokens(["polyphony", "chords"])[0] == "Chord_N"  # stream order
    # a Chord value is a Harte label: its tones read back
    assert harte_tones("A:min") == frozenset({9, 0, 4}) and harte_tones("G:7") == {7, 11, 2, 5}
    with pytest.raises(MidiforgeError, match=r"controls: 'tempo'.*chords, density, polyphony"):
        controls.control_names(["tempo"])


@pytest.mark.parametrize(("symbol", "value"), [("Am", "A:min"), ("F#m7", "F#:min7"),
    ("Bb/D", "A#:maj"), ("Gsus4", "G:maj"), ("C6", "C:maj"), ("G9", "G:7"), ("Edim", "E:dim"),
    ("Caug", "C:aug"), ("Cmaj7", "C:maj7"), ("N", "N")])  # fmt: skip
def test_a_typed_chord_reads_as_the_nearest_vocabulary_chord(symbol, value):
    assert controls.progression_values(symbol) == [value]


def test_buckets_have_their_documented_edges():
    notes = [0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 200]
    assert controls.density_bucket(notes).tolist() == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    per_onset = [1.0, 1.2, 1.5, 1.6, 2.5, 3.0, 3.5, 3.6, 9.0]
    assert controls.polyphony_bucket(per_onset).tolist() == [1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert controls.request_values("density", controls.parse_density("0, 8 | 40")) == [
        "0",
        "3",
        "6",
    ]
    for bad, name in (
        ("-1", "density"),
        ("2.5", "density"),
        ("0.5", "polyphony"),
        ("x", "density"),
    ):
        with pytest.raises(MidiforgeError, match=f"^{name}: .*repeated when the piece is longer$"):
            getattr(controls, f"parse_{name}")(bad)


def test_pop909_bars_take_the_annotated_chord(datasets: Path, tok):
    folder = datasets / "pop909" / "001"
    score = tok.preprocess_score(_cleaned(folder / "001.mid"))
    rows = read_chord_labels(folder / "chord_midi.txt")
    labels = controls.bar_labels(score, rows)
    assert labels.annotated and len(labels) == len(bar_bounds(score))
    # where one annotated triad covers a whole bar, the bar's label is that triad: checked
    # against the annotation's own seconds, by the tempo (one tempo in this song)
    (tempo,) = score.tempos
    per_tick = tempo.mspq / 1e6 / score.ticks_per_quarter  # seconds per tick
    checked = 0
    for bar, (lo, hi) in enumerate(bar_bounds(score).tolist()):
        cover = [lab for a, b, lab in rows if a <= lo * per_tick + 1e-3
                 and b >= hi * per_tick - 1e-3]  # fmt: skip
        quality = cover[0].partition(":")[2] if len(cover) == 1 else ""
        if quality in ("maj", "min"):
            expected = f"{SHARP_NAMES[harte_root(cover[0])]}:{quality}"
            assert labels.chords[bar] == expected, (bar, cover)
            checked += 1
    assert checked >= 15, checked  # 2/4 bars: chords change inside most of them
    # density and polyphony: counted from the bar's notes directly
    notes = np.concatenate([t.notes.numpy()["time"] for t in score.tracks if not t.is_drum])
    for bar in (10, 40, 80):
        lo, hi = bar_bounds(score)[bar]
        inside = notes[(notes >= lo) & (notes < hi)]
        assert labels.density[bar] == str(int(controls.density_bucket(len(inside))))
        mean = len(inside) / len(np.unique(inside))
        assert labels.polyphony[bar] == str(int(controls.polyphony_bucket(mean)))


def test_a_nottingham_tune_takes_the_detector_s_chords(datasets: Path, tok):
    path = sorted((datasets / "nottingham").glob("*.mid"))[0]
    assert controls.find_annotation(path) is None
    score = tok.preprocess_score(_cleaned(path))
    labels = controls.bar_labels(score)
    assert not labels.annotated
    detected = detected_chords(score)  # the adherence metric's own labels
    assert [controls.progression_values(d)[0] for d in detected] == labels.chords
    # the tune's own chord track plays them: most of its note-time is on the labels' tones
    assert chord_adherence(score, " ".join(detected)) > 0.7


def test_controls_follow_each_bar_line_and_decode_away(datasets: Path, tok):
    path = datasets / "pop909" / "003" / "003.mid"
    score = _cleaned(path)
    plain = score_to_array(tok, score)
    assert controls.kept(400, 3, KEEP_ALL).any()  # this seed keeps the piece's controls
    ids = controls.encode_with_controls(tok, score, ALL, seed=KEEP_ALL, source=path)
    names = {i: t for t, i in tok.vocab.items()}
    kinds = [names[int(i)].split("_")[0] for i in ids]
    bars = [k for k, kind in enumerate(kinds) if kind == "Bar"]
    assert len(bars) == (plain == tok.vocab["Bar_None"]).sum() > 100
    for k in bars:  # Bar TimeSig, then the kept controls in order, then no control
        assert kinds[k + 1] == "TimeSig"
        run = []
        while kinds[k + 2 + len(run)] in ("Chord", "Density", "Polyphony"):
            run.append(kinds[k + 2 + len(run)])
        assert run == sorted(run, key=["Chord", "Density", "Polyphony"].index)
        assert len(set(run)) == len(run)
    written = sum(kinds.count(c) for c in ("Chord", "Density", "Polyphony"))
    assert written / (3 * len(bars)) > 0.7  # TOKEN_KEEP of them
    stripped = np.array([i for i in ids if int(i) not in control_ids(tok)])
    assert np.array_equal(stripped, plain)  # the same stream, controls taken out
    a, b = ids_to_score(tok, plain), ids_to_score(tok, ids)
    assert a.note_num() == b.note_num() > 1000
    for ta, tb in zip(a.tracks, b.tracks, strict=True):
        assert ta.program == tb.program
        assert all(np.array_equal(ta.notes.numpy()[f], tb.notes.numpy()[f])
                   for f in ("time", "duration", "pitch", "velocity"))  # fmt: skip


def test_the_same_file_gets_the_same_tokens(datasets: Path, tok):
    path = datasets / "pop909" / "004" / "004.mid"
    runs = [controls.encode_with_controls(tok, _cleaned(path), ALL, seed=s, source=path)
            for s in ("ab" * 16, "ab" * 16, "cd" * 16)]  # fmt: skip
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


@pytest.fixture(scope="module")
def folk_with_controls(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("folk")
    for f in sorted((datasets / "nottingham").glob("*.mid"))[:DROPOUT_FILES]:
        (src / f.name).symlink_to(f.resolve())
    out = tmp_path_factory.mktemp("folk_ds") / "ds"
    prepare(src, out, controls=ALL, tracks="merge", min_tokens=16, min_notes=8, jobs=2,
            quiet=True)  # fmt: skip
    return out


def test_dropout_rates_on_a_prepared_folder(folk_with_controls: Path):
    data = PreparedDataset(folk_with_controls)
    tok = data.tokenizer
    assert json.loads((folk_with_controls / "manifest.json").read_text())["options"][
        "controls"] == ALL  # fmt: skip
    is_control = np.zeros(len(tok), bool)
    is_control[sorted(control_ids(tok))] = True
    bar = tok.vocab["Bar_None"]
    pieces, without, kept, slots = 0, 0, 0, 0
    for split in ("train", "valid", "test"):
        seqs = data.tokens(split)
        for i in range(len(seqs)):
            ids = np.asarray(seqs[i])
            n = int(is_control[ids].sum())
            pieces += 1
            if n == 0:
                without += 1
            else:
                kept += n
                slots += 3 * int((ids == bar).sum())
    assert pieces > 200
    # binomial: 0.2 of ~230 pieces has a standard deviation of 0.026; 0.8 of ~20k tokens 0.003
    assert abs(without / pieces - controls.PIECE_DROPOUT) < 0.08, without / pieces
    assert abs(kept / slots - controls.TOKEN_KEEP) < 0.02, kept / slots


def test_the_tokenizer_file_keeps_the_control_tokens(tmp_path: Path, tok):
    path = save_tokenizer(tok, tmp_path)
    back = load_tokenizer(tmp_path)
    assert dict(back.vocab) == dict(tok.vocab) and len(back) == len(tok) == 486 + 98
    saved = json.loads(path.read_text())
    assert saved[ADDED_TOKENS][0] == ["Chord_N", 486]
    saved[ADDED_TOKENS][3][1] = 7  # an id that is not where the token lands
    path.write_text(json.dumps(saved))
    with pytest.raises(MidiforgeError, match=r"added token .* does not fit"):
        load_tokenizer(tmp_path)
    plain = tokenizer_for("remi", "all")
    save_tokenizer(plain, tmp_path)
    assert ADDED_TOKENS not in json.loads(path.read_text())  # datasets without controls: as before


def test_transposition_moves_chord_controls_with_the_pitches(tok):
    shifter = TokenShifter.for_tokenizer(tok)
    v = tok.vocab
    ids = np.array([v["Bar_None"], v["Chord_A:min"], v["Chord_B:7"], v["Chord_N"],
                    v["Density_3"], v["Pitch_57"]])  # fmt: skip
    moved = shifter._pitch_table(2)[ids]
    assert moved.tolist() == [v["Bar_None"], v["Chord_B:min"], v["Chord_C#:7"], v["Chord_N"],
                              v["Density_3"], v["Pitch_59"]]  # fmt: skip


@pytest.mark.parametrize(("options", "message"), [
    ({"controls": ["chords", "key"]}, "controls: 'key' is not accepted"),
    ({"controls": ["chords"], "tokenizer": "tsd"}, "controls: chords needs tokenizer remi"),
    ({"controls": ["density"], "bpe_vocab": 800}, "controls: density cannot be used with bpe"),
])  # fmt: skip
def test_prepare_refuses_controls_it_cannot_write(datasets, tmp_path, options, message):
    with pytest.raises(MidiforgeError, match=message):
        prepare(datasets / "robustness" / "MIDIs_one_track", tmp_path / "out", quiet=True,
                **options)  # fmt: skip
