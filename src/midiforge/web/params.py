"""What a generation request from the page may ask for, checked before it reaches the queue.

Every field has a range; a value outside it, a model outside the runs folder, a style the model
was not trained with, or a primer that is too large or not a MIDI file is refused with a
:class:`MidiforgeError` whose message names the field, the value and what is accepted. The
server turns it into ``400 {"error": message}`` and the page shows the message.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from midiforge.errors import MidiforgeError
from midiforge.web.catalog import DEFAULT_ID, RunInfo

MIDI_MAGIC = b"MThd"  # every Standard MIDI File starts with this chunk id
MAX_PRIMER_BYTES = 512 * 1024  # 512 KiB: a long piano piece is ~100 KiB
MAX_SEED = 2**31 - 1

# field -> (type, minimum, maximum, default); the page reads these to build its form.
FIELDS: dict[str, tuple[type, float, float, float]] = {
    "n": (int, 1, 8, 1),  # pieces per request
    "length": (int, 16, 4096, 256),  # tokens (token models) or notes (diffusion models)
    "temperature": (float, 0.05, 3.0, 1.0),  # softmax temperature
    "top_p": (float, 0.05, 1.0, 0.95),  # nucleus mass kept; 1 = off
    "top_k": (int, 0, 1024, 0),  # most likely tokens kept; 0 = off
    "steps": (int, 1, 1000, 50),  # diffusion denoising steps
    "guidance": (float, 0.0, 20.0, 2.0),  # classifier-free guidance scale
    "primer_bars": (int, 0, 256, 8),  # bars of the primer continued; 0 = the whole primer
}


@dataclass(frozen=True)
class GenerationRequest:
    """One validated request; ``run`` is ``None`` for the shipped default model."""

    model_id: str
    run: Path | None
    kind: str  # the model's declared sampler: "tokens", "notes" or "diffusion"
    style: str | None
    n: int
    length: int
    temperature: float
    top_p: float
    top_k: int
    steps: int
    guidance: float
    primer_bars: int
    seed: int
    primer: bytes | None = None  # the uploaded primer MIDI, already checked


def limits_json() -> dict[str, dict[str, Any]]:
    """The ranges and defaults, for the page's form (the server checks them again)."""
    return {
        name: {"min": lo, "max": hi, "default": default, "integer": kind is int}
        for name, (kind, lo, hi, default) in FIELDS.items()
    } | {"seed": {"min": 0, "max": MAX_SEED, "default": None, "integer": True}}


def parse_number(name: str, raw: Any) -> int | float:
    """``raw`` (a form string, or empty for the default) as the field's type, range checked."""
    kind, lo, hi, default = FIELDS[name]
    if raw is None or str(raw).strip() == "":
        return kind(default)
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise MidiforgeError(f"{name}: {raw!r} is not a number; use {lo}..{hi}") from None
    if kind is int and not value.is_integer():
        raise MidiforgeError(f"{name}: {raw!r} is not a whole number; use {lo}..{hi}")
    if not lo <= value <= hi:
        raise MidiforgeError(f"{name}: {raw} is out of range; use {lo}..{hi}")
    return kind(value)


def parse_seed(raw: Any) -> int:
    """A seed in 0..2³¹-1; empty picks a random one (reported back with the result)."""
    if raw is None or str(raw).strip() == "":
        return secrets.randbelow(MAX_SEED)
    text = str(raw).strip()
    if not text.isdigit() or int(text) > MAX_SEED:
        raise MidiforgeError(f"seed: {raw!r} is not accepted; use a whole number 0..{MAX_SEED}")
    return int(text)


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


def parse_request(
    form: dict[str, Any], models: dict[str, RunInfo], primer: tuple[bytes, str] | None = None
) -> GenerationRequest:
    """Check a submitted form against the listed ``models`` and the ranges in :data:`FIELDS`.

    Parameters
    ----------
    form
        Field name -> submitted string (``model``, ``style``, and the names in :data:`FIELDS`
        and ``seed``); empty strings take the defaults.
    models
        The models the page offered, by id (from :func:`midiforge.web.catalog.find_runs`, plus
        the shipped default and any ``--run``); anything else is refused.
    primer
        ``(bytes, filename)`` of an uploaded primer MIDI, if any.
    """
    model_id = str(form.get("model") or "").strip()
    if model_id not in models:
        offered = ", ".join(models) or "none (train one first)"
        raise MidiforgeError(f"model: {model_id!r} is not one of the listed models: {offered}")
    info = models[model_id]
    if not info.has_weights:
        raise MidiforgeError(
            f"model: {model_id!r} has no model.safetensors yet; let its training save one"
        )
    style = str(form.get("style") or "").strip() or None
    if style is not None and style not in info.labels:
        accepted = ", ".join(info.labels) or "none (this model has no style labels)"
        raise MidiforgeError(f"style: {style!r} is not a label of {model_id!r}; use: {accepted}")
    values = {name: parse_number(name, form.get(name)) for name in FIELDS}
    data, filename = primer if primer else (None, "")
    return GenerationRequest(
        model_id=model_id,
        run=None if model_id == DEFAULT_ID else info.path,
        kind=info.sampler,
        style=style,
        seed=parse_seed(form.get("seed")),
        primer=check_primer(data, filename),
        **values,
    )
