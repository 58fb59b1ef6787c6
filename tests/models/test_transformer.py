"""Transformer: KV cache vs full recompute (C kernel and tensor-op reference, fp32 and fp16
caches), the cache dtype it chooses, window trimming, label conditioning, and a safetensors
round trip."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
import torch
from safetensors.torch import load_model, save_model

from midiforge.errors import MidiforgeError
from midiforge.kernels import native
from midiforge.kernels.relative_attention import tensor_ops_only
from midiforge.models.registry import build
from tests.kernels.probe import graph_nodes

VOCAB = 40
TINY = {"vocab_size": VOCAB, "d_model": 32, "n_heads": 4, "n_layers": 2, "d_ff": 64,
        "max_seq_len": 48, "max_rel": 12, "dropout": 0.0}  # fmt: skip


def tiny(**kw):
    torch.manual_seed(0)
    return build("transformer", {**TINY, **kw}).eval()


def round_kv_to_half(model):
    """Make the model's keys, values and relative tables exactly fp16-representable: a full
    recompute then sees what an fp16 cache stores, so the two must agree to fp32 rounding."""
    d = model.config.d_model
    for block in model.blocks:

        def hook(_module, _inputs, out):
            return torch.cat([out[..., :d], out[..., d:].half().float()], -1)

        block.attn.qkv.register_forward_hook(hook)
        if block.attn.rel is not None:
            block.attn.rel.table.data = block.attn.rel.table.data.half().float()


# (positions, cache dtype, attention kernel): the C kernels are relative attention only
KERNELS = [("relative", "c"), ("relative", "tensor-ops"), ("absolute", "tensor-ops")]
CACHE_CASES = [(p, dtype, k) for p, k in KERNELS for dtype in (torch.float32, torch.float16)]


def counted(monkeypatch, name):
    """Count the calls of ``native.<name>`` (the real function still runs)."""
    calls = []
    real = getattr(native, name)

    def counting(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(native, name, counting)
    return calls


@pytest.mark.parametrize("pos,kv_dtype,kernel", CACHE_CASES)
def test_kv_cache_matches_full_recompute(pos, kv_dtype, kernel, monkeypatch):
    model = tiny(pos=pos)
    if kv_dtype == torch.float16:
        round_kv_to_half(model)
    steps_in_c = counted(monkeypatch, "decode_step")
    x = torch.randint(0, VOCAB, (3, 40), generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), tensor_ops_only() if kernel == "tensor-ops" else nullcontext():
        full, _ = model(x)
        first, cache = model(x[:, :17], cache=model.new_cache(kv_dtype))
        steps = [first]
        for t in range(17, 40):
            logits, cache = model(x[:, t : t + 1], cache=cache)
            steps.append(logits)
    assert cache.keys[0].dtype == kv_dtype
    # one C call per layer and step, where it applies; the same forward either way
    assert len(steps_in_c) == (2 * 23 if kernel == "c" else 0)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_decoding_keeps_an_fp16_cache_on_the_cpu_by_default():
    # the C decoding kernel reads fp16 keys and values: half the bytes per cached position
    model = tiny()
    x = torch.randint(0, VOCAB, (2, 20), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        full, _ = model(x)
        _, cache = model(x[:, :10], cache=model.new_cache())
        for t in range(10, 20):
            logits, cache = model(x[:, t : t + 1], cache=cache)
    assert cache.keys[0].dtype == cache.values[0].dtype == torch.float16
    assert model.blocks[0].attn.rel.table.dtype == torch.float32  # the model itself is untouched
    torch.testing.assert_close(logits[:, -1], full[:, -1], atol=1e-3, rtol=1e-2)
    # without a cache to extend, a call keeps keys and values as computed (exact)
    assert model(x)[1].dtype is None and model(x)[1].keys[0].dtype == torch.float32
    # positions the C step does not serve, or another dtype: the model's own dtype
    assert tiny(pos="absolute").new_cache().dtype == torch.float32
    assert tiny().double().new_cache().dtype == torch.float64


def test_trimmed_relative_cache_equals_window_recompute_one_layer():
    # one layer: keys depend only on their token, so a trimmed cache is exactly the recompute of
    # the window — the sliding window loses nothing but the dropped tokens
    model = tiny(n_layers=1)
    x = torch.randint(0, VOCAB, (2, 30), generator=torch.Generator().manual_seed(3))
    keep = 10
    with torch.no_grad():
        _, cache = model(x[:, :29], cache=model.new_cache(torch.float32))
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
        _, cache = model(x[:, :12], cache=model.new_cache())
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


def test_an_int_label_is_the_same_as_a_tensor_of_it_and_a_bad_one_is_named():
    # sampling passes one int for the batch, which takes a shorter path than a label tensor
    model = tiny(n_labels=3)
    x = torch.randint(0, VOCAB, (2, 12))
    for value in (0, 2, -1, None):
        as_tensor = torch.full((2,), -1 if value is None else value)
        assert torch.equal(model(x, label=value)[0], model(x, label=as_tensor)[0])
    for bad in (3, -2):
        with pytest.raises(ValueError, match=r"-1\.\.2"):
            model(x, label=bad)


def test_training_runs_the_c_kernel_and_matches_the_tensor_op_reference():
    size = {"vocab_size": 50, "d_model": 64, "n_layers": 2, "n_heads": 4, "d_ff": 128,
            "max_seq_len": 40, "max_rel": 40, "dropout": 0.0}  # fmt: skip
    torch.manual_seed(6)
    model = build("transformer", size)
    batch = {"tokens": torch.randint(0, 50, (2, 41)), "mask": torch.ones(2, 40, dtype=torch.bool)}
    fast = model.loss(batch)["loss"]
    assert "NativeRelativeAttentionBackward" in graph_nodes(fast)
    fast_grads = torch.autograd.grad(fast, list(model.parameters()))
    with tensor_ops_only():
        slow = model.loss(batch)["loss"]
        assert "NativeRelativeAttentionBackward" not in graph_nodes(slow)
        slow_grads = torch.autograd.grad(slow, list(model.parameters()))
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    for a, b in zip(fast_grads, slow_grads, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


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
