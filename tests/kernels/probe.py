"""Which backend relative attention gets in a given installation: run as a script.

Prints one JSON line: ``kernels.status()``, whether a training forward pass ran through the C
kernel (its backward node is in the graph), and the cache dtype decoding chooses. Two forward
passes and a few decoding steps run, so a test can check that a fallback is announced once.
Used by tests/test_install.py (in a fresh venv) and tests/kernels/test_native.py.
"""

from __future__ import annotations

import json
import logging

import torch

from midiforge import kernels
from midiforge.models.registry import build

SIZE = {"vocab_size": 20, "d_model": 32, "n_heads": 2, "n_layers": 2, "d_ff": 32,
        "max_seq_len": 16, "max_rel": 16, "dropout": 0.0}  # fmt: skip


def graph_nodes(tensor: torch.Tensor) -> set[str]:
    """Names of every backward node behind ``tensor``."""
    seen, todo = set(), [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo.extend(n for n, _ in node.next_functions)
    return {type(n).__name__ for n in seen}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.manual_seed(0)
    model = build("transformer", SIZE)
    tokens = torch.randint(0, SIZE["vocab_size"], (2, 9))
    for _ in range(2):
        loss = model.loss({"tokens": tokens})["loss"]
    model.eval()
    with torch.inference_mode():
        _, cache = model(tokens[:, :4], cache=model.new_cache())
        for t in range(4, 8):
            _, cache = model(tokens[:, t : t + 1], cache=cache)
    print(json.dumps({
        "status": kernels.status(),
        "c_forward": "NativeRelativeAttentionBackward" in graph_nodes(loss),
        "cache_dtype": str(cache.keys[0].dtype),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
