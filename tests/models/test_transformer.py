"""Transformer: KV cache vs full recompute, window trimming, label conditioning, and a
safetensors round trip."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_model, save_model

from midiforge.errors import MidiforgeError
from midiforge.models.registry import build

VOCAB = 40
TINY = {"vocab_size": VOCAB, "d_model": 32, "n_heads": 4, "n_layers": 2, "d_ff": 64,
        "max_seq_len": 48, "max_rel": 12, "dropout": 0.0}  # fmt: skip


def tiny(**kw):
    torch.manual_seed(0)
    return build("transformer", {**TINY, **kw}).eval()


@pytest.mark.parametrize("pos", ["relative", "absolute"])
def test_kv_cache_matches_full_recompute(pos):
    model = tiny(pos=pos)
    x = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full, _ = model(x)
        first, cache = model(x[:, :17])
        steps = [first]
        for t in range(17, 40):
            logits, cache = model(x[:, t : t + 1], cache=cache)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_trimmed_relative_cache_equals_window_recompute_one_layer():
    # one layer: keys depend only on their token, so a trimmed cache is exactly the recompute of
    # the window — the sliding window loses nothing but the dropped tokens
    model = tiny(n_layers=1)
    x = torch.randint(0, VOCAB, (2, 30), generator=torch.Generator().manual_seed(3))
    keep = 10
    with torch.no_grad():
        _, cache = model(x[:, :29])
        trimmed = model.trim_cache(cache, keep)
        got, _ = model(x[:, 29:], cache=trimmed)
        want, _ = model(x[:, 29 - keep :])
    torch.testing.assert_close(got[:, -1], want[:, -1], atol=1e-5, rtol=1e-5)


def test_sliding_window_appends_in_place_after_a_trim():
    # the sampler trims every step once past its window; the trimmed cache must take the next
    # token in the buffer's free slots (no copy of the window per step)
    model = tiny(n_layers=1)
    x = torch.randint(0, VOCAB, (1, 21), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        _, cache = model(x[:, :12])
        _, cache = model(x[:, 12:13], cache=cache)  # grows the buffer past 13 slots
        before = cache.keys[0].untyped_storage().data_ptr()
        for i in range(13, 16):
            cache = model.trim_cache(cache, 8)
            _, cache = model(x[:, i : i + 1], cache=cache)
            assert cache.length == 9
            assert cache.keys[0].untyped_storage().data_ptr() == before


def test_relative_runs_past_max_seq_len_absolute_refuses():
    rel, ab = tiny(), tiny(pos="absolute")
    x = torch.randint(0, VOCAB, (1, 60))
    logits, _ = rel(x)  # longer than max_seq_len=48; distances clip at max_rel
    assert torch.isfinite(logits).all() and logits.shape == (1, 60, VOCAB)
    assert ab.trim_cache(ab(x[:, :4])[1], 2) is None
    with pytest.raises(MidiforgeError, match="max_seq_len"):
        ab(x)


def test_label_changes_logits_and_loss_is_finite():
    model = tiny(n_labels=3)
    x = torch.randint(0, VOCAB, (2, 12))
    a, _ = model(x, label=0)
    b, _ = model(x, label=2)
    assert not torch.allclose(a, b)
    batch = {
        "tokens": x,
        "mask": torch.ones(2, 11, dtype=torch.bool),
        "label": torch.tensor([1, -1]),
    }
    model.train()
    loss = model.loss(batch)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and model.embed.weight.grad is not None
    assert model.head.weight is model.embed.weight  # tied


def test_masked_targets_do_not_count():
    model = tiny()
    x = torch.randint(0, VOCAB, (1, 10))
    mask = torch.zeros(1, 9, dtype=torch.bool)
    mask[0, :4] = True
    y = x.clone()
    y[0, 6:] = (x[0, 6:] + 1) % VOCAB  # change only targets that are masked out
    la = model.loss({"tokens": x, "mask": mask})["loss"]
    lb = model.loss({"tokens": y, "mask": mask})["loss"]
    torch.testing.assert_close(la, lb)


@pytest.mark.parametrize("pos", ["relative", "absolute"])
def test_safetensors_round_trip(tmp_path, pos):
    model = tiny(pos=pos)
    path = tmp_path / "model.safetensors"
    save_model(model, str(path))
    torch.manual_seed(99)
    other = build("transformer", {**TINY, "pos": pos}).eval()
    load_model(other, str(path))
    x = torch.randint(0, VOCAB, (2, 16))
    torch.testing.assert_close(other(x)[0], model(x)[0])


def test_bad_config_names_the_field():
    with pytest.raises(MidiforgeError, match="n_heads"):
        build("transformer", {**TINY, "n_heads": 5})
    with pytest.raises(MidiforgeError, match="vocab_size"):
        build("transformer", {**TINY, "vocab_size": 0})
