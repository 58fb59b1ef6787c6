"""The models that ship in the package play with no run dir: ``generate --model NAME``.

Each runs the real shipped weights (float16 on disk, float32 in memory) through the command
line, as a user on a fresh install would (the offline fresh-venv run is tests/test_install.py).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

import numpy as np
import pytest

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.sampling.generate import generate
from midiforge.store.run_dir import load_run, shipped_run
from midiforge.style_scale import outside_classes

WINDOW, CONTEXT, NUMBER = 64, 20, 3  # the diffusion model's window; issue 17's command


def _generated(out: str) -> list[int]:
    return [int(x) for x in re.findall(r"generated=(\d+)", out)]


def _first_beat(score) -> float:
    """Where the score's first note starts, in beats."""
    return min(n.time for t in score.tracks for n in t.notes) / score.ticks_per_quarter


def _programs(path) -> set[int]:
    return {-1 if t.is_drum else t.program for t in load_midi(path).tracks if t.notes}


def test_shipped_diffusion_continues_by_inpainting_with_no_run_dir(tmp_path, capsys):
    assert load_run(shipped_run("diffusion")).model.config.length == WINDOW
    code = main(["generate", "--model", "diffusion", "-n", "2", "--number", str(NUMBER),
                 "--context", str(CONTEXT), "--steps", "25", "--seed", "1", "-o",
                 str(tmp_path)])  # fmt: skip
    assert code == 0
    # 64 notes in the first window, 44 new ones in each later window, before cleanup
    assert _generated(capsys.readouterr().out) == [WINDOW + (WINDOW - CONTEXT) * (NUMBER - 1)] * 2
    known = set(load_run(shipped_run("diffusion")).instruments)
    for path in sorted(tmp_path.glob("*.mid")):
        assert load_midi(path).note_num() > WINDOW
        assert _programs(path) <= known


def test_shipped_multihead_lstm_plays_instruments_with_no_run_dir(tmp_path, capsys):
    code = main(["generate", "--model", "lstm-multihead", "-n", "2", "--max-tokens", "96",
                 "--style", "pop", "--seed", "2", "-o", str(tmp_path)])  # fmt: skip
    generated = _generated(capsys.readouterr().out)  # 96 drawn, cut at the last bar line
    assert code == 0 and len(generated) == 2 and all(0 < n <= 96 for n in generated)
    known = set(load_run(shipped_run("lstm-multihead")).instruments)
    programs = set()
    for path, n in zip(sorted(tmp_path.glob("*.mid")), generated):
        assert 0 < load_midi(path).note_num() <= n  # pop's melody plays one note at a time
        programs |= _programs(path)
    assert programs <= known and len(programs) >= 2, programs


def test_a_run_and_a_shipped_model_together_are_refused(tmp_path):
    with pytest.raises(MidiforgeError, match=r"^model: 'diffusion' names a shipped model and "):
        generate(shipped_run("transformer"), out_dir=tmp_path, model="diffusion")


def test_the_shipped_lstm_plays_one_part_of_a_style_as_that_part(tmp_path, capsys):
    # folk is a violin tune over guitar chords: asked for the guitar alone, the model draws the
    # tune too and writes only the guitar (sample_notes(silent=True)); before, it waited for a
    # tune that never came and piled 56-130 guitar notes on one onset
    code = main(["generate", "--model", "lstm-multihead", "-n", "2", "--max-tokens", "192",
                 "--style", "folk", "--instruments", "24", "--seed", "0", "-o",
                 str(tmp_path)])  # fmt: skip
    generated = _generated(capsys.readouterr().out)
    assert code == 0 and len(generated) == 2 and all(96 < n <= 192 for n in generated)
    for path, n in zip(sorted(tmp_path.glob("*.mid")), generated):
        score = load_midi(path)
        assert _programs(path) == {24} and score.note_num() == n
        per_onset = Counter(note.time for note in score.tracks[0].notes)
        per_pitch = Counter((note.time, note.pitch) for note in score.tracks[0].notes)
        assert max(per_onset.values()) <= 6 and max(per_pitch.values()) == 1, path


