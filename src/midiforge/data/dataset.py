"""Cut a DATASET dir (read by :class:`midiforge.store.dataset_dir.PreparedDataset`) into
torch training windows.

Window item formats (docs/architecture.md):

* :class:`TokenWindows` → ``{"tokens": LongTensor[seq_len + 1], "mask": BoolTensor[seq_len],
  "label": LongTensor[]}``; inputs are ``tokens[:-1]``, targets ``tokens[1:]``, ``mask`` marks
  the targets that count in the loss (padding with the PAD id is masked out).
* :class:`NoteWindows` → ``{"notes": FloatTensor[length, n_fields], "mask": BoolTensor[length],
  "label": LongTensor[]}``, raw note fields except ``onset``, which counts from the beat the
  window's first note is in (so onsets stay small however deep into a piece the window starts,
  and each keeps its place in the beat).

Training windows (``train=True``) pick a random position uniformly over all of the split's
elements, so files are sampled in proportion to their length, then a random window in that
file. With ``balance`` > 0 a style label is drawn first, with probability proportional to
``n_label ** (1 - balance)`` (``n_label``: the label's elements), then a position inside that
label's files: 0 keeps the corpus' proportions, 1 draws every style equally often. This is
the temperature sampling multilingual language models use so a small corpus (the chorales)
is not drowned by a large one (POP909). With ``piece_start`` > 0 that share of the windows
starts at the file's first element instead: a uniform start almost never lands there (one
window in ``length - span`` of a file), so a model would learn how music goes on but not how
a piece begins (BOS, then a folk tune's pickup bar). The draw depends only on
``(seed, epoch, index)``, so runs are reproducible with any number of DataLoader workers.
Evaluation windows (``train=False``) tile each file with a stride so that every target is
counted exactly once.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from midiforge.data import fim as fim_format
from midiforge.data.augment import TokenShifter, augment_notes
from midiforge.errors import MidiforgeError
from midiforge.schema import FIELD, NOTE_FIELDS
from midiforge.store.dataset_dir import PreparedDataset, Sequences


def _eval_windows(lengths: np.ndarray, span: int, stride: int, shift: int) -> np.ndarray:
    """(file, start, first counted position) rows tiling each file so every target counts once.

    Targets of a file of n elements are positions ``shift .. n-1`` (tokens: ``shift=1``, the
    first token is only an input; notes: ``shift=0``). Window k starts at k·stride, covers
    targets ``start+shift .. start+shift+span-1`` and counts those beyond the previous
    window's reach.
    """
    rows = []
    for f, n in enumerate(lengths.tolist()):
        start, reach = 0, shift - 1  # reach: last target position already counted
        while True:
            rows.append((f, start, reach + 1))
            reach = start + shift + span - 1
            if reach >= n - 1:
                break
            start += stride
    return np.array(rows, np.int64).reshape(-1, 3)


def _label_groups(
    lengths: np.ndarray, labels: np.ndarray, balance: float
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    """Label draw probabilities and, per label, (files, cumulative element ends) to draw from.

    Unlabelled files (-1) are one group of their own.
    """
    if not 0 <= balance <= 1:
        raise MidiforgeError(f"train.balance: {balance} is not accepted; give 0..1")
    lengths = np.asarray(lengths, np.int64)
    members, sizes = [], []
    for label in np.unique(labels):
        files = np.flatnonzero((labels == label) & (lengths > 0))
        if len(files):
            members.append((files, np.cumsum(lengths[files])))
            sizes.append(float(lengths[files].sum()))
    weights = np.asarray(sizes) ** (1.0 - balance)
    return weights / weights.sum(), members


class _Windows(Dataset):
    """What token and note windows share: file sampling, eval tiling, labels, epochs."""

    shift = 1  # first target position in a window (tokens: next-token targets)

    def __init__(
        self,
        seqs: Sequences,
        labels: np.ndarray,
        span: int,
        *,
        train: bool,
        stride: int | None,
        seed: int,
        epoch_windows: int | None,
        balance: float = 0.0,
        piece_start: float = 0.0,
    ) -> None:
        if span < 1:
            raise MidiforgeError(f"window length {span} is not accepted; give 1 or more")
        if len(seqs) == 0:
            raise MidiforgeError("this split holds no files; prepare more data or another split")
        self.seqs, self.file_label, self.span, self.train = seqs, labels, span, train
        self.seed, self.epoch = seed, 0
        self.stride = span if stride is None else stride
        if not 1 <= self.stride <= span:
            raise MidiforgeError(f"stride {stride} is not accepted; give 1..{span}")
        total = int(seqs.offsets[-1])
        self.n_train = epoch_windows or max(1, total // span)
        self.windows = None if train else _eval_windows(seqs.lengths, span, self.stride, self.shift)
        self.groups = _label_groups(seqs.lengths, labels, balance) if train and balance else None
        if not 0 <= piece_start <= 1:
            raise MidiforgeError(f"train.piece_start: {piece_start} is not accepted; give 0..1")
        self.piece_start = piece_start if train else 0.0

    def set_epoch(self, epoch: int) -> None:
        """Draw different training windows in each epoch (same ones for the same epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n_train if self.train else len(self.windows)

    def _locate(self, index: int, want: int) -> tuple[int, int, int, np.random.Generator]:
        """(file, start, first counted position) of window ``index``; ``want`` = elements."""
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if not self.train:
            f, start, first = self.windows[index]
            return int(f), int(start), int(first), rng
        if self.groups is None:
            position = int(rng.integers(int(self.seqs.offsets[-1])))
            f = int(np.searchsorted(self.seqs.offsets, position, side="right") - 1)
        else:
            probs, members = self.groups
            files, ends = members[int(rng.choice(len(probs), p=probs))]
            k = int(np.searchsorted(ends, int(rng.integers(int(ends[-1]))), side="right"))
            f = int(files[k])
        n = int(self.seqs.lengths[f])
        start = int(rng.integers(max(0, n - want) + 1))
        # off, no number is drawn: runs trained before the option draw the same windows
        if self.piece_start and rng.random() < self.piece_start:
            start = 0
        return f, start, start + self.shift, rng

    def _label(self, f: int) -> torch.Tensor:
        return torch.tensor(int(self.file_label[f]), dtype=torch.long)


class TokenWindows(_Windows):
    """Fixed-length token windows of one split (see the module docstring for the format).

    Parameters
    ----------
    data, split, seq_len
        The dataset, ``"train"``/``"valid"``/``"test"``, and the model's context length.
    train
        Random windows (and augmentation) when True; strided, each target once, when False.
    stride
        Evaluation stride (default ``seq_len``: disjoint windows); a smaller stride gives later
        windows more context while still counting each target once.
    transpose, velocity_shift
        Training augmentation: largest pitch shift in semitones and largest velocity change
        in bins, through token lookup tables (:class:`TokenShifter`); 0 turns them off.
    seed, epoch_windows
        Seed of the window draws; training windows per epoch (default tokens // seq_len).
    balance
        0..1: how evenly training windows are drawn across style labels (module docstring).
    piece_start
        0..1: the share of training windows that start at a file's beginning (module docstring).
    """

    def __init__(
        self,
        data: PreparedDataset,
        split: str,
        seq_len: int,
        *,
        train: bool = True,
        stride: int | None = None,
        transpose: int = 0,
        velocity_shift: int = 0,
        seed: int = 0,
        epoch_windows: int | None = None,
        balance: float = 0.0,
        fim: float = 0.0,
        piece_start: float = 0.0,
    ) -> None:
        super().__init__(
            data.tokens(split),
            data.file_labels(split),
            seq_len,
            train=train,
            stride=stride,
            seed=seed,
            epoch_windows=epoch_windows,
            balance=balance,
            piece_start=piece_start,
        )
        self.seq_len, self.pad_id = seq_len, data.pad_id
        self.transpose, self.velocity_shift = transpose, velocity_shift
        augment = train and (transpose > 0 or velocity_shift > 0)
        self.shifter = TokenShifter.for_dataset(data) if augment else None
        self.fim, self.fim_ids = (fim if train else 0.0), None
        if self.fim > 0:
            vocab = data.tokenizer.vocab
            markers = fim_format.marker_ids(vocab)
            if markers is None or "Bar_None" not in vocab:
                raise MidiforgeError(
                    f"train.fim={fim}: the dataset has no fill-in-the-middle markers; prepare "
                    "it with --fim (a REMI tokenizer), or set train.fim to 0"
                )
            self.fim_ids = (vocab["Bar_None"], markers)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        f, start, first, rng = self._locate(index, self.seq_len + 1)
        counted = None
        if self.fim_ids is not None and rng.random() < self.fim:
            fim = fim_format.reorder(self.seqs[f], start, self.seq_len + 1, *self.fim_ids, rng)
            if fim is not None:
                ids, counted = fim
        if counted is None:
            ids = np.asarray(self.seqs[f][start : start + self.seq_len + 1], np.int64)
        if self.shifter is not None:
            ids = self.shifter.transpose(ids, self.transpose, rng)
            ids = self.shifter.shift_velocity(ids, self.velocity_shift, rng)
        tokens = np.full(self.seq_len + 1, self.pad_id, np.int64)  # (T + 1,)
        tokens[: len(ids)] = ids
        target_pos = start + 1 + np.arange(self.seq_len)  # (T,) position of each target
        mask = (target_pos < start + len(ids)) & (target_pos >= first)
        if counted is not None:  # a reordered window: its own positions, every one a target
            mask = np.zeros(self.seq_len, bool)
            mask[: len(ids) - 1] = counted[1:]
        return {
            "tokens": torch.from_numpy(tokens),
            "mask": torch.from_numpy(mask),
            "label": self._label(f),
        }


class NoteWindows(_Windows):
    """Fixed-length note windows of one split (format in the module docstring).

    Parameters
    ----------
    length
        Notes per window; shorter files are zero-padded with mask False.
    transpose, time_stretch, velocity_scale
        Training augmentation (see :func:`midiforge.data.augment.augment_notes`); 0 is off.
    Other parameters as in :class:`TokenWindows` (evaluation windows are disjoint).
    """

    shift = 0  # every note of a window is a target

    def __init__(
        self,
        data: PreparedDataset,
        split: str,
        length: int,
        *,
        train: bool = True,
        transpose: int = 0,
        time_stretch: float = 0.0,
        velocity_scale: float = 0.0,
        seed: int = 0,
        epoch_windows: int | None = None,
        balance: float = 0.0,
        piece_start: float = 0.0,
    ) -> None:
        notes = data.notes(split)
        super().__init__(
            notes,
            data.file_labels(split),
            length,
            train=train,
            stride=None,
            seed=seed,
            epoch_windows=epoch_windows,
            balance=balance,
            piece_start=piece_start,
        )
        self.length = length
        self.augment = {
            "transpose": transpose,
            "time_stretch": time_stretch,
            "velocity_scale": velocity_scale,
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        f, start, first, rng = self._locate(index, self.length)
        rows = np.array(self.seqs[f][start : start + self.length], np.float32)  # (n, F)
        if len(rows):
            # from the beat the window's first note is in, not the note: the onsets stay small
            # and each keeps its place in the beat (the note LSTM's beat_position input)
            rows[:, FIELD["onset"]] -= np.floor(rows[0, FIELD["onset"]])
        if self.train and any(self.augment.values()):
            rows = augment_notes(rows, rng, **self.augment)
        notes = np.zeros((self.length, len(NOTE_FIELDS)), np.float32)  # (L, F)
        notes[: len(rows)] = rows
        position = start + np.arange(self.length)  # (L,) position of each note in its file
        mask = (position < start + len(rows)) & (position >= first)
        return {
            "notes": torch.from_numpy(notes),
            "mask": torch.from_numpy(mask),
            "label": self._label(f),
        }
