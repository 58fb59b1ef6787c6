"""Every option of ``generate``, declared once with what each front end needs to offer it.

:class:`GenerateOptions` is the one list. The Python API (``generate(run, out_dir=..., n=3)``),
the command line (``midiforge generate`` makes one flag per field), the web page (one input per
field that declares web limits) and the menu (one question per field that declares menu limits)
all read the fields' metadata, an :class:`OptionSpec`, instead of spelling the list out again.
Validation lives here too, so every front end refuses the same values with the same message.

Adding an option is adding a field here; the flag, its help and its checks follow. This module
imports neither torch nor the models, so ``midiforge generate --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from midiforge.chords import parse_progression
from midiforge.errors import MidiforgeError, choice_error
from midiforge.instruments import parse_instruments
from midiforge.pitches import MODES, parse_key, parse_range

# the values of ``MidiModel.sampler``: which routine of ``generate`` writes a run's music
SAMPLERS = ("tokens", "notes", "diffusion")
SAMPLER_TITLES = {
    "tokens": "token runs (next-token sampling: transformer, lstm, gru)",
    "notes": "note runs (multi-head note LSTM, lstm-multihead)",
    "diffusion": "diffusion runs",
}
EVERY = frozenset(SAMPLERS)
AUTOREGRESSIVE = frozenset({"tokens", "notes"})  # they continue a primer, note by note
TOKENS, NOTES, DIFFUSION = (frozenset({s}) for s in SAMPLERS)
# the transformer's key/value cache while decoding: "auto" = fp16 where the CPU kernel reads it
# (half the bytes per cached position), else the model's dtype; "float32" = exact
KV_CACHE_CHOICES = ("auto", "float32", "float16")
MAX_SEED = 2**63 - 1  # a signed 64-bit integer: what torch.Generator.manual_seed keeps
WEB_MAX_SEED = 2**31 - 1  # the page's seeds stay exact in JavaScript numbers
# DDIM steps per diffusion window by default: DDPM's 1,000 forward passes per window take
# minutes on a CPU; 50 DDIM steps (Song et al. 2021) sample the same model in seconds
DIFFUSION_STEPS = 50
KEY_GUIDANCE = 4.0  # a key-conditioned run's notes then sit in their scale as real music's do

TEMPO_BPM = 120.0  # the tempo every sampler writes (MidiTok's default, score_from_notes')


class _OwnDefault:
    """The marker of an :class:`Ask` that keeps the option's own default."""

    def __repr__(self) -> str:
        return "OWN_DEFAULT"


OWN_DEFAULT: Any = _OwnDefault()  # an Ask without a default of its own uses the option's


@dataclass(frozen=True)
class Ask:
    """How an interactive front end (the web page or the menu) offers an option.

    Bounds left at None are the option's own; they must lie inside it. ``default`` is what
    the front end starts from when that differs from the API's (the page's default is one
    short piece, the API's four long ones).
    """

    lo: float | None = None
    hi: float | None = None
    default: Any = OWN_DEFAULT  # or the option's own
    none_at: float | None = None  # this value stands for None (page: primer bars 0 = all)
    label: str = ""  # overrides the option's label, e.g. "Primer bars (0 = all)"
    name: str = ""  # the page's form field, when not the option's name ("length")
    placeholder: str = ""  # the page's hint in an empty input ("random")


