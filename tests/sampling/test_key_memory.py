"""A long token sample keeps the key it has been in, once its start is out of the window."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from midiforge.metrics.evaluate import load_midi_folder
from midiforge.metrics.pitch import scale_consistency
from midiforge.sampling.generate import generate
from midiforge.sampling.key_memory import KEY_MEMORY_PENALTY, KeyMemory
from midiforge.store.run_dir import load_run, shipped_run

C_MAJOR = (0, 2, 4, 5, 7, 9, 11)


@pytest.fixture(scope="module")
def tokenizer():
    return load_run(shipped_run("transformer")).tokenizer


def test_off_scale_pitches_are_steered_down_only_past_the_window(tokenizer):
    """A primer of C-major pitches: within the window nothing moves; past it, every pitch id
    off C major (an F#, a B♭) is lowered by the penalty and nothing else is."""
    vocab = tokenizer.vocab
    pitch = {int(k.split("_")[1]): i for k, i in vocab.items() if k.startswith("Pitch_")}
    primer = [vocab["Bar_None"]] + [pitch[p] for p in (60, 62, 64, 65, 67, 69, 71, 72, 64, 67)]
    memory = KeyMemory(tokenizer, window=len(primer) + 2)
    memory.start(torch.tensor([primer, primer]))
    logits = torch.randn(2, len(vocab), generator=torch.Generator().manual_seed(0))
    assert torch.equal(memory.steer(logits), logits)  # the primer is still in view
    for _ in range(2):
        memory.update(torch.tensor([vocab["Bar_None"]] * 2))
    shift = logits - memory.steer(logits)
    off = [i for p, i in pitch.items() if p % 12 not in C_MAJOR]
    on = [i for p, i in pitch.items() if p % 12 in C_MAJOR]
    assert torch.allclose(shift[:, off], torch.full((2, len(off)), KEY_MEMORY_PENALTY))
    assert torch.count_nonzero(shift[:, on]) == 0
    others = [i for i in range(len(vocab)) if i not in pitch.values()]
    assert torch.count_nonzero(shift[:, others]) == 0
    assert memory.allowed() is None and memory.allowed_bits() is None


def test_the_shipped_transformer_keeps_its_key_over_many_windows(tmp_path):
    """Real sampling with a 128-token window (an eighth of the model's), 1,536 tokens: twelve
    windows in which the key wanders unless remembered."""

    def in_key(key_memory: bool) -> float:
        out = tmp_path / str(key_memory)
        generate(shipped_run("transformer"), out_dir=out, n=4, style="pop", seed=5,
                 device="cpu", max_tokens=1536, window=128, key_memory=key_memory,
                 style_keys=False, style_parts=False)  # fmt: skip
        return float(np.mean([scale_consistency(p.notes) for p in load_midi_folder(out, "g")[1]]))

    kept, wandered = in_key(True), in_key(False)
    assert kept >= wandered + 0.03, (kept, wandered)
    assert kept >= 0.9, kept


def test_the_shipped_lstm_keeps_its_key_past_its_training_length(tmp_path):
    """The multi-head LSTM learned from 256-note windows; four times that, its pop wanders
    through every key unless the notes it wrote are remembered."""

    def in_key(key_memory: bool) -> float:
        out = tmp_path / str(key_memory)
        generate(shipped_run("lstm-multihead"), out_dir=out, n=6, style="pop", seed=5,
                 device="cpu", max_tokens=1024, key_memory=key_memory, style_keys=False,
                 style_parts=False)  # fmt: skip
        return float(np.mean([scale_consistency(p.notes) for p in load_midi_folder(out, "g")[1]]))

    kept, wandered = in_key(True), in_key(False)
    assert kept >= wandered + 0.03, (kept, wandered)
    assert kept >= 0.9, kept
