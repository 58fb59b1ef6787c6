"""Interactive menu: train a new model, continue training one, or generate MIDI with one.

Run ``midiforge`` with no arguments on a terminal (or ``midiforge menu``). Each choice asks only
for what it needs, shows the default in brackets (Enter takes it), offers the datasets and runs
it finds to pick by number, asks again after a bad answer, and Ctrl-C (or Ctrl-D) returns to the
menu. It calls the same :mod:`midiforge.api` functions as the commands.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from midiforge.errors import MidiforgeError
from midiforge.instruments import describe, parse_instruments, resolve_instruments
from midiforge.sampling.options import GenerateOptions, option_fields
from midiforge.web import catalog

T = TypeVar("T")

CHOICES = (
    ("1", "train a new model"),
    ("2", "continue training a model"),
    ("3", "generate MIDI with a model"),
    ("4", "exit"),
)
DEFAULT_RUNS_DIR = "runs"
DEFAULT_DATA_DIR = "data"
DEFAULT_OUT_DIR = "generated"
DEFAULT_FAMILY = "lstm"
DEFAULT_SIZE = "small"
DEFAULT_TRAIN_STEPS = 1000  # optimizer steps; a small model learns a corpus's style in this
DEFAULT_MORE_STEPS = 500  # steps added when continuing
# family -> size -> model config values; "medium" is each family's own defaults.
SIZES: dict[str, dict[str, dict[str, int]]] = {
    rnn: {
        "tiny": {"d_embed": 64, "d_hidden": 64, "n_layers": 1},
        "small": {"d_embed": 128, "d_hidden": 256, "n_layers": 2},
        "medium": {},
        "large": {"d_embed": 512, "d_hidden": 1024, "n_layers": 3},
    }
    for rnn in ("lstm", "gru")
} | {
    "transformer": {
        "tiny": {"d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 256},
        "small": {"d_model": 128, "n_layers": 4, "n_heads": 4, "d_ff": 512},
        "medium": {},
        "large": {"d_model": 512, "n_layers": 8, "n_heads": 8, "d_ff": 2048},
    }
}
MAX_STEPS = 10_000_000
# options that only a run prepared with those --controls reads (--chords also steers any run)
LEARNED_ONLY = ("density", "polyphony")
# the generation questions (pieces, length, temperature, ...) and their bounds and defaults are
# the ``menu`` limits of midiforge.GenerateOptions' fields (see midiforge.sampling.options)


class Back(Exception):
    """Raised by a prompt on Ctrl-C or Ctrl-D: leave the current choice, back to the menu."""


class Prompter:
    """Asks questions on a terminal with ``input()``; every answer is parsed and re-asked on error.

    Parameters
    ----------
    write
        Where messages go (``print`` by default); prompts themselves go through ``input``.
    """

    def __init__(self, write: Callable[[str], None] = print) -> None:
        self.write = write

    def ask(self, question: str, parse: Callable[[str], T], default: str | None = None) -> T:
        """Ask until ``parse(answer)`` succeeds; Enter alone takes ``default`` when there is one."""
        suffix = f" [{default}]" if default not in (None, "") else ""
        while True:
            try:
                answer = input(f"{question}{suffix}: ").strip()
            except (KeyboardInterrupt, EOFError):
                self.write("")
                raise Back from None
            if answer == "" and default is None:
                self.write("  please answer (Ctrl-C goes back to the menu)")
                continue
            if answer == "":  # the default; "" when an empty answer is one (optional)
                answer = default
            try:
                return parse(answer)
            except (MidiforgeError, ValueError) as exc:
                self.write(f"  {exc}")

    def optional(self, question: str, parse: Callable[[str], T]) -> T | None:
        """Like :meth:`ask`, but Enter alone answers None."""
        return self.ask(question, lambda text: parse(text) if text else None, "")

    def number(self, question: str, kind: type, default: float | None, lo: float, hi: float) -> Any:
        """An ``int`` or ``float`` in ``lo..hi``."""

        def parse(text: str) -> Any:
            try:
                value = kind(text)
            except ValueError:
                what = "a whole number" if kind is int else "a number"
                raise MidiforgeError(f"{text!r} is not {what}; use {lo}..{hi}") from None
            if not lo <= value <= hi:
                raise MidiforgeError(f"{value} is out of range; use {lo}..{hi}")
            return value

        return self.ask(question, parse, None if default is None else str(default))

    def pick(self, question: str, options: Sequence[str], default: int | None = 1) -> int:
        """List ``options`` numbered from 1 and return the 0-based index chosen."""
        for i, text in enumerate(options, start=1):
            self.write(f"  {i}) {text}")

        def parse(text: str) -> int:
            if text.isdigit() and 1 <= int(text) <= len(options):
                return int(text) - 1
            raise MidiforgeError(f"{text!r} is not a choice; type a number 1..{len(options)}")

        return self.ask(question, parse, None if default is None else str(default))


# -- checks used as parse functions ------------------------------------------------------------
def _existing_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise MidiforgeError(f"{text!r} is not a folder; type the path of an existing folder")
    return path


def _new_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if path.exists() and any(path.iterdir()):
        raise MidiforgeError(f"{text!r} already exists and is not empty; choose a new folder")
    return path


def _out_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise MidiforgeError(f"{text!r} is a file; type a folder for the MIDI files")
    return path


# -- the three actions -------------------------------------------------------------------------
def _choose_source(ask: Prompter, data_dir: Path) -> Path:
    """A prepared dataset from ``data_dir`` by number, or any dataset/MIDI folder by path."""
    found = catalog.find_datasets(data_dir)
    if found:
        ask.write(f"Datasets in {data_dir}/:")
        options = [f"{d.id}  ({d.files} files, {d.tokenizer or '?'})" for d in found]
        options.append("another folder (a dataset or a folder of MIDI files)")
        index = ask.pick("Dataset", options, default=1)
        if index < len(found):
            return found[index].path
    else:
        ask.write(f"(no prepared datasets in {data_dir}/)")
    return ask.ask("Folder of MIDI files or prepared dataset", _existing_dir)


def train_new(ask: Prompter, runs_dir: Path, data_dir: Path) -> None:
    """Ask for a source, a model family and size, a step count and a run folder; train."""
    from midiforge import api
    from midiforge.models import registry

    source = _choose_source(ask, data_dir)
    families = registry.names()
    default_family = families.index(DEFAULT_FAMILY) + 1 if DEFAULT_FAMILY in families else 1
    family = families[ask.pick("Model family", families, default=default_family)]
    sizes = SIZES.get(family, {DEFAULT_SIZE: {}})
    names = list(sizes)
    default_size = names.index(DEFAULT_SIZE) + 1 if DEFAULT_SIZE in names else 1
    size = names[ask.pick("Model size", _size_labels(sizes), default=default_size)]
    steps = ask.number("Training steps", int, DEFAULT_TRAIN_STEPS, 1, MAX_STEPS)
    default_out = runs_dir / f"{family}-{size}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = ask.ask("Run folder", _new_dir, str(default_out))
    overrides = [f"model.{k}={v}" for k, v in sizes[size].items()] + [f"train.steps={steps}"]
    ask.write(f"Training {family} ({size}) on {source} for {steps} steps → {out}  (Ctrl-C stops)")
    run_dir = api.train(source, model=family, overrides=overrides, run_dir=out)
    ask.write(f"Done: the run is in {run_dir}")


def _size_labels(sizes: dict[str, dict[str, int]]) -> list[str]:
    return [
        f"{name}  ({', '.join(f'{k}={v}' for k, v in values.items()) or 'family defaults'})"
        for name, values in sizes.items()
    ]


def continue_training(ask: Prompter, runs_dir: Path) -> None:
    """Pick a run that has a checkpoint, ask up to which step to train, and resume it."""
    from midiforge import api

    runs = [r for r in catalog.find_runs(runs_dir) if r.can_resume]
    if not runs:
        ask.write(f"(no run with a checkpoint in {runs_dir}/; train a new model first)")
        return
    ask.write(f"Runs in {runs_dir}/:")
    labels = [f"{r.id}  ({r.model}, {r.steps} steps)" for r in runs]
    run = runs[ask.pick("Run to continue", labels, default=1)]
    total = ask.number(
        "Train up to step", int, run.steps + DEFAULT_MORE_STEPS, run.steps + 1, MAX_STEPS
    )
    ask.write(f"Continuing {run.id} up to step {total}  (Ctrl-C stops)")
    run_dir = api.train(resume=run.path, overrides=[f"train.steps={total}"])
    ask.write(f"Done: the run is in {run_dir}")


def _instruments(ask: Prompter, question: str, run: catalog.RunInfo) -> str | None:
    """Instruments the run learned, named for it; Enter alone leaves them to the model."""
    ask.write(f"  {run.id} knows: {describe(run.instruments)}")

    def parse(text: str) -> str:
        resolve_instruments(text.split(","), run.instruments)  # the same check as generate's
        return ",".join(parse_instruments(text))

    return ask.optional(f"{question} (names or numbers, comma-separated; Enter = the model's "
                        "choice)", parse)  # fmt: skip


def _generation_options(
    ask: Prompter, run: catalog.RunInfo, skip: Sequence[str] = ()
) -> dict[str, Any]:
    """Ask, in field order, each option with menu limits that the run's sampler reads (but
    those in ``skip``, which the chosen task asked already)."""
    values: dict[str, Any] = {}
    for info in option_fields():
        spec, menu = info.spec, info.spec.menu
        if menu is None or run.sampler not in spec.samplers or info.name in skip:
            continue
        if info.name in LEARNED_ONLY and info.name not in run.controls:
            continue  # a learned control the run has no tokens for
        question = menu.label or spec.label_for(run.sampler)
        if spec.choices_from == "labels":  # the run's style labels, or none to choose from
            if run.labels:
                choices = ["any", *run.labels]
                index = ask.pick(question, choices, default=1)
                values[info.name] = None if index == 0 else choices[index]
            continue
        if spec.choices_from == "instruments":
            values[info.name] = _instruments(ask, question, run)
            continue
        if info.kind is str:  # text read by the option's own parser (key, range, chords)
            example = f"e.g. {menu.placeholder}; " if menu.placeholder else ""
            values[info.name] = ask.optional(f"{question} ({example}Enter = none)", info.check)
            continue
        lo, hi, default = info.offered(menu)
        value = ask.number(question, info.kind, default, lo, hi)
        values[info.name] = None if menu.none_at is not None and value == menu.none_at else value
    return values


def _midi_file(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_file():
        raise MidiforgeError(f"{path}: no such file; give the path of a MIDI file")
    return path


def _task(ask: Prompter, run: catalog.RunInfo) -> dict[str, Any]:
    """New pieces, bars of a song rewritten (--infill), or a melody accompanied (--harmonize):
    the file and bar range a task needs, for the samplers that can do it."""
    from midiforge.sampling.options import parse_bars

    fields = {f.name: f for f in option_fields()}
    tasks = [("new", "new pieces")]
    if run.sampler in fields["infill"].spec.samplers:
        tasks.append(("infill", "rewrite bars of a MIDI file, keeping every other note"))
    if run.sampler in fields["harmonize"].spec.samplers:
        tasks.append(("harmonize", "an accompaniment under a melody (a MIDI file)"))
    if len(tasks) == 1:
        return {}
    task = tasks[ask.pick("Write", [text for _, text in tasks], default=1)][0]
    if task == "new":
        return {}
    song = ask.ask("MIDI file", _midi_file)
    if task == "harmonize":
        return {"harmonize": song}

    def bar_range(text: str) -> str:
        value = parse_bars(text)
        if not isinstance(value, str):
            raise MidiforgeError(f"{text!r}: give the bars to rewrite as A-B, e.g. 5-8")
        return value

    return {"infill": song, "bars": ask.ask("Bars to rewrite (A-B, e.g. 5-8)", bar_range)}


def _shipped_label(info: catalog.RunInfo) -> str:
    default = " (the default)" if info.id == catalog.DEFAULT_ID else ""
    return f"the shipped {info.model} model{default}"


def generate(ask: Prompter, runs_dir: Path) -> None:
    """Pick a model, ask what its sampler reads (count, length, style, ...), write MIDI files."""
    from midiforge import api

    runs = [r for r in catalog.find_runs(runs_dir) if r.has_weights]
    runs += catalog.shipped_run_infos()
    if not runs:
        ask.write(f"(no trained model in {runs_dir}/; train a new model first)")
        return
    ask.write("Models:")
    labels = [f"{r.id}  ({r.model})" if r.path else _shipped_label(r) for r in runs]
    run = runs[ask.pick("Model", labels, default=1)]
    task = _task(ask, run)
    options = GenerateOptions(**task, **_generation_options(ask, run, skip=list(task)))
    out = ask.ask("Output folder", _out_dir, DEFAULT_OUT_DIR)
    plural = "s" if options.n > 1 else ""
    ask.write(f"Generating {options.n} piece{plural} with {run.id}  (Ctrl-C stops)")
    result = api.generate(run.path, out_dir=out, options=options, model=run.shipped or None)
    ask.write(result.summary())


# -- the loop ----------------------------------------------------------------------------------
def menu_loop(runs_dir: Path, data_dir: Path, ask: Prompter | None = None) -> int:
    """Show the menu until "exit" (or Ctrl-C/Ctrl-D at the menu itself); returns exit status 0."""
    ask = ask or Prompter()
    actions: dict[str, Callable[[], None]] = {
        "1": lambda: train_new(ask, runs_dir, data_dir),
        "2": lambda: continue_training(ask, runs_dir),
        "3": lambda: generate(ask, runs_dir),
    }
    while True:
        ask.write("\nmidiforge — what would you like to do?")
        try:
            index = ask.pick("Choice", [text for _, text in CHOICES], default=None)
        except Back:
            return 0
        key = CHOICES[index][0]
        if key == "4":
            return 0
        try:
            actions[key]()
        except (Back, KeyboardInterrupt):
            ask.write("(cancelled; back to the menu)")
        except MidiforgeError as exc:
            ask.write(f"error: {exc}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs-dir",
        default=DEFAULT_RUNS_DIR,
        help=f"folder with trained runs, and where new ones go (default {DEFAULT_RUNS_DIR})",
    )
    parser.add_argument(
        "--data-dir",
        default=DEFAULT_DATA_DIR,
        help=f"folder searched for prepared datasets (default {DEFAULT_DATA_DIR})",
    )


def run(args: argparse.Namespace) -> int:
    return menu_loop(Path(args.runs_dir), Path(args.data_dir))
