"""Fill-in-the-middle: the markers ``prepare --fim`` adds and the windows ``train.fim`` reorders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midiforge.data import fim
from midiforge.data.dataset import TokenWindows
from midiforge.data.encode import ids_to_score
from midiforge.data.prepare import prepare
from midiforge.errors import MidiforgeError
from midiforge.store.dataset_dir import PreparedDataset

SEQ = 256


@pytest.fixture(scope="module")
def fim_dataset(small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small corpus prepared as ``small_dataset`` is, plus the markers."""
    out = tmp_path_factory.mktemp("fim") / "ds"
    prepare(small_corpus, out, labels_from="folder", jobs=2, quiet=True, fim=True)
    return out


def test_prepare_adds_the_two_markers_after_the_vocabulary_and_nothing_else(
    fim_dataset: Path, small_dataset: Path
):
    plain, marked = PreparedDataset(small_dataset), PreparedDataset(fim_dataset)
    vocab, base = marked.tokenizer.vocab, plain.tokenizer.vocab
    assert len(vocab) == len(base) + 2 == marked.vocab_size
    assert fim.marker_ids(vocab) == (len(base), len(base) + 1)
    assert fim.marker_ids(base) is None
    assert all(vocab[t] == i for t, i in base.items())
    for split in ("train", "valid"):  # the markers are never stored in a piece
        a, b = plain.tokens(split), marked.tokens(split)
        assert len(a) == len(b)
        assert all(np.array_equal(a[i], b[i]) for i in range(len(a)))


def _find(stream: np.ndarray, part: np.ndarray) -> list[int]:
    n = len(part)
    return [i for i in range(len(stream) - n + 1) if np.array_equal(stream[i : i + n], part)]


def test_a_reordered_window_is_the_suffix_then_the_prefix_and_middle_of_the_piece(
    fim_dataset: Path,
):
    data = PreparedDataset(fim_dataset)
    vocab = data.tokenizer.vocab
    suffix_id, prefix_id = fim.marker_ids(vocab)
    bar = vocab["Bar_None"]
    seqs = data.tokens("train")
    rng = np.random.default_rng(0)
    checked = 0
    for trial in range(40):
        f = trial % len(seqs)
        stream = np.asarray(seqs[f], np.int64)
        start = int(rng.integers(max(1, len(stream) - SEQ)))
        out = fim.reorder(stream, start, SEQ + 1, bar, (suffix_id, prefix_id), rng)
        if out is None:
            continue
        ids, counted = out
        assert len(ids) == len(counted) <= SEQ + 1
        assert ids[0] == suffix_id and list(ids).count(prefix_id) == 1
        p = list(ids).index(prefix_id)
        suffix, body = ids[1:p], ids[p + 1 :]
        assert 1 <= len(suffix) <= fim.MAX_SUFFIX
        assert suffix[0] == bar  # the suffix opens on the bar line after the middle
        (first,) = _find(stream, body)[:1]  # the prefix and middle: one stretch of the piece
        after = [b for b in _find(stream, suffix) if b >= first + len(body)]
        assert after, "the suffix comes from after the middle"
        b = after[0]
        if b == first + len(body):  # the middle whole: it ends where the suffix starts
            assert (body == bar).sum() >= 1  # it opens on a bar line inside the body
            assert len(ids) == SEQ + 1 or first == 0  # full unless the prefix hit the start
        assert not counted[0] and not counted[1] and not counted[p]
        assert counted[2:p].all() and counted[p + 1 :].all()
        checked += 1
    assert checked >= 30


def test_windows_with_fim_zero_are_the_plain_windows_and_fim_one_reorders(
    fim_dataset: Path, small_dataset: Path
):
    plain = TokenWindows(PreparedDataset(small_dataset), "train", SEQ, transpose=3, seed=4)
    same = TokenWindows(PreparedDataset(fim_dataset), "train", SEQ, transpose=3, seed=4, fim=0.0)
    for i in range(20):
        a, b = plain[i], same[i]
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in ("tokens", "mask"))
    data = PreparedDataset(fim_dataset)
    suffix_id, prefix_id = fim.marker_ids(data.tokenizer.vocab)
    reordered = TokenWindows(data, "train", SEQ, seed=4, fim=1.0)
    firsts = []
    for i in range(20):
        item = reordered[i]
        tokens, mask = item["tokens"].numpy(), item["mask"].numpy()
        firsts.append(tokens[0])
        if tokens[0] == suffix_id:
            p = list(tokens).index(prefix_id)
            assert not mask[0] and not mask[p - 1] and mask[p]
    assert sum(f == suffix_id for f in firsts) >= 15


def test_fim_needs_a_dataset_with_markers(small_dataset: Path):
    with pytest.raises(MidiforgeError, match="--fim"):
        TokenWindows(PreparedDataset(small_dataset), "train", SEQ, fim=0.5)
    with pytest.raises(MidiforgeError, match="fim"):
        prepare(small_dataset, small_dataset.parent / "x", tokenizer="tsd", fim=True)


def test_the_markers_are_dropped_when_decoding(fim_dataset: Path):
    data = PreparedDataset(fim_dataset)
    tok = data.tokenizer
    ids = [int(i) for i in data.tokens("valid")[0][:400]]
    markers = list(fim.marker_ids(tok.vocab))
    plain, marked = ids_to_score(tok, ids), ids_to_score(tok, markers[:1] + ids + markers[1:])
    assert plain.note_num() > 0 and marked.note_num() == plain.note_num()
    assert [t.notes.numpy()["pitch"].tolist() for t in plain.tracks] == [
        t.notes.numpy()["pitch"].tolist() for t in marked.tracks
    ]
