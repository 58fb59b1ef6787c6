"""Harmonizing end to end: the tiny band runs of ``test_infill`` (a transformer with Program
tokens, a multi-head LSTM and a diffusion run, trained a few steps on real band songs) write an
accompaniment under the melody track of a real Nottingham tune (3/4, so the samplers' 4/4 bars
are fitted onto shorter ones); every note of the written files is checked against the melody,
re-parsed with symusic at the melody's ticks per quarter."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from symusic import Note, Score, TimeSignature, Track

from midiforge.chords import detect_melody_chords, estimate_key
from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS
from midiforge.sampling.generate import generate
from midiforge.sampling.harmonize import (
    accompaniment_programs,
    default_range,
    melody_chords,
    read_melody,
)
from midiforge.store.run_dir import load_run, shipped_run

from .conftest import train_tiny
from .test_infill import FAMILY_OPTIONS, TINY, TRAIN

FOLK_TUNE = "ashover1.mid"  # track 0 the melody (3/4), track 1 the chords
MELODY_BARS = 6
VIOLIN = 40


@pytest.fixture(scope="module")
def band_runs(band: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_tiny(dict.fromkeys(TINY, band), TINY, TRAIN, tmp_path_factory.mktemp("runs"))


def write_melody(song: Path, bars: int, folder: Path) -> Path:
    """``folder/melody.mid``: the song's first track alone, its first ``bars`` bars."""
    score = Score(str(song))
    lines = np.asarray(score.get_downbeats())
    tune = score.clip(0, int(lines[bars]), clip_end=True)
    tune.tracks = [tune.tracks[0]]
    path = folder / "melody.mid"
    tune.dump_midi(str(path))
    return path


