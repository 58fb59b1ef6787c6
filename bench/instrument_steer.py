"""Instrument steer: how often every requested instrument plays, with and without the steer.

A tiny transformer is trained for a few steps on the ten band songs of
``../shared/datasets/robustness/MIDIs_multitrack`` (``prepare --tracks all --drums``), then
asked for each request below, ``--samples`` samples of ``--tokens`` tokens each (grammar mask
on, as a model this small needs), once with the Program mask alone (``steer=0``) and once with
the steer (:data:`midiforge.sampling.instrument_rule.STEER_NATS`). It prints, per request, the
share of samples in which every requested instrument has notes (baseline: the mask alone).

    python bench/instrument_steer.py [--samples 20] [--tokens 256] [--steps 60] [--steer NATS]
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import torch

from midiforge.data.encode import ids_to_score, special_ids
from midiforge.data.prepare import prepare
from midiforge.instruments import DRUMS, resolve_instruments
from midiforge.sampling.autoregressive import sample
from midiforge.sampling.grammar import TypeGrammar
from midiforge.sampling.instrument_rule import STEER_NATS, InstrumentConstraint
from midiforge.store.run_dir import load_run
from midiforge.training.run import train

ROOT = Path(__file__).resolve().parents[1]
BAND = ROOT.parent / "shared" / "datasets" / "robustness" / "MIDIs_multitrack"
REQUESTS = ("bass,drums", "guitar,bass,drums", "piano,bass", "strings,bass,drums")
TINY = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64",
        "model.max_seq_len=64", "model.max_rel=32", "train.batch_size=4", "train.seq_len=32",
        "train.window=32", "train.lr=3e-3", "train.warmup_steps=2", "train.eval_every=1000",
        "train.eval_batches=1"]  # fmt: skip


def everyone_plays(tok, seqs: list[list[int]], programs: list[int]) -> tuple[float, float]:
    """Share of the samples whose decoded tracks hold notes for each of ``programs``, and the
    mean over samples of the quietest instrument's notes over its fair share (N / k; 1 = even)."""
    hits, balance = 0, 0.0
    for ids in seqs:
        score = ids_to_score(tok, ids)
        notes = collections.Counter()
        for t in score.tracks:
            notes[DRUMS if t.is_drum else t.program] += t.note_num()
        hits += all(notes[p] > 0 for p in programs)
        total = sum(notes[p] for p in programs)
        balance += min(notes[p] for p in programs) * len(programs) / total if total else 0.0
    return hits / len(seqs), balance / len(seqs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--steer", type=float, default=STEER_NATS, help="nats (default: ours)")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        ds = Path(tmp) / "band"
        prepare(BAND, ds, tracks="all", drums=True, jobs=1, quiet=True)
        run_dir = train(ds, model="transformer", overrides=[*TINY, f"train.steps={args.steps}"],
                        run_dir=Path(tmp) / "run", device="cpu")  # fmt: skip
        run = load_run(run_dir)
        tok = run.tokenizer
        start = [special_ids(tok)["BOS"]]
        print(
            f"{'request':<20} {'programs':<10} {'all play: mask':>14} {'steer':>6}   "
            f"{'balance: mask':>13} {'steer':>6}"
        )
        for request in REQUESTS:
            programs = resolve_instruments(request.split(","), run.instruments)
            shares = []
            for steer in (0.0, args.steer):
                rule = InstrumentConstraint(tok, programs, steer=steer)
                seqs = sample(run.model, n=args.samples, max_tokens=args.tokens, primer_ids=start,
                              seed=0, grammar=TypeGrammar(tok), constraints=[rule])  # fmt: skip
                shares.append(everyone_plays(tok, seqs, programs))
            shown = ",".join(map(str, programs))
            (plays0, even0), (plays1, even1) = shares
            print(
                f"{request:<20} {shown:<10} {plays0:>14.2f} {plays1:>6.2f}   "
                f"{even0:>13.2f} {even1:>6.2f}"
            )
        print(f"({args.samples} samples of {args.tokens} tokens each; steer = {args.steer} nats)")


if __name__ == "__main__":
    main()
