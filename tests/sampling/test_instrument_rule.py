"""The instruments rule on the band tokenizer: which ids it forbids, the steer's exact bonus,
BPE ids, and primer tracks mapped onto the programs a run learned."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from symusic import Note, Score, Track

from midiforge.data.encode import build_tokenizer
from midiforge.errors import MidiforgeError
from midiforge.sampling.instrument_rule import (
    STEER_NATS,
    InstrumentConstraint,
    continue_programs,
    id_tokens,
    program_of,
    tokenizer_programs,
)
from midiforge.store.dataset_dir import PreparedDataset

from .conftest import prepare_band

BPE_VOCAB = 700  # the band songs' base vocabulary is 486 tokens


def ids(tok, *tokens: str) -> torch.Tensor:
    return torch.tensor([tok.vocab[t] for t in tokens])


def test_mask_forbids_other_programs_and_notes_before_a_program(band: Path) -> None:
    tok = PreparedDataset(band).tokenizer
    rule = InstrumentConstraint(tok, [33, -1])
    rule.start(ids(tok, "BOS_None")[None])  # (1, 1)
    mask = rule.allowed()[0]
    v = tok.vocab
    assert mask[v["Program_33"]] and mask[v["Program_-1"]] and mask[v["Bar_None"]]
    assert not mask[v["Program_0"]] and not mask[v["Program_30"]]
    assert not mask[v["Pitch_40"]] and not mask[v["PitchDrum_36"]]  # would decode as program 0
    assert int(mask.sum()) == len(v) - (len(tokenizer_programs(tok)) - 2) - sum(
        t.startswith(("Pitch_", "PitchDrum_")) for t in v
    )
    rule.update(ids(tok, "Program_33"))
    assert rule.allowed()[0, v["Pitch_40"]]


def test_steer_raises_the_program_behind_its_share_by_the_documented_amount(band: Path) -> None:
    tok = PreparedDataset(band).tokenizer
    rule = InstrumentConstraint(tok, [33, -1])
    # the primer sets the current program, its notes are not counted
    rule.start(ids(tok, "BOS_None", "Bar_None", "Position_0", "Program_33", "Pitch_40")[None])
    assert rule.played() == [{33: 0, -1: 0}]
    logits = torch.zeros(1, len(tok.vocab))
    assert torch.equal(rule.steer(logits), logits)  # no note generated yet: nothing steered
    for token in ("Velocity_63", "Duration_1.0.8", "Program_-1", "PitchDrum_36", "Velocity_63",
                  "Duration_0.1.8", "Program_-1", "PitchDrum_38", "Velocity_63",
                  "Duration_0.1.8", "Program_33", "Pitch_43"):  # fmt: skip
        rule.update(ids(tok, token))
    assert rule.played() == [{33: 1, -1: 2}]
    steered = rule.steer(logits)[0]
    # N = 3 notes, share 1.5 each: the bass has played 1, 1/3 of its share missing
    assert steered[tok.vocab["Program_33"]].item() == pytest.approx(STEER_NATS / 3)
    assert steered[tok.vocab["Program_-1"]].item() == 0.0
    assert int((steered != 0).sum()) == 1  # only Program ids are steered
    off = InstrumentConstraint(tok, [33, -1], steer=0.0)
    off.start(ids(tok, "BOS_None")[None])
    for token in ("Program_-1", "PitchDrum_36"):
        off.update(ids(tok, token))
    assert torch.equal(off.steer(logits), logits)


def test_a_tokenizer_without_the_program_is_refused_naming_what_it_has(band: Path) -> None:
    merged = build_tokenizer("remi")
    assert tokenizer_programs(merged) == []
    with pytest.raises(MidiforgeError, match=r"no Program token for Electric Bass \(finger\)"):
        InstrumentConstraint(merged, [33])
    assert program_of("Program_-1") == -1 and program_of("Pitch_60") is None


def test_bpe_ids_are_judged_by_every_base_token_inside(datasets: Path, tmp_path: Path) -> None:
    tok = PreparedDataset(prepare_band(datasets, tmp_path / "bpe", bpe_vocab=BPE_VOCAB)).tokenizer
    pieces = id_tokens(tok)
    assert len(pieces) == BPE_VOCAB and pieces[tok.vocab["Program_33"]] == ("Program_33",)
    rule = InstrumentConstraint(tok, [33, -1])
    rule.start(ids(tok, "BOS_None")[None])  # a base token keeps its id under BPE
    mask = rule.allowed()[0]
    merged = [i for i, p in enumerate(pieces) if len(p) > 1]
    other = [i for i in merged if any(program_of(t) not in (None, 33, -1) for t in pieces[i])]
    ours = [i for i in merged if any(program_of(t) == -1 for t in pieces[i])
            and all(program_of(t) in (None, 33, -1) for t in pieces[i])
            and program_of(pieces[i][0]) is not None]  # fmt: skip
    assert other and ours
    assert not mask[other].any() and mask[ours].all()


def _track(program: int, pitch: int, drum: bool = False) -> Track:
    track = Track(program=program, is_drum=drum)
    track.notes.append(Note(0, 480, pitch, 80))
    return track


def test_primer_tracks_continue_on_the_programs_the_run_knows() -> None:
    score = Score(480)
    for track in (_track(37, 40), _track(0, 60), _track(0, 36, drum=True), _track(33, 45)):
        score.tracks.append(track)
    mapped, programs = continue_programs(score, [-1, 7, 33, 41])
    assert programs == [33, 7, -1]  # Slap Bass 2 → Finger Bass, Grand Piano → Clavinet
    assert [(t.program, t.is_drum) for t in mapped.tracks] == [(33, False), (7, False),
                                                                (0, True), (33, False)]  # fmt: skip
    sitar = Score(480)
    sitar.tracks.append(_track(104, 60))
    message = r"Sitar \(104\) track has no instrument of the Ethnic family in this model; it knows"
    with pytest.raises(MidiforgeError, match=message + r" Drums \(-1\), Clavinet \(7\)"):
        continue_programs(sitar, [-1, 7, 33])
