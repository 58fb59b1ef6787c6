"""What a generation request from the page may ask for, checked before it reaches the queue.

The page's inputs are the fields of :class:`midiforge.GenerateOptions` that declare web limits
(``OptionSpec.web``): numbers, with tighter caps than the API (at most 8 pieces of 4096 tokens,
so one request cannot hold the single worker for long) and the page's own defaults, and text
read by the option's own parser (the instruments). A value outside them, a field the chosen
model's sampler does not read, a missing or unlisted model, a style the model was not trained
with, instruments it never learned, or an upload that is too large or not a MIDI file is
refused with a :class:`MidiforgeError` whose message names the field, the value and what is
accepted. The server turns it into ``400 {"error": message}`` and the page shows the message.

The three options that name a file (a primer to continue, a song whose bars ``infill_bars``
are rewritten, a melody to harmonize: :data:`midiforge.web.midi_uploads.UPLOADS`) are file
inputs; :class:`GenerateOptions` checks them together as it does on the command line (one
of them at most, a bar range only with a song), so a clash gets the command line's message,
and :mod:`midiforge.web.midi_uploads` checks each file.

Every value is untrusted: numbers must be plain ASCII decimals of at most
:data:`MAX_NUMBER_CHARS` characters (``²`` or ``١٢٣`` are not numbers here), text must be
short and free of control characters, a value quoted back in a message is cut to a few dozen
characters, and one job may ask for at most :data:`MAX_JOB_TOKENS` tokens (pieces × length)
or :data:`MAX_JOB_STEPS` denoising steps (pieces × steps), so a single request cannot hold
the one worker for long (an accompaniment counts as long as its melody makes it). An upload
that would cost far more than its size (notes stacked on one key, too many notes, tracks, or
notes in the bars the sampler reads at once) is refused too.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from midiforge.errors import MidiforgeError
from midiforge.instruments import resolve_instruments
from midiforge.sampling.harmonize import NOTES_PER_BAR, TOKENS_PER_BAR
from midiforge.sampling.options import (
    SAMPLERS,
    WEB_MAX_SEED,
    Ask,
    GenerateOptions,
    OptionField,
    fields_by_sampler,
    option_fields,
)
from midiforge.web.catalog import RunInfo
from midiforge.web.midi_uploads import UPLOADS, check_melody, check_primer, check_song, upload_name

INFILL_BARS = "infill_bars"  # the bars to rewrite, "5-8": the ``bars`` option of an infill song
FORM_FIELDS = ("model", "style", INFILL_BARS, *UPLOADS)  # the page's inputs that are not options
MAX_JOB_TOKENS = 8192  # pieces x length per job (8 x 1024, 2 x 4096): a few minutes on a CPU
MAX_JOB_STEPS = 2000  # pieces x denoising steps per job
MAX_NUMBER_CHARS = 32
# a run id is a path below the runs folder; a band of a dozen instruments is ~150 characters
MAX_TEXT_CHARS = {
    "model": 255,
    "style": 100,
    "instruments": 200,
    "key": 40,
    "range": 200,
    "density": 200,
    "polyphony": 200,
    INFILL_BARS: 40,
}
MAX_SHOWN = 40  # characters of a refused value quoted back in a message
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+", re.ASCII)
_WORDS = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}  # range-checked
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown(value: Any) -> str:
    """``value`` quoted for a message, cut to :data:`MAX_SHOWN` characters."""
    text = str(value)
    return repr(text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "...")


def check_text(name: str, raw: Any) -> str:
    """A text field stripped, or an error when it is too long or holds control characters."""
    text = str(raw or "").strip()
    limit = MAX_TEXT_CHARS.get(name, MAX_SHOWN)
    if len(text) > limit:
        raise MidiforgeError(
            f"{name}: {shown(text)} is {len(text)} characters long; at most {limit} are accepted"
        )
    bad = _CONTROL.search(text)
    if bad:
        raise MidiforgeError(
            f"{name}: {shown(text)} holds the control character {bad.group()!r}; pick a listed "
            "value"
        )
    return text


@dataclass(frozen=True)
class WebField:
    """One input of the page: an option with the page's bounds and default (numbers), or a
    text the option's parser reads (``text``)."""

    name: str  # the form field and the input's id ("length" for max_tokens)
    option: str  # the GenerateOptions field it fills
    integer: bool
    lo: float | None  # None for text
    hi: float | None
    default: Any  # None: the input starts empty (the seed: a random one is drawn)
    none_at: float | None  # this value means None for the option (primer bars: 0 = all)
    samplers: frozenset[str]
    labels: dict[str, str]  # sampler -> label shown beside the input
    help: str
    placeholder: str
    text: bool = False  # a text input (a string option), not a number
    choices_from: str = ""  # "instruments": checked against the chosen model's instruments

    @classmethod
    def of(cls, info: OptionField, ask: Ask) -> WebField:
        """The input for option ``info`` as its web limits ``ask`` offer it."""
        lo, hi, default = info.offered(ask)
        return cls(
            name=ask.name or info.name,
            option=info.name,
            integer=info.kind is int,
            lo=lo,
            hi=hi,
            default=default,
            none_at=ask.none_at,
            samplers=info.spec.samplers,
            labels={
                s: ask.label or info.spec.label_for(s) for s in SAMPLERS if s in info.spec.samplers
            },
            help=info.spec.help,
            placeholder=ask.placeholder,
            text=info.kind is str,
            choices_from=info.spec.choices_from,
        )


