"""Benchmark: training tokens/s of our transformer vs a plain reference of the same size.

Target (docs/benchmarks.md): ours >= 1.0x the reference on CPU. The reference, written here, is
the textbook pre-norm GPT block with ``F.scaled_dot_product_attention(is_causal=True)``, learned
absolute positions and tied embeddings — no relative attention, no labels, nothing else. All
are timed on the same random batches with AdamW, forward + backward + step, in alternating
rounds so machine load affects them alike; the best round of each counts.

Ours trains relative attention with the C kernel (``src/midiforge/kernels/relative_attention.c``,
built when midiforge was installed) when it is loaded; the row "tensor-op kernel" is the same
model on the tensor-op reference, what an install without a C compiler gets.

    python bench/train.py [--batch 8] [--seq 256] [--rounds 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from midiforge.kernels import native, status
from midiforge.kernels.relative_attention import attention, split_heads, tensor_ops_only
from midiforge.models.registry import build

VOCAB = 300  # about a REMI vocabulary
D_MODEL, N_LAYERS, N_HEADS, D_FF = 256, 4, 8, 1024
STEPS_PER_ROUND = 3  # optimizer steps timed per round


class RefBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.n1, self.n2 = nn.LayerNorm(D_MODEL), nn.LayerNorm(D_MODEL)
        self.qkv, self.proj = nn.Linear(D_MODEL, 3 * D_MODEL), nn.Linear(D_MODEL, D_MODEL)
        self.mlp = nn.Sequential(nn.Linear(D_MODEL, D_FF), nn.GELU(), nn.Linear(D_FF, D_MODEL))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).split(d, 2)
        q, k, v = (z.view(b, t, N_HEADS, d // N_HEADS).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.n2(x))


class Reference(nn.Module):
    """Plain GPT of the same size as ours."""

    def __init__(self, seq_len: int) -> None:
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, D_MODEL), nn.Embedding(seq_len, D_MODEL)
        self.blocks = nn.Sequential(*(RefBlock() for _ in range(N_LAYERS)))
        self.norm = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, VOCAB, bias=False)
        self.head.weight = self.tok.weight

    def loss(self, batch):
        x, y = batch["tokens"][:, :-1], batch["tokens"][:, 1:]
        h = self.tok(x) + self.pos(torch.arange(x.shape[1]))
        logits = self.head(self.norm(self.blocks(h)))
        return {"loss": F.cross_entropy(logits.flatten(0, 1), y.flatten())}


def rate(model, batches, opt) -> float:
    """Tokens per second over STEPS_PER_ROUND optimizer steps."""
    start = time.perf_counter()
    tokens = 0
    for batch in batches:
        loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        tokens += batch["tokens"][:, 1:].numel()
    return tokens / (time.perf_counter() - start)


def attention_ms(batch: int, seq: int) -> dict[str, float]:
    """Milliseconds for one layer's attention, forward + backward: best of 5 rounds of 10."""
    d_head = D_MODEL // N_HEADS
    qkv = torch.randn(batch, seq, 3 * D_MODEL, requires_grad=True)
    table = (torch.randn(N_HEADS, seq, d_head) * d_head**-0.5).requires_grad_()
    grad = torch.randn(batch, seq, D_MODEL)

    def sdpa():
        q, k, v = split_heads(qkv, N_HEADS)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, Dh)
        y.transpose(1, 2).reshape(batch, seq, D_MODEL).backward(grad)

    def c_kernel():
        attention(qkv, N_HEADS, table)[0].backward(grad)

    def tensor_ops():
        with tensor_ops_only():
            attention(qkv, N_HEADS, table)[0].backward(grad)

    out = {}
    for name, fn in (("plain causal SDPA", sdpa), ("relative, C kernel", c_kernel),
                     ("relative, tensor-op kernel", tensor_ops)):  # fmt: skip
        if name == "relative, C kernel" and native.library() is None:
            continue
        fn()
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(10):
                fn()
            best = min(best, (time.perf_counter() - start) / 10)
        out[name] = best * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = {"vocab_size": VOCAB, "d_model": D_MODEL, "n_layers": N_LAYERS, "n_heads": N_HEADS,
            "d_ff": D_FF, "max_seq_len": args.seq, "max_rel": args.seq, "dropout": 0.0}  # fmt: skip
    relative = build("transformer", {**size, "pos": "relative"})
    models = {
        "reference": Reference(args.seq),
        "ours pos=relative": relative,
        "  tensor-op kernel": relative,  # same weights, the fallback kernel
        "ours pos=absolute": build("transformer", {**size, "pos": "absolute"}),
    }
    opts = {k: torch.optim.AdamW(m.parameters(), lr=1e-4) for k, m in models.items()}
    batches = [
        {"tokens": torch.randint(0, VOCAB, (args.batch, args.seq + 1)),
         "mask": torch.ones(args.batch, args.seq, dtype=torch.bool)}
        for _ in range(STEPS_PER_ROUND)
    ]  # fmt: skip
    best = dict.fromkeys(models, 0.0)

    def timed(name, model, batches):
        if name == "  tensor-op kernel":
            with tensor_ops_only():
                return rate(model, batches, opts[name])
        return rate(model, batches, opts[name])

    for name, model in models.items():  # warm-up
        timed(name, model, batches[:1])
    for _ in range(args.rounds):
        for name, model in models.items():
            best[name] = max(best[name], timed(name, model, batches))
    kernel = "C kernel" if native.library() is not None else f"no C kernel: {status()}"
    setup = f"batch {args.batch} x {args.seq} tokens, {args.threads} threads, fp32, {kernel}"
    print(f"d={D_MODEL} L={N_LAYERS} H={N_HEADS} ff={D_FF} vocab={VOCAB}, {setup}, "
          f"best of {args.rounds} rounds")  # fmt: skip
    ref = best["reference"]
    for name, value in best.items():
        print(f"{name:20s} {value:8.0f} tokens/s  ratio vs reference {value / ref:.2f}")
    print("one layer's attention, forward + backward:")
    for name, ms in attention_ms(args.batch, args.seq).items():
        print(f"  {name:28s} {ms:6.1f} ms")


if __name__ == "__main__":
    main()
