"""A token run's samples played as their style's parts: real chorales, the shipped runs."""

from __future__ import annotations

import itertools
import json

import numpy as np

from midiforge.cli import main
from midiforge.data.corpora import jsb_score
from midiforge.io.midi import load_midi
from midiforge.sampling.score_parts import play_score_parts
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import load_run, shipped_run
from midiforge.style_parts import NO_PARTS

VOICES = (40, 41, 42, 43)


def _rests(score) -> tuple[int, int, int]:
    """(gaps, rests, overlaps) between successive notes of each pitched track."""
    gaps = rests = overlaps = 0
    for track in score.tracks:
        notes = sorted((n.time, n.end) for n in track.notes)
        for a, b in itertools.pairwise(notes):
            gaps += 1
            rests += b[0] > a[1]
            overlaps += b[0] < a[1]
    return gaps, rests, overlaps


def test_a_chorale_whose_voices_rest_is_played_legato_again(datasets):
    """A held-out chorale with a quarter of its notes cut to half their length: its four
    voices are held to their next notes again; the meter, tempo and track names stay."""
    raw = json.loads((datasets / "jsb_chorales" / "Jsb16thSeparated.json").read_text())
    score = jsb_score(raw["test"][0])
    parts = load_run(shipped_run("lstm-multihead")).style_parts("chorale")
    assert parts.legato == VOICES
    rng = np.random.default_rng(0)
    for track in score.tracks:
        for note in track.notes:
            if rng.random() < 0.25:
                note.duration = max(1, note.duration // 2)
    gaps, rests, _ = _rests(score)
    assert rests > 0.15 * gaps
    names = [t.name for t in score.tracks]
    assert play_score_parts(score, parts)
    gaps, rests, overlaps = _rests(score)
    assert overlaps == 0 and rests <= 0.01 * gaps
    assert [t.name for t in score.tracks] == names
    assert len(score.time_signatures) == 1 and len(score.tempos) == 1
    assert not play_score_parts(score, NO_PARTS)


def test_the_dataset_fits_the_parts_a_run_keeps(nottingham_small):
    """prepare's note rows give the table train writes into config.yaml: the folk tunes of
    the small Nottingham set, merged into one piano stream, have one part, the piano."""
    table = PreparedDataset(nottingham_small).style_parts()
    assert table["*"]["programs"] == [0]
    assert table["*"]["lines"] == []  # melody and chords on one piano: not one line
    assert len(table["*"]["registers"]) == 1


def test_the_shipped_lstm_plays_a_chorales_voices_legato(tmp_path):
    """``generate --style chorale`` on the shipped multi-head LSTM: its voices rest in under
    2 % of their gaps; with --no-style-parts the same seed writes what it sampled."""
    args = ["generate", "--model", "lstm-multihead", "--style", "chorale", "-n", "2",
            "--max-tokens", "160", "--seed", "4"]  # fmt: skip
    assert main([*args, "-o", str(tmp_path / "parts")]) == 0
    assert main([*args, "--no-style-parts", "-o", str(tmp_path / "raw")]) == 0
    played = [_rests(load_midi(p)) for p in sorted((tmp_path / "parts").glob("*.mid"))]
    raw = [_rests(load_midi(p)) for p in sorted((tmp_path / "raw").glob("*.mid"))]
    assert sum(r for _, r, _ in played) <= 0.02 * sum(g for g, _, _ in played)
    assert all(o == 0 for _, _, o in played)
    assert sum(r for _, r, _ in raw) > sum(r for _, r, _ in played)  # the model's own rests