# form field -> its input, in GenerateOptions order; the page builds its form from these.
FIELDS: dict[str, WebField] = {
    f.name: f for f in (WebField.of(i, i.spec.web) for i in option_fields() if i.spec.web)
}


@dataclass(frozen=True)
class GenerationRequest:
    """One validated request; ``run`` is ``None`` for a shipped model, which ``shipped`` names.

    ``options`` is what ``midiforge.generate`` receives, except that an option filled by an
    upload (``primer``, ``infill``, ``harmonize``) holds the uploaded file's name until the
    job writes ``uploads[option]`` into its folder and puts that path there instead.
    """

    model_id: str
    run: Path | None
    kind: str  # the model's declared sampler: "tokens", "notes" or "diffusion"
    options: GenerateOptions
    uploads: dict[str, bytes] = field(default_factory=dict)  # option -> its checked MIDI bytes
    shipped: str = ""  # the shipped model's family name (``generate(model=...)``), else ""


def fields_json() -> list[dict[str, Any]]:
    """The page's inputs: type, bounds, default, label per sampler (the server checks again)."""
    return [
        {
            "name": f.name,
            "type": "text" if f.text else "number",
            "choices_from": f.choices_from,
            "max_chars": MAX_TEXT_CHARS.get(f.name) if f.text else None,
            "option": f.option,
            "integer": f.integer,
            "min": f.lo,
            "max": f.hi,
            "default": f.default,
            "labels": f.labels,
            "help": f.help,
            "placeholder": f.placeholder,
        }
        for f in FIELDS.values()
    ]


def parse_number(name: str, raw: Any) -> int | float | None:
    """``raw`` (a form string, or empty for the default) as the field's type, range checked."""
    f = FIELDS[name]
    lo, hi = f.lo, f.hi
    text = str(raw if raw is not None else "").strip()
    if text == "":
        return None if f.default is None else (int if f.integer else float)(f.default)
    if len(text) > MAX_NUMBER_CHARS:
        raise MidiforgeError(
            f"{name}: {shown(text)} ({len(text)} characters) is too long for a number; use "
            f"{lo}..{hi}"
        )
    if not (_NUMBER.fullmatch(text) or text.lower() in _WORDS):
        raise MidiforgeError(f"{name}: {shown(text)} is not a number; use {lo}..{hi}")
    value = int(text) if _INTEGER.fullmatch(text) else float(text)
    if not lo <= value <= hi:
        raise MidiforgeError(f"{name}: {text} is out of range; use {lo}..{hi}")
    if f.integer and not float(value).is_integer():
        raise MidiforgeError(f"{name}: {shown(text)} is not a whole number; use {lo}..{hi}")
    return int(value) if f.integer else float(value)


