"""Benchmark: per-token cost of sampling with every hard constraint on vs off, in one run.

Target (docs/benchmarks.md, issue 16): sampling the shipped transformer with grammar, key,
range, polyphony, length and the chord steer on costs at most 1.1x per generated token of
sampling without them.

Three settings share the model, the seed, the batch and the token budget:

* ``off``      — plain sampling, no mask at all (``generate --no-grammar-mask``);
* ``grammar``  — the grammar mask alone (``generate``'s default);
* ``all on``   — grammar + key D minor (chromatic 0.1), range C3-C6, max polyphony 4, a
  length of ``--bars`` bars and ``--chords``, built the way ``generate`` builds them.

Why it is built this way: the model's forward pass is ~95 % of a step and its time moves by
5-10 % between identical calls on a shared machine, more than the constraints cost. So

* every setting draws exactly ``--tokens`` tokens a row (``EOS`` does not stop a row, for any
  setting; under "all on" a row that has ended keeps drawing its only allowed id, ``EOS``):
  the same number of forward passes at the same context lengths;
* ``--rounds`` short rounds each run the three settings back to back, the order rotated from
  round to round (so no setting always comes first or last), and the ratio is taken per round,
  between neighbours: the figure is its median over rounds, with the interquartile range;
* the forward pass is timed apart from the rest of the step (in every setting alike): the
  constraints' cost is what "all on" adds *outside* the forward pass, per round, and
  ``1 + that / an "off" step`` is the ratio the step would show with the forward pass's
  spread taken out. A reader can check the measured ratio against it;
* the rules' own calls (grammar and musical rule: start, allowed_bits, steer, update) are
  timed in ``--rule-calls`` more "all on" calls after the rounds, not in the rounds, whose
  ratio would carry the timers' own cost (a few microseconds a call).

Each time is given as wall clock (what a user waits) and as this process's CPU time (which a
busy machine disturbs less; with more than one thread it sums the threads).

    python bench/constraints.py [--n 4] [--tokens 512] [--bars 16] [--chords "Am F C G"]
                                [--rounds 10] [--rule-calls 3] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from midiforge.data.encode import special_ids
from midiforge.sampling.autoregressive import sample
from midiforge.sampling.constraints import GrammarConstraint
from midiforge.sampling.grammar import TypeGrammar
from midiforge.sampling.musical import Musical
from midiforge.sampling.token_rules import musical_constraints
from midiforge.store.run_dir import default_run, load_run

ASK = {"key": "D minor", "chromatic": 0.1, "range": "C3-C6", "max_polyphony": 4}
SETTINGS = ("off", "grammar", "all on")
CLOCKS = ("wall", "cpu")
TARGET = 1.1


@dataclass
class Clock:
    """Wall and CPU seconds spent inside some calls."""

    wall: float = 0.0
    cpu: float = 0.0

    def timed(self, method):
        def call(*args, **kwargs):
            w, c = time.perf_counter(), time.process_time()
            out = method(*args, **kwargs)
            self.wall += time.perf_counter() - w
            self.cpu += time.process_time() - c
            return out

        return call


class Timed:
    """A model or token rule whose calls are timed: every method the sampler calls (the
    model's forward; a rule's start, allowed or allowed_bits, steer, update), attributes
    passed through."""

    def __init__(self, inner, clock: Clock) -> None:
        self.inner, self.clock = inner, clock

    def __call__(self, *args, **kwargs):
        return self.clock.timed(self.inner)(*args, **kwargs)

    def __getattr__(self, name: str):
        value = getattr(self.inner, name)
        if not callable(value) or name in ("parameters", "eval", "new_cache", "trim_cache"):
            return value  # an attribute (``n_ids``), or the model's untimed helpers
        return self.clock.timed(value)


@dataclass
class Call:
    """Per-step seconds of one ``sample`` call: the whole step, the forward pass, the rules."""

    step: Clock = field(default_factory=Clock)
    forward: Clock = field(default_factory=Clock)
    rules: Clock = field(default_factory=Clock)  # only where asked (``time_rules``)
    ended: list[int] = field(default_factory=list)  # "all on": the step each row drew EOS


def run_once(run, setting: str, args, *, time_rules: bool = False) -> Call:
    """One ``sample`` call in ``setting``, every row drawing ``args.tokens`` tokens."""
    tok = run.tokenizer
    eos = special_ids(tok)["EOS"]
    start = [special_ids(tok)["BOS"]]
    call = Call()
    rules = []
    if setting != "off":  # as ``sample`` builds it from ``grammar=``, here to be timed
        rules.append(GrammarConstraint(TypeGrammar(tok)))
    if setting == "all on":
        musical = Musical(**ASK, bars=args.bars, chords=args.chords or None)
        rules += musical_constraints(tok, musical, max_tokens=args.tokens, primer_ids=start)
    timed = [Timed(r, call.rules) for r in rules] if time_rules else rules
    model = Timed(run.model, call.forward)
    w, c = time.perf_counter(), time.process_time()
    seqs = sample(model, n=args.n, max_tokens=args.tokens, primer_ids=start, seed=0,
                  top_k=40, eos_id=None, constraints=timed)  # fmt: skip
    call.step = Clock(time.perf_counter() - w, time.process_time() - c)
    for clock in (call.step, call.forward, call.rules):
        clock.wall, clock.cpu = clock.wall / args.tokens, clock.cpu / args.tokens
    if setting == "all on":
        call.ended = [s.index(eos, len(start)) - len(start) if eos in s else args.tokens
                      for s in seqs]  # fmt: skip
    return call


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Median and the interquartile range's ends."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q1, q3


def fmt(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    mid, low, high = (v * scale for v in quartiles(values))
    return f"{mid:.{digits}f} [{low:.{digits}f}-{high:.{digits}f}]"


def per_round(calls: dict[str, list[Call]], clock: str) -> dict[str, list[float]]:
    """Per round: the ratios between neighbours and what "all on" adds outside forward."""
    out = defaultdict(list)
    for off, gram, on in zip(calls["off"], calls["grammar"], calls["all on"]):
        step = {s: getattr(c.step, clock) for s, c in zip(SETTINGS, (off, gram, on))}
        out["on/off"].append(step["all on"] / step["off"])
        out["on/grammar"].append(step["all on"] / step["grammar"])
        added = (step["all on"] - getattr(on.forward, clock)) - (
            step["off"] - getattr(off.forward, clock)
        )
        out["added"].append(added)
        out["expected"].append(1 + added / step["off"])
    return out


def report(calls: dict[str, list[Call]], timed: list[Call], args) -> None:
    """Per clock: ms a step per setting, and the ratios per round (module docstring)."""
    ms = 1e3
    print(f"shipped transformer, batch {args.n}, {args.tokens} tokens a row (every setting), "
          f"{torch.get_num_threads()} threads, {len(calls['off'])} rounds; "
          "median [interquartile range]")  # fmt: skip
    for clock in CLOCKS:
        print(f"\n{clock} ms a step   step                 forward              outside forward")
        for s in SETTINGS:
            step = [getattr(c.step, clock) for c in calls[s]]
            forward = [getattr(c.forward, clock) for c in calls[s]]
            outside = [a - b for a, b in zip(step, forward)]
            print(f"  {s:8s}  {fmt(step, ms):20s} {fmt(forward, ms):20s} {fmt(outside, ms)}")
        ratio = per_round(calls, clock)
        off = statistics.median(getattr(c.step, clock) for c in calls["off"])
        rules = [getattr(c.rules, clock) / off for c in timed]
        print(f"  all on / off, per round:     {fmt(ratio['on/off'])}x (target <= {TARGET}x)")
        print(f"  all on / grammar, per round: {fmt(ratio['on/grammar'])}x")
        print(f"  all on adds outside forward: {fmt(ratio['added'], ms)} ms a step, "
              f"1 + that / off step = {fmt(ratio['expected'])}x")  # fmt: skip
        print(f"  the rules' own calls:        {fmt([r * off for r in rules], ms)} ms a step "
              f"= {fmt(rules)} of an off step ({len(timed)} more calls)")  # fmt: skip
    ended = sorted(e for c in calls["all on"] for e in c.ended)
    print(f"\nall on: rows drew EOS at step {ended[0]}-{ended[-1]} (median "
          f"{statistics.median(ended):.0f}) of {args.tokens}, then EOS only")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=4, help="samples per batch")
    parser.add_argument("--tokens", type=int, default=512, help="tokens drawn per sample")
    parser.add_argument("--bars", type=int, default=16, help="length rule of 'all on'")
    parser.add_argument("--chords", default="Am F C G", help="chord steer of 'all on' ('' off)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of the three settings")
    parser.add_argument("--rule-calls", type=int, default=3, help="'all on' calls, rules timed")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    run = load_run(default_run(), device="cpu")
    for setting in SETTINGS:  # warm-up: kernels, allocator, lookup tables
        run_once(run, setting, args)
    calls: dict[str, list[Call]] = {s: [] for s in SETTINGS}
    for r in range(args.rounds):
        k = r % len(SETTINGS)
        for setting in SETTINGS[k:] + SETTINGS[:k]:  # the order rotates from round to round
            calls[setting].append(run_once(run, setting, args))
    timed = [run_once(run, "all on", args, time_rules=True) for _ in range(args.rule_calls)]
    report(calls, timed, args)


if __name__ == "__main__":
    main()