@dataclass(frozen=True)
class OptionSpec:
    """What the front ends need to know about one option (a field's ``metadata["spec"]``)."""

    help: str  # one line for --help and the page's tooltip
    samplers: frozenset[str] = EVERY  # the samplers that read it; others ignore it
    label: str = ""  # short name for forms and questions; "{unit}" is filled per sampler
    unit: str = ""  # what the number counts: "tokens", "beats", ...
    units: Mapping[str, str] = field(default_factory=dict, compare=False)  # unit per sampler
    lo: float | None = None  # smallest accepted value (None: no bound)
    hi: float | None = None  # largest accepted value (None: no bound)
    lo_open: bool = False  # lo itself is refused (top_p > 0)
    choices: tuple[str, ...] = ()  # the accepted strings, when there is a fixed list
    choices_from: str = ""  # "labels": the choices are the run's style labels
    note: str = ""  # what special values mean, added to help and errors: "0 = greedy"
    flags: tuple[str, ...] = ()  # command-line flags, when not --the-field-name
    metavar: str | None = None
    web: Ask | None = None  # None: not on the page
    menu: Ask | None = None  # None: not asked by the menu
    # a string option's own reader: returns the value normalised, raises MidiforgeError naming
    # what it accepts (``instruments``: each word must be a GM instrument); a number option
    # with one also reads text (``bars``: "8", or the range "5-8" for ``infill``)
    parser: Callable[[str], Any] | None = field(default=None, compare=False)

    def unit_for(self, sampler: str) -> str:
        return self.units.get(sampler, self.unit)

    def label_for(self, sampler: str) -> str:
        return self.label.format(unit=self.unit_for(sampler))


def _instrument_list(text: str) -> str:
    """``" Piano, BASS"`` → ``"piano,bass"``, each word checked against the GM table."""
    return ",".join(parse_instruments(text))


def _density_list(text: str) -> str:
    """``"4, 8 16"`` → ``"4 8 16"``, each a whole number of notes >= 0 (data.controls)."""
    from midiforge.data.controls import parse_density  # MidiTok and symusic: on use only

    return parse_density(text)


def _polyphony_list(text: str) -> str:
    """``"1 1.5, 2"`` → ``"1 1.5 2"``, each notes per onset >= 1 (data.controls)."""
    from midiforge.data.controls import parse_polyphony

    return parse_polyphony(text)


def parse_bars(text: str) -> int | str:
    """``"8"`` → ``8`` (a length); ``" 5 - 8 "`` → ``"5-8"`` (bars 5 to 8, for ``infill``)."""
    found = re.fullmatch(r"\s*(\d{1,6})\s*(?:-\s*(\d{1,6})\s*)?", text)
    first = int(found.group(1)) if found else 0
    last = int(found.group(2)) if found and found.group(2) else None
    if not found or first < 1 or (last is not None and last < first):
        raise MidiforgeError(
            f"bars: {text!r} is not accepted; use N (the length in bars, N >= 1) or, with "
            "--infill, A-B (the bars to regenerate, 1-based and inclusive, A <= B: 5-8)"
        )
    return first if last is None else f"{first}-{last}"


def spec(**values: Any) -> dict[str, OptionSpec]:
    """A field's metadata: ``{"spec": OptionSpec(**values)}``."""
    return {"spec": OptionSpec(**values)}


