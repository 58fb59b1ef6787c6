"""The corpus declarations: JSB chorales become MIDI with held notes merged, splits kept."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import symusic

from midiforge.bars import seconds_to_ticks
from midiforge.data.controls import find_annotation
from midiforge.data.corpora import (
    CHORDS_SUFFIX,
    CORPORA,
    JSB_REST,
    POP909_BEATS,
    POP909_CHORDS,
    build_corpus,
    copy_pop909_song,
    jsb_score,
)


def test_jsb_score_merges_runs_and_skips_rests():
    # Two voices move, two stay silent or hold: S holds 60 for two steps then 62;
    # A rests, then 55 once; T holds 50 throughout; B silent.
    steps = [
        [60, JSB_REST, 50, JSB_REST],
        [60, 55, 50, JSB_REST],
        [62, JSB_REST, 50, JSB_REST],
    ]
    score = jsb_score(steps)
    step = score.ticks_per_quarter // 4
    soprano, alto, tenor, bass = score.tracks
    assert [(n.time, n.duration, n.pitch) for n in soprano.notes] == [
        (0, 2 * step, 60),
        (2 * step, step, 62),
    ]
    assert [(n.time, n.duration, n.pitch) for n in alto.notes] == [(step, step, 55)]
    assert [(n.time, n.duration, n.pitch) for n in tenor.notes] == [(0, 3 * step, 50)]
    assert len(bass.notes) == 0


def test_build_corpus_lays_out_labels_and_published_split(datasets, tmp_path):
    split_file = build_corpus(datasets, tmp_path, names=("nottingham", "jsb"))
    folk = sorted((tmp_path / CORPORA["nottingham"].label).iterdir())
    chorales = sorted((tmp_path / CORPORA["jsb"].label).iterdir())
    assert len(folk) == len(list((datasets / "nottingham").glob("*.mid")))
    source = json.loads((datasets / "jsb_chorales" / "Jsb16thSeparated.json").read_text())
    assert len(chorales) == sum(len(v) for v in source.values())
    with split_file.open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["split"] for r in rows} == {"train", "valid", "test"}
    assert sum(r["split"] == "test" for r in rows) == len(source["test"])
    # A converted chorale re-parses and keeps every sounding step of its soprano.
    first = symusic.Score(str(tmp_path / "chorale" / "test_000.mid"))
    sounding = sum(1 for step in source["test"][0] if step[0] != JSB_REST)
    step_ticks = first.ticks_per_quarter // 4
    assert sum(n.duration for n in first.tracks[0].notes) == sounding * step_ticks


@pytest.mark.parametrize("song", ["010", "034", "151"])  # tempo changes; 6 beats a bar; a pickup
def test_pop909_copies_sit_on_their_annotated_bars(datasets, tmp_path, song):
    src = datasets / "pop909" / song / f"{song}.mid"
    copy = tmp_path / f"{song}.mid"
    copy_pop909_song(src, copy)
    before, after = symusic.Score(str(src)), symusic.Score(str(copy))
    beats = np.loadtxt(src.parent / POP909_BEATS, ndmin=2)
    assert all(ts.denominator == 4 and ts.numerator > 1 for ts in after.time_signatures)
    shift = after.tracks[0].notes[0].time - before.tracks[0].notes[0].time
    for old, new in zip(before.tracks, after.tracks):  # every note moved by the same ticks
        assert [n.time + shift for n in old.notes] == [n.time for n in new.notes]
        assert [n.pitch for n in old.notes] == [n.pitch for n in new.notes]
    # every annotated downbeat (but a one-beat stutter) is a bar line of the copy's meters
    down = np.rint(seconds_to_ticks(before, beats[beats[:, 2] == 1, 0])).astype(int) + shift
    bar_lines = set(_bar_lines(after, int(down[-1]) + 1))
    assert np.isin(down, list(bar_lines)).mean() > 0.98
    assert down[0] in bar_lines
    # the chord annotation moved with the music: its boundaries land on the same ticks
    old_rows = (src.parent / POP909_CHORDS).read_text().split()
    assert find_annotation(copy) == copy.with_name(song + CHORDS_SUFFIX)  # prepare --controls
    new_rows = copy.with_name(song + CHORDS_SUFFIX).read_text().split()
    assert old_rows[2::3] == new_rows[2::3]
    old_ticks = seconds_to_ticks(before, np.array(old_rows[0::3], float)) + shift
    new_ticks = seconds_to_ticks(after, np.array(new_rows[0::3], float))
    assert np.abs(old_ticks - new_ticks).max() < 2


def _bar_lines(score: symusic.Score, end: int) -> list[int]:
    """Every bar line's tick up to ``end``, walking the time signatures (as MidiTok does)."""
    lines, signatures = [], list(score.time_signatures)
    tick, k = 0, 0
    while tick < end:
        while k + 1 < len(signatures) and signatures[k + 1].time <= tick:
            k += 1
        lines.append(tick)
        ts = signatures[k]
        tick += ts.numerator * 4 * score.ticks_per_quarter // ts.denominator
    return lines
