"""The options and the result of ``prepare``, kept apart from the work itself.

The command line needs the defaults to print its help; importing them from here costs nothing,
while :mod:`midiforge.data.prepare` pulls in MidiTok and torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from midiforge.errors import MidiforgeError, choice_error
from midiforge.schema import CONTROL_NAMES

GM_PROGRAMS = range(128)  # General MIDI program numbers 0..127
INSTRUMENT_GROUPS = ("programs", "families")  # keep each GM program, or one per GM family


@dataclass
class PrepareOptions:
    """Every option of ``prepare`` (and of ``midiforge prepare``); stored in the manifest."""

    tokenizer: str = "remi"  # MidiTok tokenization: remi, tsd, midilike, structured
    bpe_vocab: int | None = None  # train BPE to this vocabulary size on the train split
    tracks: Literal["all", "longest", "merge"] = "all"  # all → Program tokens in one stream
    programs: list[int] | None = None  # keep only these GM programs (None: every pitched one)
    drums: bool = True  # keep drum tracks (program -1); merge and longest never use them
    instrument_groups: Literal["programs", "families"] = "programs"  # families: 1st of GM family
    max_note_beats: float | None = 16.0  # drop notes longer than this (None: keep all)
    max_gap_beats: float | None = 16.0  # shorten silences longer than this, by whole bars
    min_tokens: int = 256  # skip files with fewer tokens (the trainer's default window)
    min_notes: int = 32  # skip files with fewer notes (shorter note windows are padded)
    dedup: bool = True  # skip files whose notes duplicate an earlier file's
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)  # train/valid/test by content hash
    split_by: str | None = None  # CSV/TSV of path,split; unlisted files use the hash rule
    labels_from: str | None = None  # "folder" (first folder under SRC) or a path,label CSV
    bos_eos: bool = True  # wrap each file's tokens in BOS ... EOS
    # learned per-bar control tokens after each Bar/TimeSig (data/controls.py), with dropout;
    # any of chords, density, polyphony (None: none, the tokenizer as before)
    controls: list[str] | None = None
    fim: bool = False  # add the fill-in-the-middle markers (data/fim.py) for train.fim
    jobs: int | None = None  # worker processes (None: all cores)
    quiet: bool = False  # no progress bar
    overwrite: bool = False  # replace an existing OUT

    def check(self) -> None:
        """Refuse values that would silently empty the dataset or mean nothing.

        A negative ``max_note_beats`` would drop every note and ``programs=[999]`` every track:
        both once gave an empty dataset and exit status 0.
        """
        for name in ("max_note_beats", "max_gap_beats"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise MidiforgeError(
                    f"{name}: {value!r} is not accepted; give a positive number of beats, or "
                    "none to keep everything"
                )
        if self.programs is not None:
            wrong = [p for p in self.programs if p not in GM_PROGRAMS]
            if wrong or not self.programs:
                raise MidiforgeError(
                    f"programs: {wrong or self.programs!r} is not accepted; give General MIDI "
                    "program numbers from 0 to 127 (e.g. 0,1,2 for pianos), or leave it out "
                    "to keep every non-drum track"
                )
        if self.instrument_groups not in INSTRUMENT_GROUPS:
            raise choice_error("instrument_groups", self.instrument_groups, INSTRUMENT_GROUPS)
        for name in ("min_tokens", "min_notes"):
            if getattr(self, name) < 0:
                value = getattr(self, name)
                raise MidiforgeError(f"{name}: {value} is not accepted; give 0 or more")
        self._check_controls()

    def _check_controls(self) -> None:
        """Controls are REMI tokens after each bar's Bar/TimeSig, which BPE would merge away."""
        for name in self.controls or ():
            if name not in CONTROL_NAMES:
                raise choice_error("controls", name, CONTROL_NAMES)
        if self.controls and self.tokenizer.lower() != "remi":
            raise MidiforgeError(
                f"controls: {','.join(self.controls)} needs tokenizer remi (the controls follow "
                f"each bar's Bar and TimeSig tokens, as the sampler reads them), not "
                f"{self.tokenizer!r}"
            )
        if self.fim and (self.tokenizer.lower() != "remi" or self.bpe_vocab is not None):
            raise MidiforgeError(
                "fim: the fill-in-the-middle markers split a piece at its Bar tokens, which "
                f"needs tokenizer remi without bpe_vocab (got {self.tokenizer!r}, "
                f"bpe_vocab {self.bpe_vocab})"
            )
        if self.controls and self.bpe_vocab is not None:
            raise MidiforgeError(
                f"controls: {','.join(self.controls)} cannot be used with bpe_vocab "
                f"{self.bpe_vocab} (BPE would merge the control tokens into others the sampler "
                "cannot force); drop one of them"
            )


@dataclass
class PrepareResult:
    """What ``prepare`` did; the CLI prints it as a table."""

    path: Path  # the dataset dir
    kept: int  # files kept
    skipped: dict[str, int]  # reason → files
    splits: dict[str, dict[str, int]]  # split → {"files", "tokens", "notes"}
    seconds: float  # wall time
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)