@dataclass(frozen=True, kw_only=True)
class GenerateOptions:
    """Every option of :func:`midiforge.generate` (and of ``midiforge generate``).

    Frozen and keyword-only: build one with the values that differ from the defaults, derive
    variants with :func:`dataclasses.replace` (checked again). An invalid value raises a
    :class:`MidiforgeError` that names the field, the value and what is accepted. Each field's
    ``metadata["spec"]`` (:class:`OptionSpec`) says which samplers use it.
    """

    # one option per paragraph reads better than one argument per line
    # fmt: off
    n: int = field(default=4, metadata=spec(
        help="number of pieces", unit="pieces", lo=1, flags=("-n", "--n"),
        label="Number of pieces", web=Ask(hi=8, default=1), menu=Ask(hi=100, default=1)))
    max_tokens: int = field(default=1024, metadata=spec(
        help="new tokens per sample; notes for note runs, which then end on the last bar line "
        "those notes reach", samplers=AUTOREGRESSIVE, lo=1,
        label="Length in {unit}", unit="tokens", units={"notes": "notes"}, metavar="N",
        web=Ask(lo=16, hi=4096, default=256, name="length"), menu=Ask(hi=100_000, default=512)))
    style: str | None = field(default=None, metadata=spec(
        help="a label of the run's dataset (conditioned models)", label="Style",
        metavar="STYLE", choices_from="labels", menu=Ask()))
    primer: str | Path | None = field(default=None, metadata=spec(
        help="MIDI file every sample continues (diffusion: its last notes seed the first "
        "window)", metavar="FILE"))
    primer_bars: int | None = field(default=None, metadata=spec(
        help="use only the primer's first K bars", lo=1, metavar="K",
        label="Primer bars", unit="bars", note="None = the whole primer",
        web=Ask(lo=0, hi=256, default=8, none_at=0, label="Primer bars (0 = all)")))
    temperature: float = field(default=1.0, metadata=spec(
        help="softmax temperature (note runs: of the pitch head)", samplers=AUTOREGRESSIVE,
        lo=0.0, note="0 = greedy", label="Temperature",
        web=Ask(lo=0.05, hi=3.0), menu=Ask(lo=0.01, hi=5.0)))
    top_k: int = field(default=0, metadata=spec(
        help="keep the k likeliest", samplers=AUTOREGRESSIVE, lo=0, note="0 = off",
        label="Top-k", web=Ask(hi=1024)))
    top_p: float = field(default=1.0, metadata=spec(
        help="nucleus: keep the likeliest up to this mass", samplers=AUTOREGRESSIVE,
        lo=0.0, lo_open=True, hi=1.0, note="1 = off",
        label="Top-p", web=Ask(lo=0.05, default=0.95)))
    instruments: str | None = field(default=None, metadata=spec(
        help="instruments to write, e.g. piano,bass,drums (GM names, families or numbers; "
        "the model's training data decides which it can play)", samplers=EVERY,
        metavar="LIST", label="Instruments", parser=_instrument_list,
        note="None = what the model chooses", choices_from="instruments",
        web=Ask(placeholder="the model's choice"), menu=Ask()))
    grammar_mask: bool = field(default=True, metadata=spec(
        help="forbid tokens the tokenization's grammar does not allow (BPE runs: always off; "
        "errors are counted either way)", samplers=TOKENS))
    window: int | None = field(default=None, metadata=spec(
        help="tokens of context kept past the training length (default: the model's)",
        samplers=TOKENS,
        unit="tokens", lo=2, metavar="N"))
    kv_cache: str = field(default="auto", metadata=spec(
        help="transformer key/value cache dtype: auto = fp16 where the CPU kernel reads it "
        "(faster, logits within fp16 rounding), float32 = exact", samplers=TOKENS,
        choices=KV_CACHE_CHOICES))
    key: str | None = field(default=None, metadata=spec(
        help="keep every pitched note on this key's scale, e.g. 'D minor', 'F# dorian' (modes: "
        + ", ".join(MODES) + ")", metavar="KEY", label="Key", parser=parse_key,
        note="None = any pitch", web=Ask(placeholder="any (e.g. D minor)"),
        menu=Ask(placeholder="D minor")))
    chromatic: float = field(default=0.0, metadata=spec(
        help="with --key: the share of notes that may leave the scale, each a semitone from "
        "the note before it and at most a beat long (a passing or neighbour tone)", lo=0.0,
        hi=1.0, note="0 = strictly in key", label="Chromatic share"))
    style_keys: bool = field(default=True, metadata=spec(
        help="when nothing sets the key (no --key, --primer, --chords, --infill or --harmonize),"
        " move each piece by at most a tritone into a key drawn from those its style's training "
        "pieces are in (a model trained on every transposition plays every key alike; "
        "--no-style-keys keeps the key it played)"))
    style_parts: bool = field(default=True, metadata=spec(
        help="with a --style, play each of the style's parts as its training pieces do: in its "
        "register (a note outside moves by octaves), and a part that plays one line (a "
        "chorale voice, a folk melody) one note at a time, held to its next note; a diffusion "
        "sample also keeps to as few classes outside its scale as the style's pieces use, and "
        "begins where in the bar they begin (--no-style-parts writes what the model sampled)"))
    key_memory: bool = field(default=True, metadata=spec(
        help="a sample longer than the model's window (a note run: the notes it was trained on "
        "at once) keeps to the key it has been in: once its beginning is out of the model's "
        "view, pitches off that scale are steered down (--no-key-memory lets the key wander)",
        samplers=AUTOREGRESSIVE))
    chords: str | None = field(default=None, metadata=spec(
        help="a chord per bar, e.g. 'Am F C G' or 'Am | F | C | G' (7ths, sus, dim, aug, slash "
        "chords; N = no chord), repeated when the piece is longer; a sampling-time steer toward "
        "each bar's chord tones, and for a token run prepared with --controls chords also its "
        "learned chord token, written after each bar line", metavar="CHORDS", label="Chords",
        parser=parse_progression, note="None = no chords",
        web=Ask(placeholder="none (e.g. Am F C G)"),
        menu=Ask(placeholder="Am F C G")))
    chord_steer: bool = field(default=True, metadata=spec(
        help="with --chords, steer pitches toward each bar's chord tones (--no-chord-steer: a "
        "run with learned chord tokens follows its forced tokens alone)", samplers=TOKENS))
    density: str | None = field(default=None, metadata=spec(
        help="pitched notes per bar, one number or one per bar ('4 8 16 8', repeated when the "
        "piece is longer), for a token run prepared with --controls density: its learned "
        "density token (0 | 1-2 | 3-4 | 5-8 | 9-16 | 17-32 | 33+) is written after each bar "
        "line", samplers=TOKENS, metavar="N", parser=_density_list,
        note="None = the model's choice", label="Notes per bar",
        web=Ask(placeholder="the model's choice (e.g. 8, or 4 8 16 8)"),
        menu=Ask(placeholder="8, or 4 8 16 8")))
    polyphony: str | None = field(default=None, metadata=spec(
        help="pitched notes per onset, one number >= 1 or one per bar ('1 2 2 3'), for a token "
        "run prepared with --controls polyphony: its learned polyphony token (1 | <=1.5 | "
        "<=2.5 | <=3.5 | more) is written after each bar line", samplers=TOKENS, metavar="N",
        parser=_polyphony_list, note="None = the model's choice", label="Notes per onset",
        web=Ask(placeholder="the model's choice (e.g. 1, or 1 2 2 3)"),
        menu=Ask(placeholder="1, or 1 2 2 3")))
    range: str | None = field(default=None, metadata=spec(
        help="lowest and highest pitch, e.g. C3-C6 or 48-84 (C4 = 60); per instrument: "
        "piano:C3-C6,bass:E1-G3", metavar="LOW-HIGH", label="Range", parser=parse_range,
        note="None = any pitch", web=Ask(placeholder="any (e.g. C3-C6)"),
        menu=Ask(placeholder="C3-C6")))
    max_polyphony: int | None = field(default=None, metadata=spec(
        help="most notes sounding at once (drums not counted)", lo=1, metavar="N",
        unit="notes", label="Max polyphony", note="None = no limit",
        web=Ask(lo=0, hi=16, default=0, none_at=0, label="Max polyphony (0 = none)"),
        menu=Ask(lo=0, hi=64, default=0, none_at=0, label="Max polyphony (0 = none)")))
    bars: int | str | None = field(default=None, metadata=spec(
        help="exact length in bars, primer included: ends at the bar line, no note cut; with "
        "--infill the bars to regenerate, A-B (1-based, inclusive)", lo=1, metavar="N|A-B",
        unit="bars", label="Bars", note="None = free length", parser=parse_bars,
        web=Ask(lo=0, hi=64, default=0, none_at=0, label="Bars (0 = free)"),
        menu=Ask(lo=0, hi=100_000, default=0, none_at=0, label="Bars (0 = free)")))
    infill: str | Path | None = field(default=None, metadata=spec(
        help="MIDI file whose bars --bars A-B are regenerated, every other note kept exactly "
        "(a token run prepared with --fim and trained with train.fim, as the shipped "
        "transformer is, reads the bars after the range too; other token runs and the LSTM "
        "read the bars before it; diffusion inpaints between the notes before and after it)",
        metavar="FILE"))
    harmonize: str | Path | None = field(default=None, metadata=spec(
        help="MIDI file of a melody to accompany (its pitched notes, every track): the melody "
        "is written exactly as read, with as many bars of accompaniment over the chords "
        "detected under it (--chords overrides), on the run's other instruments "
        "(--instruments overrides), below the melody's low notes (--range overrides)",
        metavar="FILE"))
    seconds: float | None = field(default=None, metadata=spec(
        help=f"length in seconds at {TEMPO_BPM:g} bpm (the tempo runs write): the whole bars "
        "that fit, at least one", lo=0.0, lo_open=True, metavar="S", unit="seconds",
        label="Seconds", note="None = free length"))
    noise: float = field(default=0.0, metadata=spec(
        help="Gaussian noise on the velocity head and on a median (regression) time head; "
        "a categorical time head draws its rhythm at --temperature", samplers=NOTES,
        unit="standard units", lo=0.0, label="Noise", web=Ask(hi=2.0), menu=Ask(hi=2.0)))
    steps: int | None = field(default=DIFFUSION_STEPS, metadata=spec(
        help="DDIM denoising steps per window; the trained number of steps with --eta 1 "
        "samples as DDPM does", samplers=DIFFUSION, note="None = DDPM over every trained step",
        lo=1, metavar="N", label="Denoising steps",
        web=Ask(hi=1000, default=50), menu=Ask(hi=10_000, default=50)))
    eta: float = field(default=0.0, metadata=spec(
        help="DDIM noise", samplers=DIFFUSION, lo=0.0, hi=1.0, note="0 = deterministic"))
    guidance: float = field(default=1.0, metadata=spec(
        help="classifier-free guidance scale for --style", samplers=DIFFUSION,
        lo=0.0, note="1 = none", label="Guidance",
        web=Ask(hi=20.0, default=2.0), menu=Ask(hi=50.0, default=2.0)))
    key_guidance: float = field(default=KEY_GUIDANCE, metadata=spec(
        help="classifier-free guidance scale for the key a key-conditioned diffusion run is "
        "told (--key's, the chords', the primer's, or one drawn per piece); other runs ignore "
        "it", samplers=DIFFUSION, lo=0.0, note="1 = the key as told, no more",
        label="Key guidance", web=Ask(hi=20.0, default=KEY_GUIDANCE),
        menu=Ask(hi=50.0, default=KEY_GUIDANCE)))
    number: int = field(default=1, metadata=spec(
        help="windows per piece, joined by inpainting", samplers=DIFFUSION, unit="windows",
        lo=1, metavar="K"))
    context: int | None = field(default=None, metadata=spec(
        help="notes each new window keeps (default: half a window)", samplers=DIFFUSION,
        unit="notes", lo=0, metavar="C"))
    resample: int = field(default=1, metadata=spec(
        help="RePaint resampling: repeat each denoising step of an inpainted window R times, "
        "re-noising one step in between (smoother seams, R times the work)",
        samplers=DIFFUSION, unit="rounds", lo=1, metavar="R", note="1 = off"))
    fixed_time: float | None = field(default=None, metadata=spec(
        help="put notes on a fixed grid of this many beats", samplers=DIFFUSION,
        unit="beats", lo=0.0, lo_open=True, metavar="BEATS"))
    trace: str | Path | None = field(default=None, metadata=spec(
        help="PNG of the first window being denoised", samplers=DIFFUSION, metavar="FILE"))
    seed: int | None = field(default=None, metadata=spec(
        help="makes the samples reproducible", lo=0, hi=MAX_SEED,
        note="None = a fresh random seed", label="Seed",
        web=Ask(hi=WEB_MAX_SEED, default=None, placeholder="random"),
        menu=Ask(hi=WEB_MAX_SEED, default=0)))
    device: str = field(default="auto", metadata=spec(
        help="auto, cpu, cuda or cuda:N", metavar="DEVICE"))
    wav: bool = field(default=False, metadata=spec(help="also render WAV with FluidSynth"))
    png: bool = field(default=False, metadata=spec(help="also draw a piano-roll PNG"))
    # fmt: on

    def __post_init__(self) -> None:
        for info in option_fields(type(self)):
            value = info.check(getattr(self, info.name))
            object.__setattr__(self, info.name, value)
        self._check_harmonize()
        self._check_infill()
        if self.bars is not None and self.seconds is not None:
            raise MidiforgeError(
                f"bars={self.bars} and seconds={self.seconds:g}: give one length, not both"
            )

    def _check_infill(self) -> None:
        """A bar range only with ``infill``, ``infill`` only with a bar range and no primer."""
        if isinstance(self.bars, str) and self.infill is None:
            raise MidiforgeError(
                f"bars: {self.bars!r} is a bar range, which needs --infill FILE (the song to "
                "rewrite); without it give the length N, a whole number >= 1"
            )
        if self.infill is None:
            return
        if not isinstance(self.bars, str):
            raise MidiforgeError(
                f"infill: {str(self.infill)!r} needs --bars A-B, the bars to regenerate "
                f"(1-based, inclusive: 5-8, or 5-5 for one bar), not bars={self.bars!r}"
            )
        if self.primer is not None:
            raise MidiforgeError(
                f"infill and primer: give one; --infill keeps the song's own bars before the "
                f"range as the primer (drop --primer {str(self.primer)!r})"
            )
        if self.seconds is not None:
            raise MidiforgeError(
                f"infill and seconds={self.seconds:g}: the bar range sets the length; drop "
                "--seconds"
            )

    def _check_harmonize(self) -> None:
        """A melody to harmonize sets the piece: no infill, primer or length beside it."""
        if self.harmonize is None:
            return
        clash = [(name, getattr(self, name)) for name in ("infill", "primer", "bars", "seconds")
                 if getattr(self, name) is not None]  # fmt: skip
        if clash:
            name, value = clash[0]
            raise MidiforgeError(
                f"harmonize and {name}={str(value)!r}: --harmonize FILE writes an accompaniment "
                "as long as the melody from scratch; it takes --chords, --instruments, --range, "
                f"--key, --style and the sampling options, not --{name}"
            )

    def bar_range(self) -> tuple[int, int] | None:
        """``bars="5-8"`` → ``(5, 8)``; None when ``bars`` is a length or unset."""
        if not isinstance(self.bars, str):
            return None
        first, last = self.bars.split("-")
        return int(first), int(last)


