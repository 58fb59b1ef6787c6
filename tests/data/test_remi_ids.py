"""The numpy REMI encoder writes MidiTok's own ids, byte for byte, on real and odd scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, Tempo, TimeSignature, Track

from midiforge.data import corpus, remi_ids
from midiforge.data.encode import build_tokenizer, score_to_array, score_to_ids
from midiforge.data.prepare import tokenizer_for
from midiforge.io.midi import load_midi

# (tracks, instrument_groups) of the tokenizers prepare builds
SETTINGS = [
    ("all", "programs"),
    ("merge", "programs"),
    ("all", "families"),
    ("longest", "programs"),
]
# Nottingham tunes whose meter changes, some mid-piece, some with repeated signatures
METER_CHANGES = ("ashover1.mid", "ashover3.mid", "jigs168.mid", "jigs6.mid", "morris2.mid")
SIGNATURES = [(4, 4), (3, 4), (6, 8), (2, 4), (5, 4), (7, 8), (12, 8), (2, 2), (9, 8), (1, 4)]


def _miditok_ids(tokenizer, score: Score) -> list[int]:
    """MidiTok's plain ``encode`` ids: the reference, without anything of ours in between."""
    seq = tokenizer.encode(score)
    if isinstance(seq, list):
        assert len(seq) == 1
        seq = seq[0]
    return list(seq.ids)


def _cleaned(path: Path, tracks: str, groups: str) -> Score:
    score, _ = corpus.clean_score(
        load_midi(path),
        programs=None,
        drums=True,
        tracks=tracks,
        max_note_beats=16.0,
        max_gap_beats=8.0,
        instrument_groups=groups,
    )
    assert score is not None
    return score


@pytest.mark.parametrize(("tracks", "groups"), SETTINGS)
def test_same_ids_as_miditok_on_band_songs(datasets: Path, tracks: str, groups: str) -> None:
    tokenizer = tokenizer_for("remi", tracks, groups)
    assert remi_ids.covers(tokenizer)
    files = sorted((datasets / "robustness" / "MIDIs_multitrack").glob("*.mid"))
    assert len(files) >= 10
    for path in files:
        score = _cleaned(path, tracks, groups)
        fast = remi_ids.remi_ids(tokenizer, tokenizer.preprocess_score(score))
        assert fast is not None, path.name  # the fast path itself, not MidiTok's fallback
        expected = _miditok_ids(tokenizer, score)
        assert fast.tolist() == expected, path.name
        assert score_to_array(tokenizer, score).dtype == np.int32
        assert score_to_ids(tokenizer, score) == expected


@pytest.mark.parametrize("tracks", ["all", "merge"])
def test_same_ids_as_miditok_across_meter_changes(datasets: Path, tracks: str) -> None:
    tokenizer = tokenizer_for("remi", tracks)
    for name in METER_CHANGES:
        score = _cleaned(datasets / "nottingham" / name, tracks, "programs")
        assert len({(t.numerator, t.denominator) for t in score.time_signatures}) > 1
        fast = remi_ids.remi_ids(tokenizer, tokenizer.preprocess_score(score))
        assert fast is not None and fast.tolist() == _miditok_ids(tokenizer, score), name


def _random_score(rng: np.random.Generator) -> Score:
    """Any tick rate, meter changes anywhere (mid-bar, repeated), drums, zero-length notes."""
    tpq = int(rng.choice([7, 24, 96, 384, 480]))
    score = Score(tpq)
    score.tempos.append(Tempo(0, 120.0))
    times = sorted(rng.integers(0, tpq * 40, int(rng.integers(0, 5))).tolist())
    for t in ([0] if rng.random() < 0.5 else []) + times:
        score.time_signatures.append(TimeSignature(t, *SIGNATURES[rng.integers(len(SIGNATURES))]))
    for _ in range(int(rng.integers(1, 5))):
        track = Track(program=int(rng.integers(0, 128)), is_drum=bool(rng.random() < 0.25))
        for start in rng.integers(0, tpq * 48, int(rng.integers(1, 80))).tolist():
            duration, pitch = int(rng.integers(0, tpq * 6)), int(rng.integers(0, 128))
            track.notes.append(Note(start, duration, pitch, int(rng.integers(1, 128))))
        score.tracks.append(track)
    return score


def test_same_ids_as_miditok_on_random_scores() -> None:
    rng = np.random.default_rng(7)
    tokenizers = [tokenizer_for("remi", "all"), tokenizer_for("remi", "all", "families")]
    piano = tokenizer_for("remi", "merge")
    fast_count = 0
    for _ in range(150):
        score = _random_score(rng)
        for tokenizer in [*tokenizers, *([piano] if len(score.tracks) == 1 else [])]:
            try:
                expected = _miditok_ids(tokenizer, score)
            except Exception as exc:  # MidiTok refuses it: so must we, the same way
                with pytest.raises(type(exc)):
                    score_to_array(tokenizer, score)
                continue
            fast = remi_ids.remi_ids(tokenizer, tokenizer.preprocess_score(score))
            fast_count += fast is not None
            assert score_to_ids(tokenizer, score) == expected
            assert fast is None or fast.tolist() == expected
    assert fast_count > 200  # most random scores took the fast path


def test_other_tokenizers_go_through_miditok(datasets: Path) -> None:
    score = _cleaned(datasets / "robustness/MIDIs_multitrack/Funkytown.mid", "all", "programs")
    for tokenizer in (
        build_tokenizer("tsd", use_programs=True),
        build_tokenizer("remi", use_programs=True, use_tempos=True),
        build_tokenizer("remi", use_programs=True, use_chords=True),
    ):
        assert not remi_ids.covers(tokenizer)
        assert remi_ids.remi_ids(tokenizer, score) is None
        assert score_to_ids(tokenizer, score) == _miditok_ids(tokenizer, score)
