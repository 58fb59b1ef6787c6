"""Sampler: each logits filter on hand-made logits, seeded reproducibility, the sliding window,
RNN state carrying, and the grammar mask on a real MidiTok REMI tokenizer."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from midiforge.data.encode import build_tokenizer
from midiforge.errors import MidiforgeError
from midiforge.models.registry import build
from midiforge.sampling.autoregressive import (
    draw,
    filter_logits,
    sample,
    top_k_filter,
    top_p_filter,
)
from midiforge.sampling.grammar import TypeGrammar, count_errors

VOCAB = 24
TINY_T = {"vocab_size": VOCAB, "d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 64,
          "max_seq_len": 16, "max_rel": 8, "dropout": 0.0}  # fmt: skip


def test_top_k_keeps_exactly_k():
    logits = torch.tensor([[0.1, 3.0, -1.0, 2.0, 0.5], [5.0, 4.0, 3.0, 2.0, 1.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.sum(-1).tolist() == [2, 2]
    assert kept[0].nonzero().flatten().tolist() == [1, 3]
    assert kept[1].nonzero().flatten().tolist() == [0, 1]


def test_top_p_keeps_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    kept = torch.isfinite(top_p_filter(logits, 0.75))[0].tolist()
    assert kept == [True, True, False, False]  # 0.5 < 0.75 <= 0.8
    kept = torch.isfinite(top_p_filter(logits, 0.81))[0].tolist()
    assert kept == [True, True, True, False]
    kept = torch.isfinite(top_p_filter(logits, 0.01))[0].tolist()
    assert kept == [True, False, False, False]  # the top id always survives


def test_temperature_to_zero_is_argmax_and_high_flattens():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, VOCAB, generator=g)
    greedy = draw(filter_logits(logits, temperature=0.0), 0.0, g)
    cold = draw(filter_logits(logits, temperature=1e-4), 1e-4, g)
    assert torch.equal(greedy, logits.argmax(-1)) and torch.equal(cold, greedy)
    hot = filter_logits(logits, temperature=100.0).softmax(-1)
    assert (hot.max(-1).values < 2.0 / VOCAB).all()


def test_grammar_filter_runs_first_so_top_k_counts_legal_ids():
    logits = torch.tensor([[9.0, 8.0, 1.0, 0.5]])
    allowed = torch.tensor([[False, False, True, True]])
    out = filter_logits(logits, top_k=1, allowed=allowed)
    assert torch.isfinite(out)[0].tolist() == [False, False, True, False]


def test_bad_options_are_named():
    model = build("lstm", {"vocab_size": VOCAB, "d_embed": 8, "d_hidden": 8})
    accepted = r"kv_cache: 'int8'.*auto, float16, float32"
    for kw, name in [({"top_p": 0.0}, "top_p"), ({"top_k": -1}, "top_k"),
                     ({"temperature": -1.0}, "temperature"),
                     ({"kv_cache": "int8"}, accepted)]:  # fmt: skip
        with pytest.raises(MidiforgeError, match=name):
            sample(model, primer_ids=[1], **kw)


class CacheDtypes(torch.nn.Module):
    """A real transformer that records the dtype of every cache it is handed."""

    def __init__(self, model):
        super().__init__()
        self.model, self.seen = model, []
        self.max_seq_len = model.max_seq_len

    def new_cache(self, dtype=None):
        return self.model.new_cache(dtype)

    def trim_cache(self, cache, keep):
        return self.model.trim_cache(cache, keep)

    def forward(self, tokens, *, label=None, cache=None):
        self.seen.append(cache.dtype)
        return self.model(tokens, label=label, cache=cache)


@pytest.mark.parametrize("pos", ["relative", "absolute"])
def test_the_sampler_asks_the_model_for_the_cache_dtype_it_is_given(pos):
    # auto: fp16 where the CPU kernel reads it (relative positions), else the model's dtype;
    # absolute positions re-feed their window past max_seq_len, with a fresh cache of the same
    torch.manual_seed(0)
    base = build("transformer", {**TINY_T, "pos": pos})
    auto = torch.float16 if pos == "relative" else torch.float32
    for kv_cache, want in [("auto", auto), ("float32", torch.float32), ("float16", torch.float16)]:
        model = CacheDtypes(base)
        out = sample(model, n=2, max_tokens=30, primer_ids=[1, 2], seed=0, kv_cache=kv_cache)
        assert [len(s) for s in out] == [32, 32] and set(model.seen) == {want}


@pytest.mark.parametrize("family", ["transformer", "lstm"])
def test_seeded_reproducible_and_seed_matters(family):
    cfg = (
        TINY_T if family == "transformer" else {"vocab_size": VOCAB, "d_embed": 16, "d_hidden": 16}
    )
    torch.manual_seed(0)
    model = build(family, cfg)
    kw = {"n": 3, "max_tokens": 20, "primer_ids": [1, 2], "top_k": 10}
    a = sample(model, seed=5, **kw)
    b = sample(model, seed=5, **kw)
    c = sample(model, seed=6, **kw)
    assert a == b and a != c
    assert all(len(s) == 22 and s[:2] == [1, 2] for s in a)


def test_batched_samples_equal_single_greedy_decode():
    torch.manual_seed(0)
    model = build("transformer", TINY_T).eval()
    # exact cache: greedy choices cannot flip on a rounding
    seqs = sample(model, n=2, max_tokens=10, primer_ids=[3, 4, 5], temperature=0.0,
                  kv_cache="float32")  # fmt: skip
    ids = torch.tensor([[3, 4, 5]])
    with torch.no_grad():  # greedy decode by full recompute, no cache
        for _ in range(10):
            ids = torch.cat([ids, model(ids)[0][:, -1].argmax(-1, keepdim=True)], 1)
    assert seqs[0] == seqs[1] == ids[0].tolist()


@pytest.mark.parametrize("pos", ["relative", "absolute"])
def test_sliding_window_generates_past_max_seq_len(pos):
    torch.manual_seed(0)
    model = build("transformer", {**TINY_T, "pos": pos})
    out = sample(model, n=2, max_tokens=50, primer_ids=[1], seed=0)  # 51 > 16 = max_seq_len
    assert [len(s) for s in out] == [51, 51]
    assert all(0 <= t < VOCAB for s in out for t in s)


def test_relative_window_trim_equals_recompute_for_one_layer():
    # with one layer a trimmed relative cache is exactly a recompute of the window, so greedy
    # decoding with the cache must match greedy decoding on the last W tokens from scratch
    torch.manual_seed(0)
    model = build("transformer", {**TINY_T, "n_layers": 1}).eval()
    window = 6  # an exact cache: greedy choices cannot flip on a rounding
    out = sample(model, n=1, max_tokens=20, primer_ids=[1, 2], temperature=0.0, window=window,
                 kv_cache="float32")[0]  # fmt: skip
    ids = [1, 2]
    with torch.no_grad():
        for _ in range(20):
            ctx = torch.tensor([ids[-window:]])
            ids.append(int(model(ctx)[0][0, -1].argmax()))
    assert out == ids


def test_a_prelude_is_read_first_kept_through_the_window_and_left_out_of_the_result():
    # greedy decoding with a prelude equals a full recompute whose context is the prelude plus
    # the primer and what followed, re-read as prelude + recent half window once it fills
    torch.manual_seed(0)
    model = build("transformer", {**TINY_T, "n_layers": 1}).eval()
    with torch.no_grad():  # sharper logits: greedy choices that follow the context
        for p in model.parameters():
            p.mul_(4)
    prelude, window = [7, 8, 9], 12
    out = sample(model, n=1, max_tokens=20, primer_ids=[1, 2], temperature=0.0, window=window,
                 kv_cache="float32", prelude_ids=prelude)[0]  # fmt: skip
    plain = sample(model, n=1, max_tokens=20, primer_ids=[1, 2], temperature=0.0,
                   window=window, kv_cache="float32")[0]  # fmt: skip
    assert out[:2] == [1, 2] and len(out) == 22 and out != plain
    ids, ctx = [1, 2], [*prelude, 1, 2]
    with torch.no_grad():
        for _ in range(20):
            ids.append(int(model(torch.tensor([ctx]))[0][0, -1].argmax()))
            ctx = ctx + ids[-1:] if len(ctx) < window else prelude + ids[-(window // 2) :]
    assert out == ids
    with pytest.raises(MidiforgeError, match="prelude_ids: 6 ids leave no room"):
        sample(model, primer_ids=[1], window=window, prelude_ids=[7] * 6)


def test_eos_ends_a_sample():
    torch.manual_seed(0)
    model = build("lstm", {"vocab_size": VOCAB, "d_embed": 8, "d_hidden": 8})
    first = sample(model, n=1, max_tokens=5, primer_ids=[1], temperature=0.0)[0]
    k = next(k for k in range(2, 6) if first[k] not in first[1:k])  # a first appearance
    out = sample(model, n=1, max_tokens=5, primer_ids=[1], temperature=0.0, eos_id=first[k])[0]
    assert out == first[:k]


def test_grammar_mask_on_remi_gives_zero_type_errors():
    tok = build_tokenizer("remi")
    grammar = TypeGrammar(tok)
    bos, pitch = tok.vocab["BOS_None"], tok.vocab["Pitch_60"]
    row = grammar.mask(torch.tensor([pitch]))[0]
    names = {t.split("_")[0] for t, i in tok.vocab.items() if row[i]}
    assert "Velocity" in names and "Pitch" not in names and "Position" not in names
    torch.manual_seed(0)
    model = build("lstm", {"vocab_size": len(tok), "d_embed": 16, "d_hidden": 16})
    kw = {"n": 2, "max_tokens": 60, "primer_ids": [bos], "seed": 1}
    free = sample(model, **kw)
    masked = sample(model, grammar=grammar, **kw)
    free_errors = sum(count_errors(tok, s[1:]) for s in free)
    assert free_errors > 10  # an untrained model breaks the grammar everywhere
    for s in masked:  # every transition follows the type graph
        types = [tok[i].split("_")[0] for i in s[1:]]
        graph = tok.tokens_types_graph
        bad = [(a, b) for a, b in itertools.pairwise(types) if b not in graph[a]]
        assert bad == []
    assert sum(count_errors(tok, s[1:]) for s in masked) < free_errors
    assert math.isfinite(free_errors)


def test_a_lead_is_read_where_a_drawn_note_would_pass_it_or_take_its_instrument():
    from midiforge.data.encode import FIELD, NOTE_FIELDS
    from midiforge.sampling.autoregressive import Lead

    lead = Lead(onset=np.array([0.0, 1.0, 2.0]), pitch=np.array([60.0, 62.0, 64.0]),
                duration=np.ones(3), velocity=np.full(3, 80.0),
                program=np.full(3, 40.0)).start(2)  # fmt: skip
    guitar = torch.tensor([24.0, 24.0])
    # on the lead's onset a drawn note still comes first (chords sort below the tune in
    # training); past it, the lead's note is read
    assert lead.due(torch.tensor([0.0, 1.5]), guitar).tolist() == [False, True]
    assert lead.due(torch.tensor([0.0, 0.0]), torch.tensor([40.0, 24.0])).tolist() == [True, False]
    rows = lead.take(torch.tensor([0.0, 0.5]), torch.tensor([True, False]), FIELD,
                     len(NOTE_FIELDS))  # fmt: skip
    # the second sample is past the lead's first onset: its gap is 0, never negative
    assert rows[:, FIELD["onset"]].tolist() == [0.0, 0.5]
    assert rows[:, FIELD["delta"]].tolist() == [0.0, 0.0]
    assert rows[:, FIELD["pitch"]].tolist() == [60.0, 60.0]
    assert rows[:, FIELD["program"]].tolist() == [40.0, 40.0]
    assert lead.at.tolist() == [1, 0]  # only the sample that read it moved on
    assert lead.due(torch.tensor([0.5, 0.5]), guitar).tolist() == [False, True]
    done = lead.start(1)
    done.at += 3
    assert done.due(torch.tensor([9.0]), torch.tensor([40.0])).tolist() == [False]  # all read
