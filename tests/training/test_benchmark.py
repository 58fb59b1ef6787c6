"""``midiforge benchmark``: a tiny model trained and scored on each published protocol."""

from __future__ import annotations

import json

from midiforge.metrics import benchmarks as bm
from midiforge.training.benchmark import benchmark

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
    res = benchmark(
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
    again = benchmark(
        "jsb16", run=res.run_dir, out=tmp_path / "again", datasets=datasets, limit_pieces=3
    )
    assert again.scores["valid"]["nats"] == res.scores["valid"]["nats"]


def test_polyphonic_end_to_end_tiny_gru(datasets, tmp_path):
    res = benchmark(
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


def test_jsb16_trains_with_transposed_chorales(datasets, tmp_path):
    # train.augment transposes the training windows through the manifest's pitch ids (the
    # benchmark datasets have no tokenizer.json); scoring reads valid and test as written
    res = benchmark(
        "jsb16",
        model="gru",
        out=tmp_path,
        datasets=datasets,
        overrides=[*TINY["gru"], *TINY_TRAIN, "train.augment=true", "train.augment_pitch=6"],
        device="cpu",
        limit_pieces=3,
    )
    assert 2.0 < res.scores["valid"]["nats"] < 6.0
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "augment: true" in saved and "augment_pitch: 6" in saved


def test_cli_rejects_two_corpora(capsys):
    from midiforge.cli import main

    assert main(["benchmark", "polyphonic", "--set", "jsb", "--set", "piano"]) == 2
    assert "one corpus at a time" in capsys.readouterr().err
