"""Real tunes encoded once, and the toy models the store tests save and load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midiforge.data.encode import build_tokenizer, notes_from_score, score_to_ids, special_ids
from midiforge.io.midi import load_midi

N_TUNES = 5  # Nottingham tunes: three train, one valid, one test
SPLIT_OF = ("train", "train", "train", "valid", "test")
LABEL_OF = ("jig", None, "reel", "jig", None)  # one train file and the test file unlabelled
TINY_LSTM = {"d_embed": 16, "d_hidden": 16, "n_layers": 1, "dropout": 0.0}


@pytest.fixture(scope="session")
def encoded_tunes(datasets: Path) -> dict:
    """REMI ids (BOS/EOS added) and note rows of the first Nottingham tunes, with the tokenizer."""
    tokenizer = build_tokenizer("remi", use_programs=True)  # melody and chords in one stream
    specials = special_ids(tokenizer)
    files = sorted((datasets / "nottingham").glob("*.mid"))[:N_TUNES]
    pieces = []
    for path, split, label in zip(files, SPLIT_OF, LABEL_OF):
        score = load_midi(path)
        ids = np.array([specials["BOS"], *score_to_ids(tokenizer, score), specials["EOS"]])
        pieces.append(
            {"split": split, "label": label, "ids": ids, "notes": notes_from_score(score)}
        )
    return {"tokenizer": tokenizer, "pieces": pieces}


def trainer_state(net, step: int) -> dict:
    """A ``state.pt`` as the trainer writes it: a real AdamW and schedule after ``step`` steps."""
    import torch

    from midiforge.store.checkpoint import capture_rng

    optimizer = torch.optim.AdamW(net.param_groups(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    for _ in range(step):
        loss = sum(p.square().sum() for p in net.parameters())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
    return {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "best": None,
        "bad_evals": 0,
        "elapsed": 0.5 * step,
        "train": {},
        "rng": capture_rng(),
    }