def parse_text(name: str, raw: Any, info: RunInfo) -> str | None:
    """A text input: empty is the option's default (None); instruments must be ones the
    chosen model learned (the same parser and resolution as ``generate``)."""
    text = check_text(name, raw)
    if not text:
        return None
    if FIELDS[name].choices_from == "instruments":
        resolve_instruments(text.split(","), info.instruments)
    return text  # GenerateOptions normalises it with the option's parser


def _chosen_model(form: dict[str, Any], models: dict[str, RunInfo]) -> tuple[str, RunInfo]:
    """The listed model the form names, or an error that names the field and the choices."""
    model_id = check_text("model", form.get("model"))
    usable = [m for m, info in models.items() if not info.problem and info.has_weights]
    offered = ", ".join(usable) or "none (train one first)"
    if not model_id:
        raise MidiforgeError(f"model: missing; pick one of the listed models: {offered}")
    if model_id not in models:
        raise MidiforgeError(f"model: {shown(model_id)} is not one of the listed models: {offered}")
    info = models[model_id]
    if info.problem:
        raise MidiforgeError(
            f"model: {model_id!r} is broken ({info.problem}); pick another: {offered}"
        )
    if not info.has_weights:
        raise MidiforgeError(
            f"model: {model_id!r} has no model.safetensors yet; let its training save one"
        )
    return model_id, info


def _check_names(form: dict[str, Any], info: RunInfo, used: set[str]) -> None:
    """Refuse unknown form fields, and values for options this model's sampler does not read."""
    for name, raw in form.items():
        if name in FORM_FIELDS:
            continue
        if name not in FIELDS:
            accepted = ", ".join([*FORM_FIELDS, *FIELDS])
            raise MidiforgeError(
                f"{shown(name)[1:-1]}: not a field of the form; accepted: {accepted}"
            )
        if FIELDS[name].option not in used and str(raw).strip():
            readers = " and ".join(sorted(FIELDS[name].samplers))
            raise MidiforgeError(
                f"{name}: {info.id!r} is a {info.sampler} model, which does not use it (only "
                f"{readers} models do); leave it empty"
            )


def check_job_size(sampler: str, values: dict[str, Any], melody_bars: int | None = None) -> None:
    """Refuse a job bigger than the page's per-job budget (:data:`MAX_JOB_TOKENS` tokens or
    :data:`MAX_JOB_STEPS` denoising steps, counted over all its pieces); ``melody_bars``: the
    bars of a melody to harmonize, whose accompaniment is at least that long."""
    n = int(values.get("n") or 1)
    if sampler == "diffusion":
        steps = int(values.get("steps") or FIELDS["steps"].default or 1)
        if n * steps > MAX_JOB_STEPS:
            raise MidiforgeError(
                f"n × steps: {n} × {steps} = {n * steps} denoising steps is over the page's "
                f"per-job budget of {MAX_JOB_STEPS}; ask for fewer pieces or fewer steps"
            )
        return
    length = int(values.get("max_tokens") or GenerateOptions().max_tokens)
    unit = "notes" if sampler == "notes" else "tokens"
    if melody_bars is not None:  # the budget midiforge.sampling.harmonize gives the sampler
        per_bar = TOKENS_PER_BAR if sampler == "tokens" else NOTES_PER_BAR
        if n * per_bar * melody_bars > MAX_JOB_TOKENS:
            raise MidiforgeError(
                f"harmonize: an accompaniment of the melody's {melody_bars} bars takes "
                f"{per_bar} {unit} a bar, {n} × {per_bar * melody_bars} = "
                f"{n * per_bar * melody_bars} {unit}, over the page's per-job budget of "
                f"{MAX_JOB_TOKENS} {unit}; ask for fewer pieces or upload a shorter melody"
            )
    if n * length > MAX_JOB_TOKENS:
        raise MidiforgeError(
            f"n × length: {n} × {length} = {n * length} {unit} is over the page's per-job "
            f"budget of {MAX_JOB_TOKENS} {unit}; ask for fewer pieces or shorter ones (the "
            "command line has no such cap)"
        )


