"""Sample new MIDI files from a trained run (or the shipped default model).

Every option below is a field of midiforge.GenerateOptions; its flag, help, type, choices and
group (the runs that read it) come from that field's metadata.
"""

from __future__ import annotations

import argparse
from typing import Any

from midiforge.assets import DEFAULT_MODEL, SHIPPED
from midiforge.sampling.options import GenerateOptions, OptionField, option_fields, sampler_title

METAVARS = {int: "N", float: "X", str: "TEXT"}  # when a field declares none


def _help(info: OptionField) -> str:
    """The field's help, its unit and special values, and its default."""
    spec = info.spec
    text = spec.help + (f" ({spec.unit})" if spec.unit and spec.unit not in spec.help else "")
    if spec.note:  # "None = ..." is the flag left out
        text += "; " + spec.note.replace("None =", "if left out:")
    text = text.replace("%", "%%")  # argparse %-formats help texts
    if info.default is not None and info.kind is not bool:
        text += " (default: %(default)s)"
    return text


def _argument(info: OptionField) -> dict[str, Any]:
    """``add_argument`` keywords for one field."""
    if info.kind is bool:
        action = argparse.BooleanOptionalAction if info.default else "store_true"
        return {"action": action, "default": info.default}
    kwargs: dict[str, Any] = {"default": info.default}
    # an option with its own parser reads the text itself (bars: "8" or "5-8")
    kwargs["type"] = str if info.spec.parser else {int: int, float: float}.get(info.kind, str)
    if info.spec.choices:
        kwargs["choices"] = info.spec.choices
    else:
        kwargs["metavar"] = info.spec.metavar or METAVARS.get(info.kind, "PATH")
    return kwargs


def add_option_arguments(parser: argparse.ArgumentParser, cls: type = GenerateOptions) -> None:
    """One flag per field of ``cls``, in groups by the samplers that read them."""
    groups: dict[frozenset[str], Any] = {}
    for info in option_fields(cls):
        samplers = info.spec.samplers
        if samplers not in groups:
            groups[samplers] = parser.add_argument_group(sampler_title(samplers))
        groups[samplers].add_argument(
            *info.flags, dest=info.name, help=_help(info), **_argument(info)
        )


def options_from_args(args: argparse.Namespace, cls: type = GenerateOptions) -> Any:
    """The parsed flags as a ``cls`` (checked: a bad value names its field)."""
    return cls(**{info.name: getattr(args, info.name) for info in option_fields(cls)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        nargs="?",
        default=None,
        help="RUN dir written by `train` (default: the shipped model that --model names)",
    )
    parser.add_argument(
        "--model",
        choices=sorted(SHIPPED),
        default=None,
        help=f"a model shipped with midiforge, played when no RUN is given "
        f"(default: {DEFAULT_MODEL}; model cards in docs/)",
    )
    parser.add_argument("-o", "--out", required=True, help="folder for the MIDI files")
    add_option_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from midiforge import api

    options = options_from_args(args)
    result = api.generate(args.run, out_dir=args.out, options=options, model=args.model)
    print(result.summary())
    return 0
