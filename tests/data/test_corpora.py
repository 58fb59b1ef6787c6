"""The corpus declarations: JSB chorales become MIDI with held notes merged, splits kept."""

from __future__ import annotations

import csv
import json

import symusic

from midiforge.data.corpora import CORPORA, JSB_REST, build_corpus, jsb_score


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
