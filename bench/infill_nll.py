"""Benchmark: does a fill-in-the-middle run read the bars after an infill range?

On held-out pieces (a prepared dataset's test split), for middles of ``--bars`` bars starting on
a bar line, the negative log-likelihood of the middle's tokens is measured two ways with the same
model and the same prefix:

* ``prefix only``: ``prefix middle`` read left to right (what every run does without markers);
* ``suffix first``: ``Infill_Suffix suffix Infill_Prefix prefix middle`` (suffix-prefix-middle
  order, :mod:`midiforge.data.fim`), the suffix being the first ``--suffix`` tokens from the bar
  line after the middle.

A run trained with ``train.fim`` should find the middle more likely when it has read what comes
after it; the gap is what the suffix tells it. The prefix is as long as the window leaves after
the middle and the suffix, so both orders see the same prefix. A third row reads another test
piece's suffix in the same place (the next piece's, the first piece's for the last): if the
model uses the suffix's content, and not only the markers' presence, the right suffix beats it.

    python bench/infill_nll.py RUN DATASET [--bars 4] [--suffix 64] [--pieces 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from midiforge.data import fim
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import load_run


def middles(stream: np.ndarray, bar: int, bars: int, rng: np.random.Generator):
    """(a, b): a middle of ``bars`` bars, bar line ``a`` to bar line ``b``, with bars after."""
    lines = np.flatnonzero(stream == bar)
    if len(lines) < bars + 2:
        return None
    k = int(rng.integers(1, len(lines) - bars))
    return int(lines[k]), int(lines[k + bars])


@torch.inference_mode()
def middle_nll(model, ids: list[int], n_middle: int, label: int | None) -> float:
    """Summed NLL (nats) of the last ``n_middle`` ids of ``ids`` given everything before."""
    x = torch.tensor([ids])
    logits = model(x[:, :-1], label=None if label is None else torch.tensor([label]))[0]
    logp = torch.log_softmax(logits.float(), -1)[0]
    targets = x[0, 1:]
    picked = logp[torch.arange(len(targets)), targets]
    return float(-picked[-n_middle:].sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("dataset")
    parser.add_argument("--bars", type=int, default=4)
    parser.add_argument("--suffix", type=int, default=64)
    parser.add_argument("--pieces", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loaded = load_run(args.run)
    model, vocab = loaded.model, loaded.tokenizer.vocab
    markers = fim.marker_ids(vocab)
    if markers is None:
        raise SystemExit(f"{args.run}: no fill-in-the-middle markers (prepare --fim)")
    window = getattr(model, "max_seq_len", None) or 1024  # an RNN reads any length
    data = PreparedDataset(args.dataset)
    seqs, labels = data.tokens("test"), data.file_labels("test")
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(seqs))
    totals = {"prefix only": 0.0, "suffix first": 0.0, "another piece's suffix first": 0.0}
    previous: list[int] | None = None
    tokens = pieces = 0
    for f in order:
        stream = np.asarray(seqs[int(f)], np.int64)
        found = middles(stream, vocab["Bar_None"], args.bars, rng)
        if found is None:
            continue
        a, b = found
        middle, suffix = stream[a:b].tolist(), stream[b : b + args.suffix].tolist()
        room = window - len(middle) - args.suffix - 2  # room for any piece's suffix
        if room < 16:
            continue  # a middle too long for the window with its suffix
        prefix = stream[max(0, a - room) : a].tolist()
        label = int(labels[int(f)]) if labels[int(f)] >= 0 else None
        if previous is None:  # the first piece's suffix stands in for the last one's
            previous = suffix
            first = (prefix, middle, suffix, label)
            continue
        _score(model, totals, markers, prefix, middle, suffix, previous, label)
        previous = suffix
        tokens += len(middle)
        pieces += 1
        if pieces >= args.pieces:
            break
    if previous is not None and pieces:
        prefix, middle, suffix, label = first
        _score(model, totals, markers, prefix, middle, suffix, previous, label)
        tokens += len(middle)
        pieces += 1
    print(f"run {args.run}: {pieces} test pieces, {args.bars}-bar middles, {tokens} tokens, "
          f"suffix {args.suffix} tokens")  # fmt: skip
    print("| order | NLL of the middle (nats/token) | perplexity |")
    print("| --- | --- | --- |")
    for name, total in totals.items():
        per = total / max(tokens, 1)
        print(f"| {name} | {per:.4f} | {math.exp(per):.3f} |")
    gain = (totals["prefix only"] - totals["suffix first"]) / max(tokens, 1)
    wrong = (totals["another piece's suffix first"] - totals["suffix first"]) / max(tokens, 1)
    print(f"reading the suffix first: {gain:+.4f} nats/token against the prefix alone, "
          f"{wrong:+.4f} against another piece's suffix")  # fmt: skip


def _score(model, totals, markers, prefix, middle, suffix, other, label) -> None:
    """Add the middle's NLL in the three orders (``other``: another piece's suffix)."""
    n = len(middle)
    totals["prefix only"] += middle_nll(model, prefix + middle, n, label)
    for name, tail in (("suffix first", suffix), ("another piece's suffix first", other)):
        head = [markers[0], *tail, markers[1]]
        totals[name] += middle_nll(model, head + prefix + middle, n, label)


if __name__ == "__main__":
    main()
