"""A piece whose key nothing set moves into one of its style's keys (``sampling.style_key``):
real Nottingham tunes and the shipped transformer's folk tunes, read back from MIDI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midiforge.io.midi import load_midi, save_midi
from midiforge.pitches import range_table
from midiforge.sampling.generate import generate
from midiforge.sampling.style_key import draw_key, key_shift, move_to_style_keys, piece_key
from midiforge.store.run_dir import load_run, shipped_run

TUNES = 6  # Nottingham tunes a test reads


@pytest.fixture(scope="module")
def tunes(datasets: Path) -> list[Path]:
    return sorted((datasets / "nottingham").glob("*.mid"))[:TUNES]


def pitched(score) -> np.ndarray:
    """Every pitched note's pitch, track after track, in stored order."""
    return np.concatenate([t.notes.numpy()["pitch"] for t in score.tracks if not t.is_drum])


def tonic(key: str) -> int:
    from midiforge.pitches import key_tonic

    return key_tonic(key)


def test_a_tune_moved_by_k_semitones_reads_k_semitones_away(tunes) -> None:
    for path in tunes:
        score = load_midi(path)
        key = piece_key(score)
        for k in (-5, 2, 6):
            moved = score.copy()
            for track in moved.tracks:
                track.shift_pitch(k, inplace=True)
            assert (tonic(piece_key(moved)) - tonic(key)) % 12 == k % 12
            assert piece_key(moved).split()[1] == key.split()[1]


def test_the_shift_is_the_shorter_way_round_at_most_a_tritone() -> None:
    shifts = {key_shift("C major", f"{name} major") for name in ("C#", "F", "F#", "G", "B")}
    assert shifts == {1, 5, -6, -5, -1}
    assert key_shift("A minor", "E minor") == -5 and key_shift("E minor", "A minor") == 5


def test_a_drawn_key_has_the_pieces_mode_and_follows_the_counts() -> None:
    counts = {"D major": 300, "G major": 100, "E minor": 50, "F# major": 0}
    rng = np.random.default_rng(0)
    drawn = [draw_key(counts, "major", rng) for _ in range(2000)]
    assert set(drawn) == {"D major", "G major"}
    assert 0.70 < drawn.count("D major") / len(drawn) < 0.80  # 3 to 1
    assert draw_key(counts, "minor", rng) == "E minor"
    assert draw_key({"D major": 3}, "minor", rng) is None  # no key of its mode: it stays


def test_moved_tunes_land_in_the_asked_keys_with_every_interval_kept(tunes) -> None:
    scores = []
    for path, k in zip(tunes, (1, 3, -2, 6, -4, 5), strict=True):  # keys folk hardly uses
        score = load_midi(path)
        for track in score.tracks:
            track.shift_pitch(k, inplace=True)
        scores.append(score)
    before = [pitched(s) for s in scores]
    counts = {"D major": 5, "G major": 3, "E minor": 2, "A minor": 1}
    moved = move_to_style_keys(scores, counts, seed=0)
    for score, pitches, what in zip(scores, before, moved, strict=True):
        played, now = what
        assert now in counts and now.split()[1] == played.split()[1]
        assert piece_key(score) == now  # read again from the notes, not from what was asked
        shift = pitched(score) - pitches
        assert (shift == shift[0]).all() and -6 <= shift[0] <= 5
    again = [load_midi(p) for p in tunes]
    assert move_to_style_keys(again, counts, seed=0) == move_to_style_keys(
        [load_midi(p) for p in tunes], counts, seed=0
    )  # a seed draws the same keys


def test_a_move_that_would_leave_the_asked_range_keeps_the_key(tunes) -> None:
    score = load_midi(tunes[0])
    pitches = pitched(score)
    low, high = int(pitches.min()), int(pitches.max())
    tight = range_table(f"{low}-{high}")  # the tune fills its range: any move leaves it
    key = piece_key(score)
    other = {"C# major": 1, "C# minor": 1}  # never the tune's own tonic, so it has to move
    assert tonic(key) != 1
    assert move_to_style_keys([score], other, seed=0, allowed=tight) == [None]
    assert (pitched(score) == pitches).all()
    assert move_to_style_keys([score], other, seed=0)[0] is not None  # without the range it moves


def test_drums_stay_where_they_are(datasets: Path, tmp_path: Path) -> None:
    song = load_midi(datasets / "robustness/MIDIs_multitrack/All The Small Things.mid")
    drums = [t.notes.numpy()["pitch"].copy() for t in song.tracks if t.is_drum]
    assert drums
    before = pitched(song)
    (what,) = move_to_style_keys([song], {"F# major": 1, "F# minor": 1}, seed=0)
    assert what is not None and what[1].startswith("F#")
    assert not (pitched(song) == before).all()
    after = [t.notes.numpy()["pitch"] for t in song.tracks if t.is_drum]
    assert all((a == b).all() for a, b in zip(drums, after, strict=True))
    save_midi(song, tmp_path / "moved.mid")  # still a MIDI file that writes
    assert load_midi(tmp_path / "moved.mid").note_num() == song.note_num()


def test_the_shipped_folk_tunes_come_out_in_folk_keys_unless_turned_off(tmp_path) -> None:
    run = shipped_run("transformer")
    folk = load_run(run).style_keys["folk"]
    # the parts' registers fold notes after the move, differently per key: off, so that the
    # moved piece is the kept one transposed
    common = {"n": 3, "max_tokens": 320, "style": "folk", "seed": 3, "device": "cpu",
              "style_parts": False}  # fmt: skip
    moved = generate(run, out_dir=tmp_path / "on", **common)
    kept = generate(run, out_dir=tmp_path / "off", style_keys=False, **common)
    assert not kept.keys and len(moved.keys) == 3
    for on, off, what in zip(moved.paths, kept.paths, moved.keys, strict=True):
        played, now = what
        assert folk.get(now, 0) > 0 and piece_key(load_midi(on)) == now
        assert piece_key(load_midi(off)) == played  # the same piece, where the model put it
        shift = pitched(load_midi(on)) - pitched(load_midi(off))
        assert (shift == shift[0]).all()
    asked = generate(run, out_dir=tmp_path / "key", key="F major", **common)
    assert not asked.keys  # an asked key is kept as asked
