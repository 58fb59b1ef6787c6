"""Benchmark encodings round-trip the published data exactly; a tiny model runs each end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import torch

from midiforge.metrics import benchmarks as bm
from midiforge.metrics.likelihood import sequence_nll


def test_jsb16_round_trip_every_piece(datasets):
    data = bm.load_jsb16(datasets)
    for split, pieces in data.items():
        for piece in pieces:
            ids = bm.encode_jsb16(piece)
            assert ids[0] == bm.BOS and len(ids) == 1 + 4 * len(piece)
            assert bm.decode_jsb16(ids) == piece, split
    # by hand: soprano 72, alto silent, tenor 60, bass 48 -> BOS, 75, REST, 63, 51
    assert bm.encode_jsb16([[72, -1, 60, 48]]).tolist() == [1, 75, 2, 63, 51]


def test_polyphonic_round_trip_every_piece(datasets):
    for corpus in ("jsb", "nottingham"):
        rolls = bm.load_rolls(datasets, corpus)
        for pieces in rolls.values():
            for roll in pieces:
                ids = bm.encode_roll(roll)
                np.testing.assert_array_equal(bm.decode_roll(ids), roll)
                # every step ends with END_STEP, so steps == frames
                assert int((ids == bm.SEP).sum()) == len(roll)
    # by hand: frame 0 = A0 and C1 (columns 0, 3), frame 1 silent
    roll = np.zeros((2, 88), np.uint8)
    roll[0, [3, 0]] = 1
    ids = bm.encode_roll(roll)
    assert ids.tolist() == [1, 3, 6, 2, 2]
    assert bm.step_index(ids).tolist() == [0, 0, 0, 1]


class _Uniform(torch.nn.Module):
    """Uniform next-token distribution: NLL is ln V for every target, whatever the context."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens):
        return torch.zeros(*tokens.shape, self.vocab), None


class _Copy(torch.nn.Module):
    """Puts all mass on "previous token + 1": exact NLL per target is known in closed form."""

    def forward(self, tokens):
        logits = torch.full((*tokens.shape, 50), -1e4)
        logits.scatter_(-1, (tokens + 1).clamp(max=49)[..., None], 0.0)
        return logits, None


def test_scorers_count_every_target_once():
    ids = np.arange(40)
    for context in (None, 7, 16, 39, 100):
        nll = sequence_nll(_Copy(), ids, context)  # every target is previous + 1 -> NLL 0
        assert nll.shape == (39,) and np.allclose(nll, 0.0, atol=1e-6)
    bad = np.array([0, 1, 5, 6, 9])  # targets 1 ok, 5 wrong, 6 ok, 9 wrong
    assert (sequence_nll(_Copy(), bad, 2) > 1).tolist() == [False, True, False, True]
    # per frame on a uniform model: roll with frames {A0}, {A0, C1}, {} -> targets
    # [3, 2 | 3, 6, 2 | 2]; frame 0 is not scored, so (3 + 1) ln V over 2 frames
    roll = np.zeros((3, 88), np.uint8)
    roll[0, 0] = roll[1, 0] = roll[1, 3] = 1
    ids = bm.encode_roll(roll)
    res = bm.score_split(_Uniform(bm.POLY_VOCAB), [ids], None, "frame")
    assert res["count"] == 2
    assert math.isclose(res["nats"], 4 * math.log(bm.POLY_VOCAB) / 2, rel_tol=1e-6)
    res = bm.score_split(_Uniform(bm.POLY_VOCAB), [ids], 3, "token")
    assert res["count"] == 6 and math.isclose(res["nats"], math.log(bm.POLY_VOCAB), rel_tol=1e-6)


TINY = {
    "transformer": [
        "model.d_model=16",
        "model.n_layers=1",
        "model.n_heads=2",
        "model.d_ff=32",
        "model.max_seq_len=32",
        "model.max_rel=32",
    ],
    "gru": ["model.d_embed=16", "model.d_hidden=16", "model.n_layers=1"],
}
TINY_TRAIN = [
    "train.steps=4",
    "train.seq_len=32",
    "train.batch_size=4",
    "train.eval_every=2",
    "train.eval_batches=1",
    "train.warmup_steps=1",
]


def test_jsb16_end_to_end_tiny_transformer(datasets, tmp_path):
    res = bm.benchmark(
        "jsb16",
        model="transformer",
        out=tmp_path,
        datasets=datasets,
        overrides=TINY["transformer"] + TINY_TRAIN,
        device="cpu",
        limit_pieces=3,
    )
    for split in ("valid", "test"):
        # an untrained model is near uniform: ln 131 = 4.875 nats/token; 4 steps cannot reach 0
        assert 2.0 < res.scores[split]["nats"] < 6.0
        assert res.scores[split]["count"] > 0
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["scores"]["valid"]["nats"] == res.scores["valid"]["nats"]
    assert "Music Transformer (published) | valid | 0.335" in res.table()
    # loading the same run again gives the same figures (no retraining, deterministic scoring)
    again = bm.benchmark(
        "jsb16", run=res.run_dir, out=tmp_path / "again", datasets=datasets, limit_pieces=3
    )
    assert again.scores["valid"]["nats"] == res.scores["valid"]["nats"]


def test_polyphonic_end_to_end_tiny_gru(datasets, tmp_path):
    res = bm.benchmark(
        "polyphonic",
        corpus="jsb",
        model="gru",
        out=tmp_path,
        datasets=datasets,
        overrides=TINY["gru"] + TINY_TRAIN,
        device="cpu",
        limit_pieces=3,
    )
    # a near-uniform model pays about (notes per frame + 1) * ln 91 ≈ 5 * 4.51 nats per frame
    assert 10.0 < res.scores["test"]["nats"] < 40.0
    assert res.scores["test"]["count"] == sum(
        len(r) - 1 for r in bm.load_rolls(datasets, "jsb")["test"][:3]
    )
    assert "RNN-NADE (published) | test | 5.190" in res.table()


def test_cli_rejects_two_corpora(capsys):
    from midiforge.cli import main

    assert main(["benchmark", "polyphonic", "--set", "jsb", "--set", "piano"]) == 2
    assert "one corpus at a time" in capsys.readouterr().err
