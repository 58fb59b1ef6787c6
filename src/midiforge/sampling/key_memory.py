"""A long sample kept in the key it has been in, once its beginning is out of the model's view.

A transformer reads the last ``window`` tokens (its ``max_seq_len``); a sample longer than
that is written by a model that no longer sees where it began. Each stretch it writes keeps to
a key, but the key wanders: the shipped transformer's pop songs at song length (7,168 tokens,
about 250 beats, 28 of its 256-token windows) kept 95-97 % of each 64-beat stretch's notes in
one scale, yet only 91 % of the whole song's (POP909's songs: 97 %), and used 11.9 pitch
classes against the songs' 9.2. A musician asking for a whole song expects it to stay in its
key.

:class:`KeyMemory` is a token rule (:mod:`midiforge.sampling.constraints`) that remembers
what the model forgot: it counts the pitch classes of every note a sample has written
(primer included), and once the sample is longer than the window it lowers the logits of the
pitches outside that count's diatonic scale (:func:`midiforge.pitches.diatonic_scales`) by
``penalty``. It steers, it does not forbid: an accidental the model is sure of still comes,
and within the first window nothing changes. :class:`NoteKeyMemory` does the same for a note
model's pitch head (:func:`~midiforge.sampling.autoregressive.sample_notes`), whose "window"
is the length it was trained on: a recurrent state carries everything in principle, but the
shipped multi-head LSTM's pop at song length (1,581 notes, six times its 256-note training
windows) kept 90 % of its notes in one scale where POP909's songs keep 97 %, and used all 12
pitch classes.
"""

from __future__ import annotations

import numpy as np
import torch

from midiforge.pitches import diatonic_scales, scale_templates
from midiforge.sampling.remi_state import PITCH, RemiVocab

N_CLASSES = 12
N_PITCHES = 128
KEY_MEMORY_PENALTY = 2.0  # logits of pitches off the remembered scale are lowered by this


class PitchMemory:
    """The pitch classes a batch of samples has written, and the logit shift they ask for on
    P logits of pitch classes ``classes`` ``(P,)``."""

    def __init__(self, n: int, window: int, penalty: float, classes: np.ndarray) -> None:
        self.counts = np.zeros((n, N_CLASSES))
        self.window = int(window)
        self.length = 0  # tokens or notes each sample is long
        outside = scale_templates()[:, np.asarray(classes, np.int64)] == 0  # (scale, P)
        self.table = torch.from_numpy(outside).float() * float(penalty)

    def add(self, classes: np.ndarray) -> None:
        """One step: each row's pitch class ``(B,)`` (-1: not a note), every row one longer."""
        rows = np.flatnonzero(classes >= 0)
        self.counts[rows, classes[rows]] += 1
        self.length += 1

    def shift(self) -> torch.Tensor | None:
        """``(B, P)``: the penalty where a logit's class is outside its row's remembered scale;
        None while the samples are within the window."""
        if self.length < self.window:
            return None
        return self.table[torch.from_numpy(diatonic_scales(self.counts))]


class KeyMemory:
    """The token rule (module docstring), for samples of a REMI tokenizer (``RemiVocab``)."""

    def __init__(self, tokenizer, window: int, penalty: float = KEY_MEMORY_PENALTY) -> None:
        vocab = RemiVocab(tokenizer)
        self.n_ids = vocab.size
        self.window, self.penalty = int(window), float(penalty)
        self.class_of = np.where(vocab.kind == PITCH, vocab.value % N_CLASSES, -1)  # (V,)
        ids = np.flatnonzero(self.class_of >= 0)
        self.ids, self.id_classes = torch.from_numpy(ids), self.class_of[ids]
        self.memory = self._memory(0)

    def _memory(self, n: int) -> PitchMemory:
        return PitchMemory(n, self.window, self.penalty, self.id_classes)

    def start(self, seq: torch.Tensor) -> None:
        ids = seq.cpu().numpy()
        self.memory = self._memory(len(ids))
        for column in ids.T:
            self.memory.add(self.class_of[column])
        self.ids = self.ids.to(seq.device)

    def allowed(self) -> torch.Tensor | None:
        return None

    def allowed_bits(self) -> list[int] | None:
        return None

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        shift = self.memory.shift()
        if shift is None:
            return logits
        out = logits.clone()
        out[:, self.ids] -= shift.to(logits.device, logits.dtype)
        return out

    def update(self, token: torch.Tensor) -> None:
        self.memory.add(self.class_of[token.cpu().numpy()])


class NoteKeyMemory:
    """The same for a note model's ``(B, 128)`` pitch logits (module docstring): ``window`` is
    the notes it was trained on at a time; the primer's pitches count."""

    def __init__(
        self, n: int, window: int, primer: np.ndarray | None, penalty: float = KEY_MEMORY_PENALTY
    ) -> None:
        self.memory = PitchMemory(n, window, penalty, np.arange(N_PITCHES) % N_CLASSES)
        for pitch in [] if primer is None else np.asarray(primer, np.int64):
            self.memory.add(np.full(n, pitch % N_CLASSES))

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        shift = self.memory.shift()
        return logits if shift is None else logits - shift.to(logits.device, logits.dtype)

    def update(self, pitch: torch.Tensor, written: torch.Tensor) -> None:
        """The pitches ``(B,)`` just drawn; rows not ``written`` (a lead's note read instead,
        a sample already full) count no class but still grow."""
        classes = pitch.cpu().numpy().astype(np.int64) % N_CLASSES
        self.memory.add(np.where(written.cpu().numpy(), classes, -1))