# --------------------------------------------------------------------------- reading the specs


@dataclass(frozen=True)
class OptionField:
    """One field of an options class with its spec: name, value type, default."""

    name: str
    kind: type  # int, float, bool, str or Path (accepts str too)
    optional: bool  # None is accepted
    default: Any
    spec: OptionSpec

    @property
    def flags(self) -> tuple[str, ...]:
        return self.spec.flags or ("--" + self.name.replace("_", "-"),)

    def offered(self, ask: Ask) -> tuple[Any, Any, Any]:
        """``(lo, hi, default)`` a front end offers with ``ask``: its own, else the option's."""
        lo = ask.lo if ask.lo is not None else self.spec.lo
        hi = ask.hi if ask.hi is not None else self.spec.hi
        return lo, hi, self.default if ask.default is OWN_DEFAULT else ask.default

    def accepted(self) -> str:
        """What this option accepts, in words (for help texts and error messages)."""
        s = self.spec
        if s.choices:
            text = "one of: " + ", ".join(s.choices)
        elif self.kind in (int, float):
            text = "a whole number" if self.kind is int else "a finite number"
            lo, hi = _number(s.lo), _number(s.hi)
            if s.lo is not None and s.hi is not None:
                text += f" in ({lo}, {hi}]" if s.lo_open else f" in {lo}..{hi}"
            elif s.lo is not None:
                text += f" > {lo}" if s.lo_open else f" >= {lo}"
            elif s.hi is not None:
                text += f" <= {hi}"
        else:
            text = {bool: "true or false", str: "a string", Path: "a file path"}[self.kind]
        notes = [s.note] if s.note else []
        if self.optional and "None" not in s.note:
            notes.append("or None")
        return text + (f" ({'; '.join(notes)})" if notes else "")

    def check(self, value: Any) -> Any:
        """``value`` if this field accepts it (ints as floats for float fields), else an error."""
        if value is None and self.optional:
            return None
        wrong = MidiforgeError(f"{self.name}: {value!r} is not accepted; use {self.accepted()}")
        if self.kind is bool:
            if not isinstance(value, bool):
                raise wrong
            return value
        if self.kind is int:
            if isinstance(value, str) and self.spec.parser is not None:
                return self.spec.parser(value)  # a number option that reads text too ("5-8")
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise wrong
            value = int(value)
        elif self.kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise wrong
            value = float(value)
            if not math.isfinite(value):
                raise wrong
        elif self.kind is Path:
            if not isinstance(value, (str, os.PathLike)):
                raise wrong
            return value
        elif not isinstance(value, str):
            raise wrong
        s = self.spec
        if s.choices and value not in s.choices:
            raise choice_error(self.name, value, s.choices)
        if s.parser is not None and isinstance(value, str):
            return s.parser(value)
        if isinstance(value, (int, float)):
            below = s.lo is not None and (value <= s.lo if s.lo_open else value < s.lo)
            if below or (s.hi is not None and value > s.hi):
                raise wrong
        return value


