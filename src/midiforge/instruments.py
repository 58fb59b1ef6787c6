"""General MIDI instruments: names, families, and what a musician's request means.

Every stage that deals in instruments speaks in GM program numbers, with
:data:`DRUMS` (``-1``, MidiTok's convention) for a drum track on channel 10. This module turns
them into names (track names, legends, model cards) and turns a musician's words
(``"piano,bass,drums"``, ``"violin"``, ``"33"``) into programs, in two steps:

1. :func:`parse_instruments` checks the words against the GM table alone, so a typo fails
   before any model is loaded (with the nearest names suggested);
2. :func:`resolve_instruments` picks, for each word, a program the model actually learned,
   because a request like ``"bass"`` names a family of eight programs and the model may know
   only one of them (or a Contrabass, whose name ends in "bass").

The GM table is the public standard (General MIDI Level 1 sound set); it lives here rather
than in MidiTok so that ``--help`` and option checks do not import the tokenizer library.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

from midiforge.errors import MidiforgeError

DRUMS = -1  # the program number of a drum track (MidiTok's convention); channel 10 in MIDI
DRUM_NAMES = ("drums", "drum", "drum kit", "percussion", "kit")
GM_MAX = 127

# General MIDI Level 1 program names, program 0 first
GM_NAMES: tuple[str, ...] = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone",
    "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar Harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2",
    "Choir Aahs", "Voice Oohs", "Synth Voice", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax",
    "Oboe", "English Horn", "Bassoon", "Clarinet",
    "Piccolo", "Flute", "Recorder", "Pan Flute",
    "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)",
    "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto",
    "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet",
    "Telephone Ring", "Helicopter", "Applause", "Gunshot",
)  # fmt: skip

# the sixteen GM families of eight programs each, in program order
GM_FAMILIES: tuple[str, ...] = (
    "Piano", "Chromatic Percussion", "Organ", "Guitar", "Bass", "Strings", "Ensemble", "Brass",
    "Reed", "Pipe", "Synth Lead", "Synth Pad", "Synth Effects", "Ethnic", "Percussive",
    "Sound Effects",
)  # fmt: skip
FAMILY_SIZE = 8


def _check_program(program: int) -> int:
    program = int(program)
    if program != DRUMS and not 0 <= program <= GM_MAX:
        raise MidiforgeError(
            f"program {program} is not a General MIDI program; give 0..127, or -1 for drums"
        )
    return program


def instrument_name(program: int) -> str:
    """``0`` → ``"Acoustic Grand Piano"``, ``-1`` → ``"Drums"``: a track's name."""
    program = _check_program(program)
    return "Drums" if program == DRUMS else GM_NAMES[program]


def family_of(program: int) -> str:
    """The GM family of a program: ``33`` → ``"Bass"``, ``-1`` → ``"Drums"``."""
    program = _check_program(program)
    return "Drums" if program == DRUMS else GM_FAMILIES[program // FAMILY_SIZE]


def family_program(program: int) -> int:
    """The first program of a program's family (``33`` → ``32``); drums stay drums.

    Grouping by family keeps a vocabulary of Program tokens small on band MIDI, where every
    song picks its own of eight guitars.
    """
    program = _check_program(program)
    return DRUMS if program == DRUMS else program - program % FAMILY_SIZE


def _key(word: str) -> str:
    return re.sub(r"\s+", " ", word.strip().lower())


def _words(name: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", name.lower())


def candidates(word: str) -> list[int]:
    """Every program a request could mean, best first (no model involved).

    A GM number or an exact GM name is itself; a drum word is :data:`DRUMS`; a family name
    (``"bass"``, ``"strings"``) is its eight programs, then every other program one of whose
    name's words equals or ends with the request (``"bass"`` → Contrabass, not Bassoon).
    """
    key = _key(word)
    if not key:
        return []
    if re.fullmatch(r"-?\d+", key):
        value = int(key)
        return [value] if value == DRUMS or 0 <= value <= GM_MAX else []
    if key in DRUM_NAMES:
        return [DRUMS]
    exact = [p for p, name in enumerate(GM_NAMES) if name.lower() == key]
    if exact:
        return exact
    family = [
        p for p in range(GM_MAX + 1) if GM_FAMILIES[p // FAMILY_SIZE].lower() in (key, key + "s")
    ]
    tail = key.split()[-1]
    by_word = [
        p
        for p, name in enumerate(GM_NAMES)
        if p not in family
        and (key in name.lower() if " " in key else any(w.endswith(tail) for w in _words(name)))
    ]
    return family + by_word


def _known_names() -> list[str]:
    return [*DRUM_NAMES[:1], *(f.lower() for f in GM_FAMILIES), *(n.lower() for n in GM_NAMES)]


def parse_instruments(text: str | Iterable[str | int]) -> tuple[str, ...]:
    """Split and check a request (``"piano, bass, drums"`` or a list) against the GM table.

    Returns the words, normalised (lower case, single spaces). A word that names nothing is an
    error that suggests the nearest names; the model decides later which programs it can play.
    """
    parts = text.split(",") if isinstance(text, str) else [str(t) for t in text]
    words = tuple(_key(p) for p in parts if _key(p))
    if not words:
        raise MidiforgeError(
            "instruments: empty request; give names or GM numbers separated by commas, "
            "e.g. piano,bass,drums or 0,33,-1"
        )
    for word in words:
        if not candidates(word):
            near = difflib.get_close_matches(word, _known_names(), n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(near)}?)" if near else ""
            raise MidiforgeError(
                f"instruments: {word!r} is not a General MIDI instrument{hint}; give a GM name "
                "(violin), a family (piano, bass, strings, guitar, brass, reed, organ, ...), "
                "drums, or a program number 0..127 (-1 for drums)"
            )
    if len(set(words)) != len(words):
        raise MidiforgeError(f"instruments: {', '.join(words)} names an instrument twice")
    return words


def describe(programs: Iterable[int]) -> str:
    """``"Acoustic Grand Piano (0), Drums (-1)"``: the instruments a model knows, for errors."""
    return ", ".join(f"{instrument_name(p)} ({p})" for p in programs)


def resolve_instruments(words: Sequence[str], known: Sequence[int]) -> list[int]:
    """Each requested word as a program the model knows, in the request's order.

    ``known`` is the model's instruments (the programs its training data held). A word whose
    candidates include none of them is a one-line error that names what the model knows; two
    words that land on the same program are an error too (ask for ``strings`` once).
    """
    known_set = {int(p) for p in known}
    out: list[int] = []
    for word in parse_instruments(words):
        chosen = next((p for p in candidates(word) if p in known_set), None)
        if chosen is None:
            raise MidiforgeError(
                f"instruments: this model never learned {word!r}; it knows "
                f"{describe(sorted(known_set)) or 'no instruments'}"
            )
        if chosen in out:
            raise MidiforgeError(
                f"instruments: {word!r} and an earlier word both mean "
                f"{instrument_name(chosen)} ({chosen}) for this model; name it once"
            )
        out.append(chosen)
    return out
