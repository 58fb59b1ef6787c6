"""The musician's token rules as int masks (issue 16) give the masks their definitions give.

``token_rules`` builds each row's mask from precomputed ints (a table row per program, a
threshold found by bisection); here every rule is written out again id by id from the
vocabulary, the way its docstring reads, and the two are compared at every step of real
token streams: POP909 and Nottingham files as MidiTok encodes them (which break the rules
freely: polyphony, bars past the end) and random draws that follow the masks to the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from midiforge.data.corpus import clean_score
from midiforge.data.encode import build_tokenizer, score_to_ids
from midiforge.io.midi import load_midi
from midiforge.sampling.constraints import GrammarConstraint, Rules, combine
from midiforge.sampling.grammar import TypeGrammar
from midiforge.sampling.id_bits import (
    RowTensors,
    combine_bits,
    from_tensor,
    prefix_bits,
    suffix_bits,
    to_tensor,
)
from midiforge.sampling.musical import Musical
from midiforge.sampling.remi_state import (
    BAR,
    DURATION,
    DURATION_AFTER,
    EOS,
    MID_NOTE,
    PITCH_AFTER,
    POSITION,
    POSITION_AFTER,
    PROGRAM,
    TIMESIG,
    TIMESIG_AFTER,
)
from midiforge.sampling.token_rules import MusicalConstraint

ASKS = [
    {"key": "D minor", "chromatic": 0.1, "range": "C3-C6", "max_polyphony": 4, "bars": 16},
    {"key": "C major", "range": "C4-C5", "max_polyphony": 2, "bars": 3},  # key ∩ range folded
    {"key": "F# dorian", "chromatic": 0.4, "bars": 2},
    {},  # nothing asked: the grammar mask's time order alone (forward_time)
]


def _order(c: MusicalConstraint, r: int) -> np.ndarray:
    s, v = c.state, c.vocab
    ok = ~v.special
    if c.ordered and s.bars[r] == 0:
        return np.arange(v.size) == v.bar
    if c.ordered and s.bars[r] == 1 and not s.heard[r]:  # the first bar sounds
        ok &= np.arange(v.size) != v.bar
    if c.ordered and s.last_kind[r] in POSITION_AFTER:
        tpp = v.tpp_of[s.den[r]]
        forward = (v.value > s.last_pos[r]) & (v.value * tpp < s.bar_ticks[r])
        ok &= (v.kind != POSITION) | forward
    return ok


def _pitches(c: MusicalConstraint, r: int, table: np.ndarray, step: bool) -> np.ndarray:
    """Pitch ids whose pitch the program's ``table`` row allows, or a semitone step."""
    s, v = c.state, c.vocab
    on = table[s.program[r]][v.value.clip(0, 127)]
    near = step & (s.last_pitch[r] >= 0) & (np.abs(v.value - s.last_pitch[r]) == 1)
    return ~v.pitchlike | on | near


def _key(c: MusicalConstraint, r: int, m: Musical) -> np.ndarray:
    s, v = c.state, c.vocab
    ok = np.ones(v.size, bool)
    if m.chromatic > 0 and s.pending_chromatic[r]:
        ok &= (v.kind != DURATION) | (v.dur_ticks[s.den[r]] <= v.tpq)  # at most a beat
    if s.last_kind[r] in PITCH_AFTER:
        table = np.ones((129, 128), bool)
        table[1:] = m.scale()
        budget = m.chromatic > 0 and s.chromatic[r] + 1 <= m.chromatic * (s.notes[r] + 1)
        ok &= _pitches(c, r, table, budget)
    return ok


def _range(c: MusicalConstraint, r: int, m: Musical) -> np.ndarray:
    if c.state.last_kind[r] not in PITCH_AFTER:
        return np.ones(c.vocab.size, bool)
    return _pitches(c, r, m.range_table(), False)


def _polyphony(c: MusicalConstraint, r: int, limit: int) -> np.ndarray:
    s, v = c.state, c.vocab
    ok, ends = np.ones(v.size, bool), np.array(s.ends[r])
    if s.last_kind[r] in PITCH_AFTER and (ends > s.tick[r]).sum() >= limit:
        ok &= ~((v.kind == PROGRAM) & (v.value >= 0))
        if s.program[r] != 0:
            ok &= ~v.pitchlike
    if s.last_kind[r] in POSITION_AFTER:
        ticks = s.bar_start[r] + v.value * v.tpp_of[s.den[r]]
        ok &= (v.kind != POSITION) | ((ends[:, None] > ticks[None, :]).sum(axis=0) < limit)
    return ok


def _length(c: MusicalConstraint, r: int, m: Musical, steps: int, budget: int) -> np.ndarray:
    s, v = c.state, c.vocab
    ids, kind, bars = np.arange(v.size), s.last_kind[r], s.bars[r]
    begun = max(bars, 1)
    end = s.bar_start[r] + (m.bars - begun + 1) * s.bar_ticks[r]
    last = bars >= 1 and bars >= m.bars
    ok = ((ids != v.bar) | (not last)) & ((ids != v.eos) | last)
    if kind in DURATION_AFTER:
        ok &= (v.kind != DURATION) | (s.tick[r] + v.dur_ticks[s.den[r]] <= end)
    if kind in TIMESIG_AFTER and s.timesig[r] >= 0:
        ok &= (v.kind != TIMESIG) | (ids == s.timesig[r])
    per_bar = 1 + int(v.has_timesig)
    needed = 4 + (m.bars - begun + (bars == 0)) * per_bar + 1
    if kind not in MID_NOTE and budget - steps <= needed:
        close = TIMESIG if kind == BAR and v.has_timesig else (EOS if last else BAR)
        ok &= v.kind == close
    if s.done[r]:
        ok &= ids == v.eos
    return ok


