"""One web job end to end: generate the pieces, then render each to a piano roll and audio.

This is the only place where the web page calls the pipeline, and it calls the same public
functions as the commands (``midiforge.api.generate`` and the ``midiforge.io.render`` helpers),
so the page can do nothing the command line cannot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from midiforge.errors import MidiforgeError
from midiforge.web.midi_uploads import STORED_AS
from midiforge.web.params import GenerationRequest

log = logging.getLogger(__name__)

MAX_SECONDS = 300.0  # audio and piano roll per piece on the page: 5 minutes (the MIDI is whole)


def generate_midi(request: GenerationRequest, job_dir: Path) -> list[tuple[Path, int]]:
    """Write ``request.options.n`` MIDI files into ``job_dir`` with ``midiforge.api.generate``.

    Each upload (a primer, a song to rewrite, a melody) is written into ``job_dir`` under its
    fixed name (:data:`~midiforge.web.midi_uploads.STORED_AS`) and its option set to that path.
    Returns each file with its note count (a short sample from a weak model may hold none).
    """
    from midiforge import api

    options = request.options
    for option, data in request.uploads.items():
        path = job_dir / STORED_AS[option]
        path.write_bytes(data)
        options = replace(options, **{option: path})
    model = request.shipped or None
    result = api.generate(request.run, out_dir=job_dir, options=options, model=model)
    return list(zip(result.paths, result.notes))


def render_piece(midi: Path, notes: int, *, soundfont: str | None = None) -> dict[str, Any]:
    """Piano-roll PNG and WAV beside ``midi``; a rendering problem is reported, not fatal."""
    from midiforge.io import render

    piece: dict[str, Any] = {"name": midi.stem, "midi": midi.name, "png": None, "wav": None}
    piece["notes"] = notes
    if notes == 0:  # nothing to draw or hear; say so instead of rendering silence
        piece["warning"] = "this piece has no notes; try a longer length or another seed"
        return piece
    problems = []
    png, wav = midi.with_suffix(".png"), midi.with_suffix(".wav")
    try:
        render.render_png(midi, png, max_seconds=MAX_SECONDS)
        piece["png"] = png.name
    except MidiforgeError as exc:
        problems.append(f"piano roll: {exc}")
    try:
        render.render_wav(midi, wav, soundfont=soundfont, max_seconds=MAX_SECONDS)
        piece["wav"] = wav.name
    except MidiforgeError as exc:
        problems.append(f"audio: {exc}")
    piece["warning"] = "; ".join(problems) or None
    return piece


def run_generation(
    request: GenerationRequest,
    job_dir: Path,
    *,
    soundfont: str | None = None,
    stage: Callable[[str], None] = lambda text: None,
) -> list[dict[str, Any]]:
    """Generate, then render every piece; returns one dict per piece with its file names.

    ``stage`` receives a line for people ("generating 2 pieces", "rendering piece 1 of 2") that
    the page shows beside its progress bar.
    """
    job_dir.mkdir(parents=True, exist_ok=True)
    n = request.options.n
    stage(f"generating {n} piece{'s' if n > 1 else ''} with {request.model_id}")
    written = generate_midi(request, job_dir)
    if not written:
        raise MidiforgeError("generate wrote no MIDI file; try a larger length")
    pieces = []
    for i, (midi, notes) in enumerate(written, start=1):
        if midi.parent.resolve() != job_dir.resolve():
            raise MidiforgeError(f"generate wrote {midi} outside the job folder {job_dir}")
        stage(f"rendering piece {i} of {len(written)}")
        pieces.append(render_piece(midi, notes, soundfont=soundfont))
    return pieces
