"""Benchmark encodings round-trip the published data exactly; a tiny model runs each end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from midiforge.data.augment import TokenShifter
from midiforge.data.dataset import TokenWindows
from midiforge.errors import MidiforgeError
from midiforge.metrics import benchmarks as bm
from midiforge.metrics.likelihood import sequence_nll
from midiforge.schema import NO_LABEL
from midiforge.store.dataset_dir import PreparedDataset


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


def test_encoded_pieces_are_written_as_a_dataset_the_reader_reads(datasets, tmp_path):
    pieces = {s: [bm.encode_jsb16(p) for p in ps[:4]] for s, ps in bm.load_jsb16(datasets).items()}
    out = bm.write_token_dataset(tmp_path / "ds", pieces, "jsb16", bm.JSB16_VOCAB)
    data = PreparedDataset(out)
    assert data.vocab_size == bm.JSB16_VOCAB and data.pad_id == bm.PAD and data.labels == []
    for split, seqs in pieces.items():
        assert data.split_files(split) == len(seqs) and len(data.notes(split)[0]) == 0
        for i, ids in enumerate(seqs):
            np.testing.assert_array_equal(data.tokens(split)[i], ids)
        assert data.file_labels(split).tolist() == [NO_LABEL] * len(seqs)
    assert data.manifest["options"] == {"benchmark": "jsb16"}
    assert [f["tokens"] for f in data.files("test")] == [len(p) for p in pieces["test"]]


def test_pitch_block_shifter_by_hand():
    shifter = TokenShifter.for_pitch_block(6, first_id=2, low=60, high=62)  # ids 2, 3, 4
    assert shifter.pitch_of.tolist() == [-1, -1, 60, 61, 62, -1]
    rng = np.random.default_rng(0)
    ids = np.array([0, 2, 5, 3, 1])  # only pitch 61 (id 3) and 60 (id 2): shift 0..+1 fits
    moved = {tuple(shifter.transpose(ids, 2, rng).tolist()) for _ in range(40)}
    assert moved == {(0, 2, 5, 3, 1), (0, 3, 5, 4, 1)}


@pytest.mark.parametrize("name, corpus", [("jsb16", None), ("polyphonic", "piano")])
def test_train_windows_transpose_and_evaluation_windows_never(datasets, tmp_path, name, corpus):
    key = bm.benchmark_key(name, corpus)
    pieces = {s: ps[:4] for s, ps in bm.encode_benchmark(name, corpus, datasets).items()}
    block = bm.pitch_ids(key)
    out = bm.write_token_dataset(tmp_path / "ds", pieces, "t", bm.vocab_size(key), block)
    data = PreparedDataset(out)
    first, top = block["first_id"], block["first_id"] + block["high"] - block["low"]
    assert top == bm.vocab_size(key) - 1  # the pitch block ends the vocabulary
    plain = TokenWindows(data, "train", 64, train=True, seed=1)
    moved = TokenWindows(data, "train", 64, train=True, seed=1, transpose=6)
    shifts = set()
    for i in range(30):
        x, y = plain[i]["tokens"].numpy(), moved[i]["tokens"].numpy()
        pitch = x >= first
        assert np.array_equal(pitch, y >= first)
        np.testing.assert_array_equal(x[~pitch], y[~pitch])  # BOS, REST / END_STEP, PAD stay
        delta = set((y - x)[pitch].tolist())
        assert len(delta) <= 1  # one shift for the whole window
        shifts |= delta
        assert y.max() <= top
    assert len(shifts - {0}) > 1 and all(abs(s) <= 6 for s in shifts)
    for split in ("valid", "test"):  # train=False: read as written, whatever transpose says
        windows = TokenWindows(data, split, 64, train=False, transpose=6)
        seqs = data.tokens(split)
        for i in range(len(windows)):
            f, start, _ = windows.windows[i]
            item = windows[i]
            mask = item["mask"].numpy()
            targets = np.arange(start + 1, start + 65)[mask]
            np.testing.assert_array_equal(item["tokens"].numpy()[1:][mask], seqs[f][targets])


def test_benchmark_names_are_checked():
    assert bm.benchmark_key("jsb16", None) == "jsb16"
    assert bm.benchmark_key("polyphonic", None) == "polyphonic/jsb"
    with pytest.raises(MidiforgeError, match="benchmark: 'bach'"):
        bm.benchmark_key("bach", None)
    with pytest.raises(MidiforgeError, match="--set: 'mozart'"):
        bm.benchmark_key("polyphonic", "mozart")
