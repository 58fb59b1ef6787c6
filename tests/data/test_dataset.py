"""PreparedDataset checks and the token/note windows: coverage, padding, augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from midiforge.data.augment import TokenShifter, augment_notes
from midiforge.data.dataset import NoteWindows, TokenWindows
from midiforge.errors import MidiforgeError
from midiforge.schema import FIELD
from midiforge.store.dataset_dir import PreparedDataset


@pytest.fixture(scope="module")
def data(small_dataset: Path) -> PreparedDataset:
    return PreparedDataset(small_dataset)


@pytest.mark.parametrize("stride", [None, 100])
def test_eval_token_windows_count_every_target_once(data: PreparedDataset, stride) -> None:
    seq_len = 256
    windows = TokenWindows(data, "valid", seq_len, train=False, stride=stride)
    seqs = data.tokens("valid")
    seen = [np.zeros(n, int) for n in seqs.lengths]
    for i in range(len(windows)):
        item = windows[i]
        assert item["tokens"].shape == (seq_len + 1,) and item["tokens"].dtype == torch.long
        assert item["mask"].shape == (seq_len,) and item["mask"].dtype == torch.bool
        f, start, _ = windows.windows[i]
        src = seqs[f]
        targets = np.arange(start + 1, start + 1 + seq_len)[item["mask"].numpy()]
        seen[f][targets] += 1
        np.testing.assert_array_equal(item["tokens"][1:][item["mask"]].numpy(), src[targets])
    for counts in seen:
        assert counts[0] == 0 and np.all(counts[1:] == 1)


def test_short_files_are_padded_and_masked(data: PreparedDataset) -> None:
    longest = int(data.tokens("test").lengths.max())
    windows = TokenWindows(data, "test", longest + 50, train=False)
    item = windows[0]
    n = int(data.tokens("test").lengths[0])
    assert int(item["mask"].sum()) == n - 1
    assert torch.all(item["tokens"][n:] == data.pad_id)
    assert not item["mask"][n - 1 :].any()


def test_training_windows_are_seeded_and_cover_files(data: PreparedDataset) -> None:
    a = TokenWindows(data, "train", 64, train=True, seed=3)
    b = TokenWindows(data, "train", 64, train=True, seed=3)
    assert len(a) == data.tokens("train").offsets[-1] // 64
    assert torch.equal(a[5]["tokens"], b[5]["tokens"])
    a.set_epoch(1)
    assert not torch.equal(a[5]["tokens"], b[5]["tokens"])
    labels = {int(a[i]["label"]) for i in range(40)}
    assert labels == {0, 1}  # both folders get sampled
    assert all(bool(a[i]["mask"].all()) for i in range(10))


def test_token_transposition_shifts_pitches_in_range(data: PreparedDataset) -> None:
    shifter = TokenShifter.for_tokenizer(data.tokenizer)
    plain = TokenWindows(data, "train", 128, train=True, seed=1)
    moved = TokenWindows(data, "train", 128, train=True, seed=1, transpose=5, velocity_shift=2)
    shifts = set()
    for i in range(20):
        x, y = plain[i]["tokens"].numpy(), moved[i]["tokens"].numpy()
        px, py = shifter.pitch_of[x], shifter.pitch_of[y]
        assert np.array_equal(px >= 0, py >= 0)  # same token kinds in the same places
        delta = set((py - px)[px >= 0].tolist())
        assert len(delta) == 1
        shifts |= delta
        assert py[py >= 0].min() >= 21 and py.max() <= 108
    assert len(shifts) > 1 and all(abs(s) <= 5 for s in shifts)


def test_note_windows_cover_every_note_once(data: PreparedDataset) -> None:
    windows = NoteWindows(data, "valid", 64, train=False)
    total = sum(int(windows[i]["mask"].sum()) for i in range(len(windows)))
    assert total == data.notes("valid").offsets[-1]
    item = windows[0]
    assert item["notes"].shape == (64, 7) and item["notes"].dtype == torch.float32


def test_note_windows_keep_each_onset_in_its_beat(data: PreparedDataset) -> None:
    # each window counts from its first note's beat, so every onset moves by whole beats
    windows = NoteWindows(data, "valid", 64, train=False)
    rows = np.concatenate([w["notes"][w["mask"]].numpy() for w in windows])
    flat = np.asarray(data.notes("valid").flat, np.float32).reshape(-1, rows.shape[1])
    assert len(rows) == len(flat)
    moved = flat[:, FIELD["onset"]] - rows[:, FIELD["onset"]]
    np.testing.assert_allclose(moved, np.round(moved), atol=1e-3)
    firsts = np.cumsum([0] + [int(w["mask"].sum()) for w in windows])[:-1]
    assert rows[firsts, FIELD["onset"]].max() < 1  # each window counts from that beat
    assert (rows[firsts, FIELD["onset"]] > 0).any()  # not from the note


def test_note_augmentation_stays_in_range(data: PreparedDataset) -> None:
    rng = np.random.default_rng(0)
    notes = np.array(data.notes("train")[0][:200])
    for _ in range(50):
        out = augment_notes(notes, rng, transpose=12, time_stretch=0.2, velocity_scale=0.5)
        assert out[:, FIELD["pitch"]].min() >= 0 and out[:, FIELD["pitch"]].max() <= 127
        shift = out[:, FIELD["pitch"]] - notes[:, FIELD["pitch"]]
        assert np.all(shift == shift[0]) and abs(shift[0]) <= 12
        np.testing.assert_allclose(
            out[:, FIELD["frequency"]], 440 * 2 ** ((out[:, FIELD["pitch"]] - 69) / 12), rtol=1e-5
        )
        ratio = out[1:, FIELD["onset"]] / np.maximum(notes[1:, FIELD["onset"]], 1e-6)
        keep = notes[1:, FIELD["onset"]] > 0
        assert np.allclose(ratio[keep], ratio[keep][0], rtol=1e-4)
        assert 0.8 - 1e-6 <= ratio[keep][0] <= 1.2 + 1e-6
        assert out[:, FIELD["velocity"]].min() >= 1 and out[:, FIELD["velocity"]].max() <= 127
    windows = NoteWindows(data, "train", 32, transpose=3, time_stretch=0.1, velocity_scale=0.1)
    item = windows[0]
    assert item["mask"].all() and item["notes"][:, FIELD["pitch"]].max() <= 127


@pytest.mark.parametrize("balance", [0.0, 0.5, 1.0])
def test_balance_draws_styles_by_size_to_the_power_one_minus_balance(
    data: PreparedDataset, balance: float
) -> None:
    """Pop songs are ~10x the folk tunes' tokens: balance 0 keeps that, 1 draws them evenly."""
    labels = data.file_labels("train")
    lengths = data.tokens("train").lengths
    sizes = np.array([lengths[labels == k].sum() for k in range(len(data.labels))], float)
    expected = sizes ** (1 - balance) / (sizes ** (1 - balance)).sum()
    windows = TokenWindows(data, "train", 32, seed=3, epoch_windows=3000, balance=balance)
    drawn = np.bincount(
        [int(windows[i]["label"]) for i in range(len(windows))], minlength=len(sizes)
    )
    share = drawn / drawn.sum()
    assert np.allclose(share, expected, atol=0.03), (share, expected)


