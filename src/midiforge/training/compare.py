"""``midiforge compare``: train several model families on the same music under one budget, and
report how each does.

For every family in turn: train it through the one trainer (:func:`midiforge.training.run.train`)
into ``OUT/runs/<family>``, score its held-out likelihood per note, sample pieces into
``OUT/samples/<family>`` (:func:`midiforge.sampling.generate.generate`), measure them against the
held-out music and the training pieces; then write one report (:mod:`midiforge.metrics.
compare_report`). The scores are :mod:`midiforge.metrics.comparison`.

Every family reads the same DATASET dir, each the arrays its encoding needs (token models the
token ids, note models the note rows); a MIDI folder is prepared once into ``OUT/dataset`` with
``prepare``'s defaults. Every family trains from scratch (no shipped model is fine-tuned), with
the small sizes of ``DEFAULT_MODEL`` and the loop settings of ``DEFAULT_TRAIN``; ``--set
FAMILY.model.key=value`` changes one family, ``--set train.key=value`` all of them.

The held-out likelihood is scored on the ``test`` split (``valid`` chose each run's best
weights), or on ``valid`` when ``test`` is empty; the music is compared with the pieces of both
held-out splits, which no model trained on.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midiforge.errors import MidiforgeError, choice_error
from midiforge.metrics import comparison
from midiforge.metrics.compare_report import write_compare_report
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.listing import is_prepared_source
from midiforge.store.names import has_tokenizer, is_dataset
from midiforge.training import benchmark
from midiforge.training.compare_defaults import (
    DEFAULT_NOTES,
    DEFAULT_PIECES,
    DEFAULT_TIME,
    FAMILIES,
)
from midiforge.training.compare_family import Context, Family, run_family
from midiforge.training.settings import format_duration, parse_duration

UNTIMED_STEPS = 1_000_000  # train.steps under a time budget alone: the clock ends the run
DEFAULT_OUT = Path("compare")

# Small sizes that learn something in minutes on a laptop CPU (the token families are the
# benchmark's); override with --set FAMILY.model.key=value.
DEFAULT_MODEL: dict[str, dict[str, Any]] = {
    **benchmark.DEFAULT_MODEL,
    "lstm-multihead": {"d_pitch": 128, "d_hidden": 256, "n_layers": 2, "dropout": 0.2},
    "diffusion": {"length": 64, "channels": 64, "attention_layers": 2},
}
DEFAULT_TRAIN: dict[str, Any] = {
    "batch_size": 16,
    "seq_len": 256,  # tokens per window (token families)
    "window": 64,  # notes per window (note families; diffusion: its model.length)
    "lr": 1e-3,
    "warmup_steps": 50,
    "eval_every": 100,
    "eval_batches": 8,
    "patience": 5,
    "save_every": 500,
}

Progress = Callable[[str], None]


@dataclass
class CompareResult:
    """What :func:`compare` wrote and found; ``report`` is ``report.json``'s content."""

    out_dir: Path
    report: dict[str, Any]
    ranking: list[str]  # every family, best first (see ``report["ranking"]["by"]``)
    paths: list[Path] = field(default_factory=list)  # report.md, report.json, piano_rolls.png

    def summary(self) -> str:
        """Lines for the command line: the ranking, then where the report is."""
        lines = [f"ranking ({self.report['ranking']['by']}):"]
        for place, name in enumerate(self.ranking, 1):
            music = self.report["families"][name].get("music") or {}
            ratio = music.get("overlap_ratio")
            shown = "–" if ratio is None or not math.isfinite(ratio) else f"{ratio:.3f}"
            lines.append(f"  {place}. {name}  overlap/ceiling {shown}")
        lines += [f"report: {p}" for p in self.paths]
        return "\n".join(lines)


# --------------------------------------------------------------------------- arguments


