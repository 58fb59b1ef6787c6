"""A long sample kept in the key it has been in, once its beginning is out of the model's view.

A transformer reads the last ``window`` tokens (its ``max_seq_len``); a sample longer than
that is written by a model that no longer sees where it began. Each stretch it writes keeps to
a key, but the key wanders: the shipped transformer's pop songs at song length (7,168 tokens,
about 250 beats, seven windows) kept 95-97 % of each 64-beat stretch's notes in one scale, yet
only 91 % of the whole song's (POP909's songs: 97 %), and used 11.9 pitch classes against the
songs' 9.2. A musician asking for a whole song expects it to stay in its key.

:class:`KeyMemory` is a token rule (:mod:`midiforge.sampling.constraints`) that remembers
what the model forgot: it counts the pitch classes of every note a sample has written
(primer included), and once the sample is longer than the window it lowers the logits of the
pitches outside that count's diatonic scale (:func:`midiforge.pitches.diatonic_scales`) by
``penalty``. It steers, it does not forbid: an accidental the model is sure of still comes,
and within the first window nothing changes.
"""

from __future__ import annotations

import numpy as np
import torch

from midiforge.pitches import diatonic_scales, scale_templates
from midiforge.sampling.remi_state import PITCH, RemiVocab

N_CLASSES = 12
KEY_MEMORY_PENALTY = 2.0  # logits of pitches off the remembered scale are lowered by this


class KeyMemory:
    """The rule (module docstring) for samples of a REMI tokenizer read by ``RemiVocab``."""

    def __init__(self, tokenizer, window: int, penalty: float = KEY_MEMORY_PENALTY) -> None:
        vocab = RemiVocab(tokenizer)
        self.n_ids = vocab.size
        self.window, self.penalty = int(window), float(penalty)
        self.class_of = np.where(vocab.kind == PITCH, vocab.value % N_CLASSES, -1)  # (V,)
        ids = np.flatnonzero(self.class_of >= 0)
        self.ids = torch.from_numpy(ids)
        # (scale, P): whether each pitch id's class lies outside each of the 12 scales
        self.outside = torch.from_numpy(scale_templates()[:, self.class_of[ids]] == 0)
        self.counts = np.zeros((0, N_CLASSES))
        self.length = 0

    def start(self, seq: torch.Tensor) -> None:
        ids = seq.cpu().numpy()
        self.counts = np.zeros((len(ids), N_CLASSES))
        for row, tokens in enumerate(ids):
            classes = self.class_of[tokens]
            np.add.at(self.counts[row], classes[classes >= 0], 1)
        self.length = ids.shape[1]
        self.ids, self.outside = self.ids.to(seq.device), self.outside.to(seq.device)

    def allowed(self) -> torch.Tensor | None:
        return None

    def allowed_bits(self) -> list[int] | None:
        return None

    def steer(self, logits: torch.Tensor) -> torch.Tensor:
        if self.length < self.window:
            return logits
        scales = torch.from_numpy(diatonic_scales(self.counts)).to(logits.device)  # (B,)
        shift = self.outside[scales].to(logits.dtype) * self.penalty  # (B, P)
        out = logits.clone()
        out[:, self.ids] -= shift
        return out

    def update(self, token: torch.Tensor) -> None:
        classes = self.class_of[token.cpu().numpy()]
        rows = np.flatnonzero(classes >= 0)
        self.counts[rows, classes[rows]] += 1
        self.length += 1
