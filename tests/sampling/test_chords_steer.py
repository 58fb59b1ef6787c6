"""``--chords`` for every family, on the tiny runs of ``test_musical_rules`` (trained a few steps
on real POP909/Nottingham files):
the steer raises chord adherence well above the same seed without it (token models and the
multi-head LSTM), diffusion puts every note on a beat on its bar's chord, and a bad symbol is
a one-line error before anything loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.metrics.adherence import chord_adherence, pitched_notes
from midiforge.sampling.autoregressive import sample_notes
from midiforge.sampling.generate import generate
from midiforge.sampling.musical import CHORD_BONUS_NATS, Musical
from midiforge.sampling.note_rules import NoteRules
from midiforge.sampling.token_rules import MusicalConstraint
from midiforge.schema import FIELD
from midiforge.store.run_dir import load_run

# the tiny runs of test_musical_rules (its session fixtures), trained once for both files; the
# tests ask for them by name (request.getfixturevalue), so no argument shadows the import
from .test_musical_rules import runs, sources  # noqa: F401

PIECES = 6
CHORDS = "C G Am F"
TONES = {0: {0, 4, 7}, 1: {7, 11, 2}, 2: {9, 0, 4}, 3: {5, 9, 0}}  # per bar, cycling
ASK = {"transformer": {"bars": 4, "max_tokens": 200}, "lstm-multihead": {"max_tokens": 40},
       "diffusion": {"bars": 4, "steps": 6}}  # fmt: skip


def _adherence(folder: Path) -> float:
    values = [chord_adherence(load_midi(p), CHORDS) for p in sorted(folder.glob("*.mid"))]
    return float(np.mean([v for v in values if v is not None]))


@pytest.mark.parametrize("family", ["transformer", "lstm-multihead"])
def test_the_steer_raises_chord_adherence_over_the_same_seed_without_it(request, family, tmp_path):
    tiny = request.getfixturevalue("runs")
    for name, chords in (("with", CHORDS), ("without", None)):
        generate(tiny[family], out_dir=tmp_path / name, n=PIECES, seed=0, chords=chords,
                 device="cpu", **ASK[family])  # fmt: skip
    with_chords, without = _adherence(tmp_path / "with"), _adherence(tmp_path / "without")
    # barely trained models hold notes across bar lines (note-time is measured per bar, the
    # steer picks by onset) and favour a few pitches strongly: measured 0.40 vs 0.28 for the
    # transformer, 0.8 vs 0.3 for the multi-head LSTM
    assert with_chords >= 1.3 * without and with_chords - without >= 0.1, (with_chords, without)


def test_a_note_model_note_held_into_the_next_bar_is_a_tone_of_its_chord(request):
    # the sampler's own rows: a MIDI file cannot say which of two overlapping notes of one
    # pitch a note-off ends, so a re-read file may pair them differently
    model = load_run(request.getfixturevalue("runs")["lstm-multihead"]).model
    crossing = {}
    for name, chords in (("with", CHORDS), ("without", None)):
        rules = NoteRules(Musical(chords=chords), PIECES) if chords else None
        crossing[name] = 0
        for rows in sample_notes(model, n=PIECES, max_notes=60, seed=0, rules=rules):
            onset, end = (
                rows[:, FIELD["onset"]],
                rows[:, FIELD["onset"]] + rows[:, FIELD["duration"]],
            )
            bar = np.floor(onset / 4 + 1e-9).astype(int)  # note models write 4/4
            held = end > (bar + 1) * 4 + 1e-6
            crossing[name] += int(held.sum())
            if chords:  # sounds on into bar k + 1: a tone of that bar's chord
                for pitch, k in zip(rows[held, FIELD["pitch"]].astype(int), bar[held] + 1):
                    assert pitch % 12 in TONES[k % 4], (pitch, k)
    assert crossing["without"] > 0 and crossing["with"] < crossing["without"], crossing


def test_the_token_steer_moves_pitch_odds_by_the_bonus_and_keeps_their_total(request):
    tiny = request.getfixturevalue("runs")
    tok = load_run(tiny["lstm"], device="cpu").tokenizer  # Program tokens, drums included
    rule = MusicalConstraint(tok, Musical(chords="Am C"), max_tokens=64)
    v = tok.vocab
    rows = [
        [v["BOS_None"], v["Bar_None"], v["Position_0"], v["Program_0"]],  # bar 1: Am
        [v["BOS_None"], v["Bar_None"], v["Bar_None"], v["Position_0"], v["Program_0"]],
        [v["BOS_None"], v["Bar_None"], v["Position_0"], v["Program_-1"]],
    ]  # drums
    for ids, tones in zip(rows, ({9, 0, 4}, {0, 4, 7}, None)):
        rule.start(torch.tensor([ids]))
        logits = torch.randn(1, len(v), generator=torch.Generator().manual_seed(len(ids)))
        out = rule.steer(logits)
        pitch = [i for t, i in v.items() if t.startswith("Pitch_")]
        on = torch.tensor([int(t.split("_")[1]) % 12 in (tones or ()) for t, i in v.items()
                           if t.startswith("Pitch_")])  # fmt: skip
        before, after = logits[0, pitch].softmax(-1), out[0, pitch].softmax(-1)
        others = [i for i in range(len(v)) if i not in set(pitch)]
        assert torch.equal(out[0, others], logits[0, others])  # only Pitch ids move
        assert torch.allclose(out[0, pitch].logsumexp(-1), logits[0, pitch].logsumexp(-1))
        if tones is None:
            assert torch.allclose(after, before)  # a drum note is not steered
            continue
        odds = (after[on].sum() / after[~on].sum()) / (before[on].sum() / before[~on].sum())
        assert float(odds) == pytest.approx(np.exp(CHORD_BONUS_NATS), rel=1e-4)


def test_diffusion_puts_every_note_on_a_beat_on_its_bars_chord(request, tmp_path):
    tiny = request.getfixturevalue("runs")
    generate(tiny["diffusion"], out_dir=tmp_path, n=PIECES, seed=0, chords=CHORDS, key="C major",
             device="cpu", **ASK["diffusion"])  # fmt: skip
    checked = 0
    for path in sorted(tmp_path.glob("*.mid")):
        score = load_midi(path)
        tpq = score.ticks_per_quarter
        for _, pitch, start, _ in pitched_notes(score):
            assert pitch % 12 in {0, 2, 4, 5, 7, 9, 11}  # the key stays hard
            if start % tpq == 0:
                assert pitch % 12 in TONES[start // (4 * tpq) % 4], (path.name, start, pitch)
                checked += 1
    assert checked >= PIECES


def test_a_bad_chord_symbol_fails_before_anything_loads(tmp_path, capsys):
    missing = tmp_path / "no-such-run"
    code = main(["generate", str(missing), "-o", str(tmp_path), "--chords", "Am | H7 | C"])
    err = capsys.readouterr().err
    assert code == 2 and "chords: 'H7' is not a chord symbol; use lead-sheet symbols" in err
    assert "no-such-run" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(MidiforgeError, match="'Xm' is not a chord symbol") as caught:
        generate(missing, out_dir=tmp_path, chords="Xm")
    assert "\n" not in str(caught.value)


def test_the_batched_steer_equals_each_rows_definition_and_leaves_ended_rows_alone():
    """Rows in different bars (other chords), a drum row, a row that cannot write a pitch next
    and a row that has ended, steered in one call (one cached bonus tensor for the batch),
    against the steer written out per row: block + bonus, shifted to the model's total. A
    batch whose live rows cannot write a pitch next is left as is."""
    from midiforge.data.encode import build_tokenizer

    tok = build_tokenizer("remi", use_programs=True)
    v = tok.vocab
    rule = MusicalConstraint(tok, Musical(chords=CHORDS, bars=3), max_tokens=64)
    bar, pos = v["Bar_None"], v["Position_0"]
    head = [v["BOS_None"], bar, v["TimeSig_4/4"]]
    rows = [
        [*head, pos, v["Program_0"]],  # bar 1: C
        [*head, bar, pos, v["Program_0"]],  # bar 2: G
        [*head, bar, bar, pos, v["Program_0"]],  # bar 3: Am
        [*head, bar, pos, v["Program_-1"]],  # drums: not steered
        [*head, pos, v["Program_0"], v["Pitch_60"]],  # a Velocity next: its pitch ids masked
        [*head, bar, bar, pos, v["EOS_None"]],  # ended: not steered
    ]
    width = max(map(len, rows))
    pad = [[v["BOS_None"]] * (width - len(r)) + r for r in rows]  # BOS moves nothing
    pitch = np.array([i for t, i in v.items() if t.startswith("Pitch_")])
    on = np.array([[int(t.split("_")[1]) % 12 in tones for t in v if t.startswith("Pitch_")]
                   for tones in TONES.values()])  # fmt: skip
    for trial in range(3):  # the second and third reuse the cached bonus tensor
        rule.start(torch.tensor(pad))
        logits = torch.randn(len(rows), len(v), generator=torch.Generator().manual_seed(trial))
        out = rule.chords.apply(rule.state, logits)
        for r, chord in enumerate([0, 1, 2, None, 0, None]):  # the batch's live rows steered
            want = logits[r].clone()
            if chord is not None:
                block = logits[r, pitch] + CHORD_BONUS_NATS * torch.from_numpy(on[chord])
                want[pitch] = block - block.logsumexp(-1) + logits[r, pitch].logsumexp(-1)
            assert torch.allclose(out[r], want, atol=1e-5), (trial, r)
    assert len(rule.chords.added) == 1
    half = rule.chords.apply(rule.state, logits.half())  # an fp16 model's logits: as fp16
    assert half.dtype == torch.float16 and torch.allclose(half.float(), out, atol=2e-2)
    rule.start(torch.tensor(pad[4:]))  # no live row writes a pitch next
    tail = logits[4:]
    assert rule.chords.apply(rule.state, tail) is tail