def _number(value: float | None) -> str:
    """``0.0`` → ``"0"``, ``0.05`` → ``"0.05"``; whole numbers stay exact."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _kind(hint: Any) -> tuple[type, bool]:
    """``int | None`` → ``(int, True)``; ``str | Path | None`` → ``(Path, True)``."""
    args = typing.get_args(hint) or (hint,)
    kinds = [a for a in args if a is not type(None)]
    return (Path if Path in kinds else kinds[0]), len(kinds) < len(args)


@cache
def option_fields(cls: type = GenerateOptions) -> tuple[OptionField, ...]:
    """The fields of ``cls`` (GenerateOptions or a subclass) with their specs, in order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("spec")
        if spec is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with field(metadata=spec(...))")
        kind, optional = _kind(hints[f.name])
        found.append(OptionField(f.name, kind, optional, f.default, spec))
    return tuple(found)


def fields_by_sampler(cls: type = GenerateOptions) -> dict[str, list[str]]:
    """Sampler name → the options it reads, in field order."""
    return {s: [f.name for f in option_fields(cls) if s in f.spec.samplers] for s in SAMPLERS}


def sampler_title(samplers: frozenset[str]) -> str:
    """A heading for the options of ``samplers``: "every run", "token runs (...)", ..."""
    if samplers == EVERY:
        return "every run"
    if samplers == AUTOREGRESSIVE:
        return "token and note runs (autoregressive)"
    return " and ".join(SAMPLER_TITLES[s] for s in SAMPLERS if s in samplers)


def with_fields(options: GenerateOptions | None, fields: Mapping[str, Any]) -> GenerateOptions:
    """``options`` (or the defaults) with ``fields`` replacing its values; unknown names refused."""
    if options is not None and not isinstance(options, GenerateOptions):
        raise MidiforgeError(
            f"options: {type(options).__name__} is not accepted; pass a GenerateOptions"
        )
    base = options if options is not None else GenerateOptions()
    known = [f.name for f in option_fields(type(base))]
    unknown = [name for name in fields if name not in known]
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise MidiforgeError(
            f"generate: unknown option {unknown[0]!r}{hint}; accepted: " + ", ".join(known)
        )
    return dataclasses.replace(base, **fields) if fields else base


def ignored_by(options: GenerateOptions, sampler: str) -> list[str]:
    """The options set away from their defaults that ``sampler`` does not read."""
    return [
        f"{f.name}={getattr(options, f.name)!r}"
        for f in option_fields(type(options))
        if sampler not in f.spec.samplers and getattr(options, f.name) != f.default
    ]