def reference(c: MusicalConstraint, m: Musical, steps: int, budget: int) -> torch.Tensor:
    """``(B, V)``: each rule's mask from its definition, combined in the documented order."""
    rows = []
    for r in range(len(c.state.tick)):
        masks = [_order(c, r)]
        if m.key:
            masks.append(_key(c, r, m))
        if m.range:
            masks.append(_range(c, r, m))
        if m.max_polyphony:
            masks.append(_polyphony(c, r, m.max_polyphony))
        if m.bars:
            masks.append(_length(c, r, m, steps, budget))
        rows.append(combine([torch.from_numpy(mask[None, :]) for mask in masks])[0])
    return torch.stack(rows)


def _file_ids(tok, path: Path) -> list[int]:
    score = load_midi(path)
    if not tok.config.use_programs:
        score = clean_score(score, programs=None, drums=False, tracks="merge",
                            max_note_beats=None, max_gap_beats=None)[0]  # fmt: skip
    return [int(i) for i in score_to_ids(tok, score)]


@pytest.mark.parametrize("programs", [False, True])
def test_int_masks_equal_the_rules_definitions_on_real_and_sampled_streams(datasets, programs):
    tok = build_tokenizer("remi", use_programs=programs)
    grammar = TypeGrammar(tok)
    files = [datasets / "pop909" / "002" / "002.mid",
             sorted((datasets / "nottingham").glob("ashover1*.mid"))[0]]  # fmt: skip
    streams = [_file_ids(tok, f)[:400] for f in files]
    bos = tok.vocab["BOS_None"]
    checked = 0
    for a, ask in enumerate(ASKS):
        m, budget = Musical(**ask), 120
        c = MusicalConstraint(tok, m, max_tokens=budget, forward_time=not ask)
        rows = len(streams) + 3  # the files' streams, then rows drawn under the masks
        c.start(torch.tensor([[bos]] * rows))
        gen = torch.Generator().manual_seed(a)
        last = torch.full((rows,), bos)
        for step in range(max(len(ids) for ids in streams)):
            mine = to_tensor(c.rows(), c.n_ids)
            assert torch.equal(mine, reference(c, m, step, budget)), (a, step)
            checked += rows
            drawn = combine([grammar.mask(last), mine])
            token = torch.multinomial(drawn.float(), 1, generator=gen).squeeze(1)
            for r, ids in enumerate(streams):
                token[r] = ids[step] if step < len(ids) else tok.vocab["EOS_None"]
            c.update(token)
            last = token
    assert checked > 3000


def test_grammar_and_rules_combined_as_ints_equal_the_tensor_combination():
    tok = build_tokenizer("remi", use_programs=True)
    bos = tok.vocab["BOS_None"]
    musical = Musical(key="D minor", chromatic=0.1, range="C3-C6", max_polyphony=2, bars=4)
    rule = MusicalConstraint(tok, musical, max_tokens=80)
    rules = Rules([GrammarConstraint(TypeGrammar(tok)), rule])
    assert rules.as_bits
    rules.start(torch.tensor([[bos]] * 5))
    gen = torch.Generator().manual_seed(0)
    for _ in range(80):
        fast = rules.allowed()
        assert torch.equal(fast, combine([c.allowed() for c in rules.constraints]))
        rules.update(torch.multinomial(fast.float(), 1, generator=gen).squeeze(1))
    assert all(rule.state.done)  # every row reached its 4 bars and EOS within the budget


def test_int_mask_helpers():
    gen = torch.Generator().manual_seed(0)
    masks = torch.rand(6, 3, 37, generator=gen) > 0.7  # 37 ids: not a whole number of bytes
    masks[0, 1] = False  # a rule that would leave row 0 nothing
    for rows in masks:
        assert torch.equal(to_tensor(from_tensor(rows), 37), rows)
    expected = combine(list(masks.unbind(1)))
    mine = [combine_bits(row) for row in zip(*(from_tensor(m) for m in masks.unbind(1)))]
    assert torch.equal(to_tensor(mine, 37), expected)
    ids = [5, 2, 9]
    below, above = prefix_bits(12, ids), suffix_bits(12, ids)
    for j in range(4):
        kept = set(ids[:j]) | (set(range(12)) - set(ids))
        assert set(np.flatnonzero(to_tensor([below[j]], 12)[0].numpy())) == kept
        kept = set(ids[j:]) | (set(range(12)) - set(ids))
        assert set(np.flatnonzero(to_tensor([above[j]], 12)[0].numpy())) == kept


def test_row_tensors_equal_to_tensor_also_past_the_cache_limit():
    """``RowTensors`` (the sampler's int rows → tensor, each distinct row unpacked once) gives
    what ``to_tensor`` gives, for rows seen before, new rows, and after forgetting them all."""
    gen = torch.Generator().manual_seed(1)
    masks = torch.rand(40, 3, 37, generator=gen) > 0.5
    ints = [from_tensor(m) for m in masks]
    tensors = RowTensors(37)
    tensors.MAX_ROWS = 50  # 120 rows: forgotten twice on the way
    for rows in ints + ints[::-1]:
        assert torch.equal(tensors(rows), to_tensor(rows, 37))
    assert 0 < len(tensors.rows) <= 50