def parse_models(models: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"transformer,lstm"`` or a list → the family names, checked, in the order given."""
    names = models.split(",") if isinstance(models, str) else list(models)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise MidiforgeError(f"--models: give one or more of {', '.join(FAMILIES)}")
    for name in names:
        if name not in FAMILIES:
            raise choice_error("--models", name, FAMILIES)
    if len(set(names)) != len(names):
        raise MidiforgeError(f"--models: {','.join(names)} names a family twice")
    return names


def family_overrides(overrides: list[str] | None, families: list[str]) -> dict[str, list[str]]:
    """``--set`` values per family: ``train.k=v`` for all, ``FAMILY.model.k=v`` for one.

    A bare ``model.k=v`` is accepted only when one family is compared: the model keys of the
    families differ (``d_model`` is the transformer's, ``d_hidden`` the recurrent ones').
    """
    out: dict[str, list[str]] = {f: [] for f in families}
    for item in overrides or []:
        key = item.split("=", 1)[0].strip()
        head, _, rest = key.partition(".")
        if "=" not in item or not rest:
            raise MidiforgeError(
                f"--set {item!r}: expected train.key=value or FAMILY.model.key=value "
                "(e.g. --set train.lr=1e-3 --set transformer.model.d_model=64)"
            )
        if head in FAMILIES:
            if head in out:
                out[head].append(item.strip()[len(head) + 1 :])
            continue  # a family not compared this time: its values are not used
        if head == "model" and len(families) > 1:
            raise MidiforgeError(
                f"--set {item!r}: model keys differ between families; prefix the family, "
                f"e.g. --set {families[0]}.{key}=..."
            )
        for values in out.values():
            values.append(item.strip())
    return out


def _budget(steps: int | None, time: float | str | None) -> tuple[int | None, float | None]:
    """(steps, seconds) per family; neither given: ``DEFAULT_TIME``."""
    seconds = parse_duration(time, "--time") if time is not None else None
    if steps is not None and steps < 1:
        raise MidiforgeError(f"--steps: {steps} is not accepted; give 1 or more")
    if steps is None and seconds is None:
        seconds = parse_duration(DEFAULT_TIME, "--time")
    return steps, seconds


def _describe_budget(steps: int | None, seconds: float | None) -> str:
    parts = ([f"{steps} steps"] if steps else []) + ([format_duration(seconds)] if seconds else [])
    either = ", whichever comes first" if len(parts) > 1 else ""
    return " or ".join(parts) + " per family" + either


# --------------------------------------------------------------------------- dataset


def _out_dir(out_dir: str | Path | None) -> Path:
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT / clock.strftime("%Y%m%d-%H%M%S")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MidiforgeError(f"-o {out}: the folder is not empty; choose a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _check_data(data: str | Path) -> Path:
    """``data`` as a path, refused (before anything is written) unless a dataset or MIDI folder."""
    is_prepared_source(data)
    return Path(data)


def _dataset(path: Path, out: Path, progress: Progress) -> PreparedDataset:
    """``path`` when it is a DATASET dir; a MIDI folder is prepared once into ``OUT/dataset``."""
    if is_dataset(path):
        return PreparedDataset(path)
    from midiforge.data.prepare import prepare

    target = out / "dataset"
    progress(f"preparing the MIDI folder {path} into {target} (prepare's defaults)")
    result = prepare(path, target)
    progress(f"prepared {result.kept} files: {result.splits}")
    return PreparedDataset(target)


def _split_count(data: PreparedDataset, split: str, kind: str) -> int:
    return int((data.manifest.get("splits", {}).get(split) or {}).get(kind, 0) or 0)


def missing_arrays(family: str, data: PreparedDataset) -> str | None:
    """Why ``data`` cannot train and sample ``family``, in one line; None when it can."""
    from midiforge.models import registry

    if registry.model_class(family).encoding == "tokens":
        if _split_count(data, "train", "tokens") == 0:
            return f"{family}: the dataset {data.path} has no token arrays in its train split"
        if not has_tokenizer(data.path):
            return (
                f"{family}: the dataset {data.path} has no tokenizer.json, so generated tokens "
                "cannot be written as MIDI"
            )
        return None
    if _split_count(data, "train", "notes") == 0:
        return f"{family}: the dataset {data.path} has no note arrays in its train split"
    return None


def _trainable(data: PreparedDataset, names: list[str], say: Progress) -> tuple[list, dict]:
    """(families to train, {family: why not} for the others, each said in one line)."""
    skipped = {f: why for f in names if (why := missing_arrays(f, data))}
    for line in skipped.values():
        say(f"skipping {line}")
    todo = [f for f in names if f not in skipped]
    if not todo:
        raise MidiforgeError(f"DATA {data.path}: no family of {', '.join(names)} can train on it")
    return todo, skipped


def _held_out(data: PreparedDataset) -> tuple[str, list[str]]:
    """(split scored for likelihood, splits whose pieces are the held-out music)."""
    music = [s for s in ("valid", "test") if _split_count(data, s, "notes") > 0]
    if not music:
        raise MidiforgeError(
            f"DATA {data.path}: its valid and test splits hold no notes, so there is no "
            "held-out music to compare with; prepare more files or give --split to prepare"
        )
    return ("test" if data.split_files("test") else "valid"), music


# --------------------------------------------------------------------------- the stage


def compare(
    data: str | Path,
    *,
    models: str | list[str] | tuple[str, ...] = FAMILIES,
    time: float | str | None = None,
    steps: int | None = None,
    out_dir: str | Path | None = None,
    overrides: list[str] | None = None,
    pieces: int = DEFAULT_PIECES,
    notes: int = DEFAULT_NOTES,
    device: str = "auto",
    seed: int = 0,
    progress: Progress | None = None,
) -> CompareResult:
    """Train each family on ``data`` under one budget, sample, score, and write one report.

    Parameters
    ----------
    data : a DATASET dir, or a folder of MIDI files (prepared once into ``OUT/dataset``).
    models : family names, a list or ``"transformer,lstm,..."`` (any of ``FAMILIES``).
    time, steps : the budget per family: a duration (``"3m"``, ``180``) and/or optimizer steps;
        the first reached ends a run. Neither: ``DEFAULT_TIME``.
    out_dir : the report folder (default ``compare/<time>``); must be new or empty.
    overrides : ``train.key=value`` (every family) or ``FAMILY.model.key=value`` /
        ``FAMILY.train.key=value`` (one family) on top of the defaults.
    pieces, notes : pieces sampled per family, and notes asked for per piece.
    device : ``auto``, ``cpu`` or ``cuda``, for training and sampling.
    seed : seeds every run (``train.seed``) and the sampling.
    progress : called with one line per stage (the command prints them); None: silent.
    """
    say = progress or (lambda line: None)
    names = parse_models(models)
    per_family = family_overrides(overrides, names)
    budget = _budget(steps, time)
    if pieces < 1 or notes < 1:
        raise MidiforgeError(f"--pieces {pieces} / --notes {notes}: give 1 or more of each")
    source = _check_data(data)
    out = _out_dir(out_dir)
    dataset = _dataset(source, out, say)
    split, music_splits = _held_out(dataset)
    todo, skipped = _trainable(dataset, names, say)
    say(f"comparing {', '.join(todo)} on {dataset.path}: {_describe_budget(*budget)}")
    ctx = Context.build(dataset, out, split, music_splits, budget, pieces, notes, device, seed)
    results: dict[str, Any] = {}
    rolls = {"held-out": ctx.reference[0].notes}
    train_values = {**DEFAULT_TRAIN, "seed": seed}
    if steps is None:  # the clock ends the run
        train_values["steps"] = UNTIMED_STEPS
    for i, family in enumerate(todo, 1):
        spec = Family(family, DEFAULT_MODEL[family], train_values, per_family[family])
        tag = f"[{i}/{len(todo)}]"
        results[family], rolls[family] = run_family(
            spec, ctx, lambda line, tag=tag: say(f"{tag} {line}")
        )
    report = ctx.report(data, results, skipped, _describe_budget(*budget))
    report.update(comparison.rank(results))
    say(f"writing the report into {out}")
    paths = write_compare_report(report, out, rolls)
    return CompareResult(out, report, report["ranking"]["order"], paths)