def _bar_range(form: dict[str, Any], values: dict[str, Any]) -> None:
    """The bars to rewrite (``infill_bars``, "5-8") into ``values["bars"]``, as text for the
    ``bars`` option's own parser (the one ``--bars`` uses); refused beside a length in bars."""
    text = check_text(INFILL_BARS, form.get(INFILL_BARS))
    if not text:
        return
    if values.get("bars") is not None:
        raise MidiforgeError(
            f"bars: {values['bars']} and {INFILL_BARS}: {shown(text)}: give one; the bars to "
            "rewrite set the length of a rewritten song (set bars to 0)"
        )
    values["bars"] = text


def _check_uploads(
    files: Mapping[str, tuple[bytes, str]], options: GenerateOptions
) -> tuple[dict[str, bytes], int | None]:
    """Each upload checked for what its option does with it (:mod:`midi_uploads`); and the
    melody's bars when one is harmonized (None otherwise)."""
    checked: dict[str, bytes] = {}
    melody_bars = None
    for option, (data, filename) in files.items():
        if option == "primer":
            check_primer(data, filename, options.primer_bars)
            checked[option] = data
        elif option == "infill":
            first, last = options.bar_range() or (1, 1)  # GenerateOptions asked for a range
            checked[option] = check_song(data, filename, first, last)
        else:
            checked[option], melody_bars = check_melody(data, filename)
    return checked, melody_bars


def parse_request(
    form: dict[str, Any],
    models: dict[str, RunInfo],
    files: Mapping[str, tuple[bytes, str]] | None = None,
) -> GenerationRequest:
    """Check a submitted form against the listed ``models`` and the ranges in :data:`FIELDS`.

    Parameters
    ----------
    form
        Field name -> submitted string (``model``, ``style``, ``infill_bars`` and the names in
        :data:`FIELDS`); empty strings take the page's defaults; an empty seed draws one
        (reported back).
    models
        The models the page offered, by id (from :func:`midiforge.web.catalog.find_runs`, plus
        the shipped default and any ``--run``); anything else is refused.
    files
        Option name (one of :data:`~midiforge.web.midi_uploads.UPLOADS`) -> ``(bytes,
        filename)`` of each uploaded MIDI file; an empty one counts as none.
    """
    files = {name: upload for name, upload in (files or {}).items() if upload[0]}
    model_id, info = _chosen_model(form, models)
    used = set(fields_by_sampler()[info.sampler])
    _check_names(form, info, used)
    style = check_text("style", form.get("style")) or None
    if style is not None and style not in info.labels:
        accepted = ", ".join(info.labels) or "none (this model has no style labels)"
        raise MidiforgeError(
            f"style: {shown(style)} is not a label of {model_id!r}; use: {accepted}"
        )
    values = {}
    for f in FIELDS.values():
        if f.option in used and f.text:
            values[f.option] = parse_text(f.name, form.get(f.name), info)
        elif f.option in used:
            value = parse_number(f.name, form.get(f.name))
            values[f.option] = None if value is not None and value == f.none_at else value
    _bar_range(form, values)
    for option, (_, filename) in files.items():
        if option not in UPLOADS:
            raise MidiforgeError(
                f"{shown(option)[1:-1]}: not a file input of the form; the file inputs are "
                + ", ".join(UPLOADS)
            )
        if option not in used:
            raise MidiforgeError(
                f"{option}: {model_id!r} is a {info.sampler} model, which does not read it; "
                "remove the upload"
            )
        values[option] = upload_name(option, filename)  # its path once the job writes it
    options = GenerateOptions(style=style, **values)  # the command line's checks and words
    uploads, melody_bars = _check_uploads(files, options)
    check_job_size(info.sampler, values, melody_bars)
    if "seed" in used and options.seed is None:  # the page reports every job's seed
        options = replace(options, seed=secrets.randbelow(WEB_MAX_SEED + 1))
    return GenerationRequest(
        model_id=model_id,
        run=None if info.shipped else info.path,
        kind=info.sampler,
        options=options,
        uploads=uploads,
        shipped=info.shipped,
    )