@pytest.fixture(scope="module")
def melody(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tune's melody track alone, its first bars (a real melody, kept short)."""
    song = datasets / "nottingham" / FOLK_TUNE
    return write_melody(song, MELODY_BARS, tmp_path_factory.mktemp("melody"))


def track_notes(score: Score) -> list[tuple[int, bool, list[tuple[int, int, int, int]]]]:
    """Per track: program, drum flag and every note (time, duration, pitch, velocity)."""
    return [
        (t.program, t.is_drum, [(n.time, n.duration, n.pitch, n.velocity) for n in t.notes])
        for t in score.tracks
    ]


def check_harmonized(melody: Path, out: Path) -> list[tuple[int, int, int, int, int]]:
    """Assert the melody is in ``out`` exactly, in its own tracks; the accompaniment's notes
    (program, time, duration, pitch, velocity)."""
    mine, written = Score(str(melody)), Score(str(out))
    assert written.ticks_per_quarter == mine.ticks_per_quarter  # nothing was resampled
    n = len(mine.tracks)
    assert track_notes(written)[:n] == track_notes(mine)  # the melody, note for note
    end = int(read_melody(melody).lines[-1])
    played = {DRUMS if t.is_drum else t.program for t in mine.tracks}
    new = []
    for program, drum, notes in track_notes(written)[n:]:
        assert not drum and program not in played
        new += [(program, *note) for note in notes]
    assert all(t >= 0 and t + d <= end and d >= 1 for _, t, d, _, _ in new), new
    programs = [t.program for t in written.tracks[n:]]
    assert len(programs) == len(set(programs))  # one track per instrument
    return new


@pytest.mark.parametrize("family", sorted(TINY))
def test_the_melody_stays_exact_and_an_accompaniment_lies_under_it(band_runs, family, melody,
                                                                   tmp_path):  # fmt: skip
    result = generate(band_runs[family], out_dir=tmp_path, harmonize=melody, n=2, seed=0,
                      device="cpu", **FAMILY_OPTIONS.get(family, {}))  # fmt: skip
    assert len(result.paths) == 2
    new = [check_harmonized(melody, path) for path in result.paths]
    assert all(len(n) > 0 for n in new), [len(n) for n in new]
    ceiling = int(default_range(read_melody(melody)).split("-")[1])
    assert ceiling < np.median([n.pitch for n in Score(str(melody)).tracks[0].notes])
    assert all(p <= ceiling for notes in new for _, _, _, p, _ in notes)  # the default range


def test_a_given_progression_wins_over_the_detected_chords(band_runs, melody, tmp_path):
    # diffusion moves every note on a beat onto its bar's chord: all of them on A minor here
    result = generate(band_runs["diffusion"], out_dir=tmp_path, harmonize=melody, chords="Am",
                      n=2, seed=1, steps=4, device="cpu")  # fmt: skip
    tpq = Score(str(melody)).ticks_per_quarter
    on_beat = [p for path in result.paths for _, t, _, p, _ in check_harmonized(melody, path)
               if t % tpq == 0]  # fmt: skip
    assert on_beat and {p % 12 for p in on_beat} <= {9, 0, 4}, on_beat


def test_arpeggios_of_c_am_f_g_are_detected_as_those_chords(tmp_path):
    score = Score(480)
    score.time_signatures.append(TimeSignature(0, 4, 4))
    track = Track(program=VIOLIN)
    for bar, chord in enumerate(([60, 64, 67], [57, 60, 64], [53, 57, 60], [55, 59, 62])):
        for beat, pitch in enumerate([*chord, chord[1]]):  # root, third, fifth, third
            track.notes.append(Note(bar * 1920 + beat * 480, 480, pitch + 12, 90))
    score.tracks.append(track)
    score.dump_midi(str(tmp_path / "arpeggios.mid"))
    assert melody_chords(read_melody(tmp_path / "arpeggios.mid")) == ["C", "Am", "F", "G"]


def test_the_melody_detector_holds_chords_over_empty_bars_and_reads_b_d_f_as_g7():
    bars = np.zeros((5, 12))
    bars[1, [0, 4, 7]] = 1  # C E G
    bars[3, [11, 2, 5]] = 1  # B D F: the leading tone's triad, the dominant's
    assert detect_melody_chords(bars, "C major") == ["C", "C", "C", "G7", "G7"]
    assert detect_melody_chords(np.zeros((2, 12))) == ["N", "N"]


def test_the_key_is_the_profile_the_whole_melody_fits_best():
    g_major = np.zeros(12)
    g_major[[7, 9, 11, 0, 2, 4, 6]] = [4, 1, 2, 1, 3, 1, 1]  # tonic, third and fifth heavy
    a_minor = np.zeros(12)
    a_minor[[9, 11, 0, 2, 4, 5, 8]] = [4, 1, 3, 1, 3, 1, 1]  # harmonic minor's G#
    assert (estimate_key(g_major), estimate_key(a_minor)) == ("G major", "A minor")
    assert estimate_key(np.zeros(12)) == "C major"


def test_the_shipped_note_lstm_plays_along_with_the_melody_in_its_bars(melody, tmp_path):
    """The multi-head LSTM hears the tune on the violin, as it learned folk, so its guitar
    plays chords around it; before, it waited for a violin that never came and stacked dozens
    of notes, the same pitch again and again, on one onset."""
    on_violin = tmp_path / "violin.mid"
    score = Score(str(melody))
    score.tracks[0].program = VIOLIN
    score.dump_midi(str(on_violin))
    result = generate(model="lstm-multihead", out_dir=tmp_path / "out", harmonize=on_violin,
                      style="folk", n=2, seed=0, device="cpu")  # fmt: skip
    lines = read_melody(on_violin).lines
    for path in result.paths:
        new = check_harmonized(on_violin, path)
        assert VIOLIN not in {program for program, *_ in new}  # the melody is read, not written
        per_onset = Counter((program, t) for program, t, *_ in new)
        assert max(per_onset.values()) <= 6, per_onset.most_common(3)  # folk's chords: 3-4
        struck = Counter((program, t, p) for program, t, _, p, _ in new)
        assert max(struck.values()) == 1, struck.most_common(3)
        bars = {int(np.searchsorted(lines, t, side="right")) - 1 for _, t, *_ in new}
        assert len(bars) >= MELODY_BARS - 1, sorted(bars)  # an accompaniment, not a few notes


def test_the_default_accompaniment_is_the_runs_other_chord_instruments(melody, tmp_path):
    shipped = load_run(shipped_run("transformer"), device="cpu")  # piano, guitar, strings, ...
    on_violin = tmp_path / "violin.mid"
    score = Score(str(melody))
    score.tracks[0].program = VIOLIN
    score.dump_midi(str(on_violin))
    assert accompaniment_programs(shipped, read_melody(on_violin), None) == [0, 24, 48]
    assert accompaniment_programs(shipped, read_melody(melody), None) == [24, 48]  # on piano
    assert accompaniment_programs(shipped, read_melody(melody), "cello,flute") == [42, 73]


def test_wrong_requests_are_one_line_errors_naming_what_is_accepted(
    band_runs, melody, nottingham_small, tmp_path, capsys
):
    drums = Score(480)
    drums.tracks.append(Track(program=0, is_drum=True))
    drums.tracks[0].notes.append(Note(0, 240, 36, 100))
    drums.dump_midi(str(tmp_path / "drums.mid"))
    cases = [
        ({"infill": melody, "bars": "1-2"}, "harmonize and infill=.*not --infill"),
        ({"primer": melody}, "harmonize and primer=.*takes --chords, --instruments"),
        ({"bars": 4}, "harmonize and bars=.*as long as the melody"),
        ({"harmonize": tmp_path / "drums.mid"}, "holds no pitched notes .*drums are not"),
    ]
    for ask, message in cases:
        ask = {"harmonize": melody, **ask}
        with pytest.raises(MidiforgeError, match=message) as err:
            generate(band_runs["transformer"], out_dir=tmp_path, n=1, device="cpu", **ask)
        assert "\n" not in str(err.value)
    merged = train_tiny(
        {"transformer": nottingham_small},
        {"transformer": TINY["transformer"]},
        [*TRAIN, "train.steps=2"],
        tmp_path / "merged",
    )["transformer"]
    capsys.readouterr()  # the training's progress
    code = main(["generate", str(merged), "-o", str(tmp_path / "out"), "--harmonize",
                 str(melody), "-n", "1", "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and "this run knows one instrument" in err and "\n" not in err, err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.mid"))


def test_the_command_line_harmonizes_a_melody(band_runs, melody, tmp_path):
    code = main(["generate", str(band_runs["transformer"]), "-o", str(tmp_path), "--harmonize",
                 str(melody), "-n", "1", "--seed", "2", "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert check_harmonized(melody, tmp_path / "sample_000.mid")
