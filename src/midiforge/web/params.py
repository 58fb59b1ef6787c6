"""What a generation request from the page may ask for, checked before it reaches the queue.

The page's inputs are the fields of :class:`midiforge.GenerateOptions` that declare web limits
(``OptionSpec.web``): the page keeps tighter caps than the API (at most 8 pieces of 4096 tokens,
so one request cannot hold the single worker for long) and its own defaults. A value outside
them, a field the chosen model's sampler does not read, a missing or unlisted model, a style
the model was not trained with, or a primer that is too large or not a MIDI file is refused
with a :class:`MidiforgeError` whose message names the field, the value and what is accepted.
The server turns it into ``400 {"error": message}`` and the page shows the message.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from midiforge.errors import MidiforgeError
from midiforge.sampling.options import (
    SAMPLERS,
    WEB_MAX_SEED,
    Ask,
    GenerateOptions,
    OptionField,
    fields_by_sampler,
    option_fields,
)
from midiforge.web.catalog import DEFAULT_ID, RunInfo

MIDI_MAGIC = b"MThd"  # every Standard MIDI File starts with this chunk id
MAX_PRIMER_BYTES = 512 * 1024  # 512 KiB: a long piano piece is ~100 KiB
FORM_FIELDS = ("model", "style", "primer")  # the page's inputs that are not numbers


@dataclass(frozen=True)
class WebField:
    """One number input of the page: an option with the page's bounds and default."""

    name: str  # the form field and the input's id ("length" for max_tokens)
    option: str  # the GenerateOptions field it fills
    integer: bool
    lo: float
    hi: float
    default: Any  # None: the input starts empty (the seed: a random one is drawn)
    none_at: float | None  # this value means None for the option (primer bars: 0 = all)
    samplers: frozenset[str]
    labels: dict[str, str]  # sampler -> label shown beside the input
    help: str
    placeholder: str

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
        )


# form field -> its input, in GenerateOptions order; the page builds its form from these.
FIELDS: dict[str, WebField] = {
    f.name: f for f in (WebField.of(i, i.spec.web) for i in option_fields() if i.spec.web)
}


@dataclass(frozen=True)
class GenerationRequest:
    """One validated request; ``run`` is ``None`` for the shipped default model."""

    model_id: str
    run: Path | None
    kind: str  # the model's declared sampler: "tokens", "notes" or "diffusion"
    options: GenerateOptions  # what ``midiforge.generate`` receives (the primer's path aside)
    primer: bytes | None = None  # the uploaded primer MIDI, already checked


def fields_json() -> list[dict[str, Any]]:
    """The page's number inputs: bounds, default, label per sampler (the server checks again)."""
    return [
        {
            "name": f.name,
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
    if raw is None or str(raw).strip() == "":
        return None if f.default is None else (int if f.integer else float)(f.default)
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise MidiforgeError(f"{name}: {raw!r} is not a number; use {lo}..{hi}") from None
    if f.integer and not value.is_integer():
        raise MidiforgeError(f"{name}: {raw!r} is not a whole number; use {lo}..{hi}")
    if not lo <= value <= hi:
        raise MidiforgeError(f"{name}: {raw} is out of range; use {lo}..{hi}")
    return int(value) if f.integer else value


def check_primer(data: bytes | None, filename: str = "") -> bytes | None:
    """The uploaded primer if it is a readable MIDI file within the size limit, else an error."""
    if not data:
        return None
    name = filename or "the upload"
    if len(data) > MAX_PRIMER_BYTES:
        raise MidiforgeError(
            f"primer: {name} is {len(data)} bytes; the limit is {MAX_PRIMER_BYTES} bytes "
            "(upload a shorter MIDI file)"
        )
    if not data.startswith(MIDI_MAGIC):
        raise MidiforgeError(f"primer: {name} is not a MIDI file (.mid); upload a MIDI file")
    import symusic

    try:
        score = symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises RuntimeError/ValueError for broken files
        raise MidiforgeError(f"primer: {name} is not a readable MIDI file ({exc})") from None
    if score.note_num() == 0:
        raise MidiforgeError(f"primer: {name} holds no notes; upload a MIDI file with notes")
    return data


def _chosen_model(form: dict[str, Any], models: dict[str, RunInfo]) -> tuple[str, RunInfo]:
    """The listed model the form names, or an error that names the field and the choices."""
    model_id = str(form.get("model") or "").strip()
    offered = ", ".join(models) or "none (train one first)"
    if not model_id:
        raise MidiforgeError(f"model: missing; pick one of the listed models: {offered}")
    if model_id not in models:
        raise MidiforgeError(f"model: {model_id!r} is not one of the listed models: {offered}")
    info = models[model_id]
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
            raise MidiforgeError(f"{name}: not a field of the form; accepted: {accepted}")
        if FIELDS[name].option not in used and str(raw).strip():
            readers = " and ".join(sorted(FIELDS[name].samplers))
            raise MidiforgeError(
                f"{name}: {info.id!r} is a {info.sampler} model, which does not use it (only "
                f"{readers} models do); leave it empty"
            )


def parse_request(
    form: dict[str, Any], models: dict[str, RunInfo], primer: tuple[bytes, str] | None = None
) -> GenerationRequest:
    """Check a submitted form against the listed ``models`` and the ranges in :data:`FIELDS`.

    Parameters
    ----------
    form
        Field name -> submitted string (``model``, ``style``, and the names in :data:`FIELDS`);
        empty strings take the page's defaults; an empty seed draws one (reported back).
    models
        The models the page offered, by id (from :func:`midiforge.web.catalog.find_runs`, plus
        the shipped default and any ``--run``); anything else is refused.
    primer
        ``(bytes, filename)`` of an uploaded primer MIDI, if any.
    """
    model_id, info = _chosen_model(form, models)
    used = set(fields_by_sampler()[info.sampler])
    _check_names(form, info, used)
    style = str(form.get("style") or "").strip() or None
    if style is not None and style not in info.labels:
        accepted = ", ".join(info.labels) or "none (this model has no style labels)"
        raise MidiforgeError(f"style: {style!r} is not a label of {model_id!r}; use: {accepted}")
    values = {}
    for f in FIELDS.values():
        if f.option in used:
            value = parse_number(f.name, form.get(f.name))
            values[f.option] = None if value is not None and value == f.none_at else value
    if "seed" in used and values.get("seed") is None:  # the page reports every job's seed
        values["seed"] = secrets.randbelow(WEB_MAX_SEED + 1)
    data, filename = primer if primer else (None, "")
    checked = check_primer(data, filename)
    if checked is not None and "primer" not in used:
        raise MidiforgeError(
            f"primer: {model_id!r} is a {info.sampler} model, which does not continue a primer; "
            "remove the upload"
        )
    return GenerationRequest(
        model_id=model_id,
        run=None if model_id == DEFAULT_ID else info.path,
        kind=info.sampler,
        options=GenerateOptions(style=style, **values),
        primer=checked,
    )