def test_shipped_diffusion_plays_a_chorale_on_its_four_voices_one_note_each(tmp_path):
    """The chorale style's band is the four strings, each a line (midiforge.style_parts): no
    guitar or flute, no voice with two notes at once, and the voices seldom resting (Bach's
    rest in 0.4 % of their gaps; a held note here stops at 4 beats)."""
    code = main(["generate", "--model", "diffusion", "--style", "chorale", "-n", "2",
                 "--number", "3", "--context", "16", "--steps", "25", "--seed", "3", "-o",
                 str(tmp_path)])  # fmt: skip
    assert code == 0
    gaps = []
    for path in sorted(tmp_path.glob("*.mid")):
        score = load_midi(path)
        assert _programs(path) == {40, 41, 42, 43}
        for track in (t for t in score.tracks if t.notes):
            notes = sorted((n.time, n.end) for n in track.notes)
            mine = [b[0] - a[1] for a, b in itertools.pairwise(notes)]
            assert min(mine) >= 0, (path.name, track.program)  # one note at a time
            gaps += mine
    assert sum(g > 0 for g in gaps) <= 0.1 * len(gaps)


def test_shipped_diffusion_folk_tunes_keep_near_their_scale(tmp_path):
    """Folk tunes from the shipped diffusion model use as few classes outside their scale as
    Nottingham's do (midiforge.style_scale): far fewer than what the denoiser wrote
    (--no-style-parts), whose strays spread over four or five outside classes; and they begin
    where in the bar the style's tunes begin."""

    def outside(folder) -> list[int]:
        counts = []
        for path in sorted(folder.glob("*.mid")):
            pitches = [n.pitch for t in load_midi(path).tracks if not t.is_drum for n in t.notes]
            counts.append(int((outside_classes(np.array(pitches))[1] > 0).sum()))
        return counts

    for name, extra in (("kept", []), ("raw", ["--no-style-parts"])):
        code = main(["generate", "--model", "diffusion", "--style", "folk", "-n", "6",
                     "--number", "3", "--context", "16", "--steps", "25", "--seed", "4", "-o",
                     str(tmp_path / name), *extra])  # fmt: skip
        assert code == 0
    kept, raw = outside(tmp_path / "kept"), outside(tmp_path / "raw")
    assert np.mean(raw) >= 3.0, raw  # what the rule is for
    assert np.mean(kept) <= 2.0 and np.mean(kept) < np.mean(raw) - 1.5, (kept, raw)
    # and they begin where Nottingham's tunes do, mostly on a pickup (note_features.pickups)
    table = load_run(shipped_run("diffusion")).model.pickup_table(1)  # label 1: folk
    starts = {b for b, _ in table}
    for name in ("kept", "raw"):
        firsts = [_first_beat(load_midi(path)) for path in sorted((tmp_path / name).glob("*.mid"))]
        if name == "raw":
            assert firsts == [0.0] * len(firsts)
        else:
            assert set(firsts) <= starts and max(firsts) > 0, firsts


def test_shipped_lstm_folk_tunes_begin_on_their_styles_pickups(tmp_path):
    """A note run writes no bar lines of its own, so its tunes began on beat 0; they now begin
    where in its bar a Nottingham tune of the run's training data begins, mostly on a pickup
    (LoadedRun.style_pickups); --no-style-parts writes them where the model began them."""
    table = load_run(shipped_run("lstm-multihead")).style_pickups("folk")
    assert sum(c for b, c in table if b > 0) > sum(c for b, c in table if b == 0)
    for name, extra in (("kept", []), ("raw", ["--no-style-parts"])):
        code = main(["generate", "--model", "lstm-multihead", "--style", "folk", "-n", "8",
                     "--max-tokens", "64", "--seed", "3", "-o", str(tmp_path / name),
                     *extra])  # fmt: skip
        assert code == 0
    kept = [_first_beat(load_midi(p)) for p in sorted((tmp_path / "kept").glob("*.mid"))]
    raw = [_first_beat(load_midi(p)) for p in sorted((tmp_path / "raw").glob("*.mid"))]
    assert sum(b == 0 for b in raw) >= 6, raw  # the model's first gap is mostly none
    shifts = {round(k - r, 3) for k, r in zip(kept, raw)}  # the same notes, moved
    assert shifts <= {round(b, 3) for b, _ in table} and sum(k > r for k, r in zip(kept, raw)) >= 4