def test_balance_outside_zero_to_one_is_refused(data: PreparedDataset) -> None:
    with pytest.raises(MidiforgeError, match="balance"):
        TokenWindows(data, "train", 32, balance=1.5)


def _starts(windows) -> np.ndarray:
    """Per training window, whether it starts at its file's first element."""
    return np.array([windows._locate(i, windows.span + windows.shift)[1] == 0
                     for i in range(len(windows))])  # fmt: skip


def test_piece_start_draws_that_share_of_windows_from_the_files_beginning(
    data: PreparedDataset,
) -> None:
    bos = data.special_ids["BOS"]
    off = TokenWindows(data, "train", 32, seed=3, epoch_windows=2000)
    on = TokenWindows(data, "train", 32, seed=3, epoch_windows=2000, piece_start=0.25)
    assert _starts(off).mean() < 0.02  # a uniform start hardly ever lands on a beginning
    share = _starts(on).mean()
    assert 0.22 < share < 0.30, share  # 0.25, plus the few uniform draws that land at 0
    begins = [i for i in range(200) if on[i]["tokens"][0] == bos]
    assert len(begins) > 30 and all(bool(on[i]["mask"][0]) for i in begins)
    # the same files are drawn (styles keep their balance); a window only moves to the start
    for i in range(300):
        f_on, start_on, *_ = on._locate(i, 33)
        f_off, start_off, *_ = off._locate(i, 33)
        assert f_on == f_off and start_on in (0, start_off)
    notes = NoteWindows(data, "train", 16, seed=3, epoch_windows=400, piece_start=1.0)
    assert _starts(notes).all()
    with pytest.raises(MidiforgeError, match="piece_start"):
        TokenWindows(data, "train", 32, piece_start=1.5)
