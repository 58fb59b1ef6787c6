"""GenerateOptions: one checked list of options, and the command-line flags built from it."""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import pytest

from midiforge import GenerateOptions as Exported
from midiforge.cli import build_parser
from midiforge.cli.generate import add_option_arguments, options_from_args
from midiforge.errors import MidiforgeError
from midiforge.sampling.options import (
    KV_CACHE_CHOICES,
    GenerateOptions,
    fields_by_sampler,
    ignored_by,
    option_fields,
    spec,
    with_fields,
)

# the flags of `midiforge generate` before they were built from the dataclass (README, scripts)
FLAGS_BEFORE = ["-n", "--n", "--max-tokens", "--primer", "--primer-bars", "--temperature",
    "--top-k", "--top-p", "--seed", "--style", "--grammar-mask", "--noise", "--window",
    "--device", "--kv-cache", "--wav", "--png", "--steps", "--eta", "--guidance", "--number",
    "--context", "--fixed-time", "--trace"]  # fmt: skip


def _generate_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["generate"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"temperature": math.nan}, r"temperature: nan is not accepted; use a finite number >= 0"),
        ({"temperature": math.inf}, r"temperature: inf is not accepted; use a finite number"),
        ({"temperature": -0.5}, r"temperature: -0\.5 is not accepted; .*\(0 = greedy\)"),
        ({"top_k": -1}, r"top_k: -1 is not accepted; use a whole number >= 0 \(0 = off\)"),
        ({"top_p": 0.0}, r"top_p: 0\.0 is not accepted; use a finite number in \(0, 1\]"),
        ({"top_p": 1.5}, r"top_p: 1\.5 is not accepted; use a finite number in \(0, 1\]"),
        ({"n": 0}, r"n: 0 is not accepted; use a whole number >= 1"),
        ({"n": 2.5}, r"n: 2\.5 is not accepted; use a whole number"),
        ({"n": True}, r"n: True is not accepted"),
        ({"max_tokens": "64"}, r"max_tokens: '64' is not accepted; use a whole number >= 1"),
        ({"seed": -1}, r"seed: -1 is not accepted; use a whole number in 0\.\.9223372036854775807"),
        ({"seed": 2**63}, r"seed: 9223372036854775808 is not accepted"),
        ({"kv_cache": "int8"}, r"kv_cache: 'int8' is not accepted; expected one of: auto, "),
        ({"window": 1}, r"window: 1 is not accepted; use a whole number >= 2"),
        ({"primer_bars": 0}, r"primer_bars: 0 is not accepted; use a whole number >= 1"),
        ({"eta": 2.0}, r"eta: 2\.0 is not accepted; use a finite number in 0\.\.1"),
        ({"fixed_time": 0.0}, r"fixed_time: 0\.0 is not accepted; use a finite number > 0"),
        ({"grammar_mask": "yes"}, r"grammar_mask: 'yes' is not accepted; use true or false"),
        ({"primer": 3}, r"primer: 3 is not accepted; use a file path"),
    ],
)
def test_bad_values_name_the_field_the_value_and_what_is_accepted(values, message) -> None:
    with pytest.raises(MidiforgeError, match=message):
        GenerateOptions(**values)


def test_options_are_frozen_keyword_only_and_checked_again_when_replaced() -> None:
    assert Exported is GenerateOptions
    opts = GenerateOptions(n=2, temperature=1, seed=2**63 - 1, primer=Path("a.mid"))
    assert opts.temperature == 1.0 and isinstance(opts.temperature, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.n = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        GenerateOptions(2)  # type: ignore[misc]
    with pytest.raises(MidiforgeError, match="top_p"):
        dataclasses.replace(opts, top_p=0.0)
    assert GenerateOptions(seed=None, steps=None).seed is None


def test_fields_override_options_and_unknown_names_list_the_accepted_ones() -> None:
    base = GenerateOptions(n=2, seed=5)
    merged = with_fields(base, {"n": 1, "temperature": 0.5})
    assert (merged.n, merged.seed, merged.temperature) == (1, 5, 0.5)
    assert with_fields(None, {}) == GenerateOptions()
    with pytest.raises(MidiforgeError, match=r"unknown option 'temprature' \(did you mean "
                       r"'temperature'\?\); accepted: n, max_tokens, "):  # fmt: skip
        with_fields(base, {"temprature": 1.0})
    with pytest.raises(MidiforgeError, match="options: dict is not accepted"):
        with_fields({"n": 1}, {})  # type: ignore[arg-type]


def test_every_field_declares_its_samplers_and_what_they_ignore_is_named() -> None:
    by_sampler = fields_by_sampler()
    assert {"temperature", "top_k", "top_p", "noise", "max_tokens"} <= set(by_sampler["notes"])
    assert {"steps", "eta", "guidance", "number", "context"} <= set(by_sampler["diffusion"])
    assert "kv_cache" in by_sampler["tokens"] and "noise" not in by_sampler["tokens"]
    for info in option_fields():
        assert info.spec.help and info.spec.samplers, info.name
    opts = GenerateOptions(steps=8, temperature=0.5)
    assert ignored_by(opts, "tokens") == ["steps=8"]
    assert ignored_by(opts, "diffusion") == ["temperature=0.5"]


def test_every_field_has_a_flag_with_its_help_and_the_old_flags_remain() -> None:
    parser = _generate_parser()
    by_dest = {a.dest: a for a in parser._actions if a.option_strings}
    for info in option_fields():
        action = by_dest[info.name]  # a KeyError here: the field got no flag
        negated = (
            ["--no-" + f[2:] for f in info.flags] if info.kind is bool and info.default else []
        )
        assert action.option_strings == [*info.flags, *negated]  # on by default: --no-X too
        assert info.spec.help.replace("%", "%%") in action.help
        assert action.default == info.default
    assert {s for a in parser._actions for s in a.option_strings} >= set(FLAGS_BEFORE)
    assert by_dest["kv_cache"].choices == KV_CACHE_CHOICES
    text = parser.format_help()
    assert "diffusion runs:" in text and "note runs (multi-head note LSTM" in text
    args = parser.parse_args(["-o", "out", "-n", "2", "--max-tokens", "64", "--kv-cache",
                              "float32", "--grammar-mask", "--primer-bars", "4"])  # fmt: skip
    assert options_from_args(args) == GenerateOptions(
        n=2, max_tokens=64, kv_cache="float32", grammar_mask=True, primer_bars=4
    )
    with pytest.raises(MidiforgeError, match="temperature: nan is not accepted"):
        options_from_args(parser.parse_args(["-o", "out", "--temperature", "nan"]))


def test_a_new_field_is_a_new_flag_without_touching_the_command_line() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class WithChorus(GenerateOptions):
        chorus_bars: int = dataclasses.field(default=4, metadata=spec(
            help="bars of each chorus", samplers=frozenset({"tokens"}), lo=1))  # fmt: skip

    parser = argparse.ArgumentParser()
    add_option_arguments(parser, WithChorus)
    assert "--chorus-bars" in parser.format_help() and "bars of each chorus" in parser.format_help()
    opts = options_from_args(parser.parse_args(["--chorus-bars", "8", "--top-k", "5"]), WithChorus)
    assert (opts.chorus_bars, opts.top_k) == (8, 5)
    with pytest.raises(MidiforgeError, match="chorus_bars: 0 is not accepted; use a whole number"):
        options_from_args(parser.parse_args(["--chorus-bars", "0"]), WithChorus)
