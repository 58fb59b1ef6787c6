"""Benchmark: per-token cost of sampling with every hard constraint on vs off, in one run.

Target (docs/benchmarks.md, issue 16): sampling the shipped transformer with key, range,
polyphony and length on costs at most 1.1x per generated token of sampling without them.

Three settings share the model, the seed, the batch and the token budget, and run interleaved
(``--trials`` rounds of each, the fastest per-token time of each kept, robust to a busy machine):

* ``off``      — plain sampling, no mask at all (``generate --no-grammar-mask``);
* ``grammar``  — the grammar mask alone (``generate``'s default since the mask is on by
  default; the musician's rules switch it on in any case);
* ``all on``   — grammar + key D minor (chromatic 0.1), range C3-C6, max polyphony 4 and a
  length of ``--bars`` bars, built the way ``generate`` builds them.

The figure is seconds per decoding step of the batch (one token per sample; the batch steps
until its last sample ends, so samples that end early at their bar line do not skew it).

    python bench/constraints.py [--n 4] [--tokens 512] [--bars 16] [--trials 3] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch

from midiforge.data.encode import special_ids
from midiforge.sampling.autoregressive import sample
from midiforge.sampling.grammar import TypeGrammar
from midiforge.sampling.musical import Musical
from midiforge.sampling.token_rules import musical_constraints
from midiforge.store.run_dir import default_run, load_run

ASK = {"key": "D minor", "chromatic": 0.1, "range": "C3-C6", "max_polyphony": 4}


class Timed:
    """A token rule whose calls are timed (all of them: start, allowed or allowed_bits, steer,
    update): the rules' own share of a step, beside the ratio."""

    def __init__(self, rule) -> None:
        self.rule, self.seconds = rule, 0.0

    def __getattr__(self, name: str):
        method = getattr(self.rule, name)
        if not callable(method):
            return method  # an attribute (``n_ids``): nothing to time

        def timed(*args):
            t0 = time.perf_counter()
            out = method(*args)
            self.seconds += time.perf_counter() - t0
            return out

        return timed


RULE_SECONDS: list[float] = []  # per step, of each 'all on' call


def run_once(run, setting: str, args) -> float:
    """Seconds per generated token of one ``sample`` call in ``setting``."""
    tok = run.tokenizer
    specials = special_ids(tok)
    start = [specials["BOS"]]
    grammar = TypeGrammar(tok) if setting != "off" else None
    rules = []
    if setting == "all on":
        musical = Musical(**ASK, bars=args.bars)
        rules = [Timed(r) for r in musical_constraints(tok, musical, max_tokens=args.tokens,
                                                       primer_ids=start)]  # fmt: skip
    t0 = time.perf_counter()
    seqs = sample(run.model, n=args.n, max_tokens=args.tokens, primer_ids=start, seed=0,
                  top_k=40, grammar=grammar, eos_id=specials["EOS"], constraints=rules)  # fmt: skip
    seconds = time.perf_counter() - t0
    steps = max(max(len(s) for s in seqs) - len(start), 1)  # until the batch's last row ends
    if rules:
        RULE_SECONDS.append(rules[0].seconds / steps)
    return seconds / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4, help="samples per batch")
    parser.add_argument("--tokens", type=int, default=512, help="token budget per sample")
    parser.add_argument("--bars", type=int, default=16, help="length rule of 'all on'")
    parser.add_argument("--trials", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_run(default_run(), device="cpu")
    settings = ("off", "grammar", "all on")
    best = dict.fromkeys(settings, float("inf"))
    run_once(run, "all on", args)  # warm-up: kernels, allocator, lookup tables
    for _ in range(args.trials):
        for setting in settings:
            best[setting] = min(best[setting], run_once(run, setting, args))
    print(f"shipped transformer, batch {args.n}, {args.tokens} tokens, "
          f"{torch.get_num_threads()} threads, best of {args.trials}")  # fmt: skip
    for setting in settings:
        print(f"  {setting:8s} {best[setting] * 1e3:7.3f} ms/token")
    print(f"all on / off:     {best['all on'] / best['off']:.3f}x (target <= 1.1x)")
    print(f"all on / grammar: {best['all on'] / best['grammar']:.3f}x")
    rules = min(RULE_SECONDS)
    print(f"the rules' own time: {rules * 1e3:.3f} ms/step = {rules / best['off']:.3f} of an "
          "'off' step")  # fmt: skip


if __name__ == "__main__":
    main()
