"""One family of ``midiforge compare``: train it, score its likelihood, sample it, measure it.

:func:`run_family` does the four stages for one :class:`Family` against a :class:`Context`
(what every family shares: the dataset, the held-out music and its ceiling, the budget, the
sampling lengths), announcing each stage in one line. See :mod:`midiforge.training.compare`.
"""

from __future__ import annotations

import math
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.metrics import comparison
from midiforge.metrics.evaluate import load_dataset_split, load_midi_folder
from midiforge.metrics.music import Piece
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.names import METRICS_FILE
from midiforge.store.run_dir import load_run
from midiforge.training.logbook import Logbook, read_result
from midiforge.training.run import split_config, train

MAX_REFERENCE_PIECES = 300  # held-out pieces the music is compared with (evenly spaced)
DIFFUSION_SAMPLING_STEPS = 50  # DDIM steps per window (DDPM over every trained step is slow)
SCORING_DEVICE = "cpu"  # the likelihood routines read CPU tensors


@dataclass
class Family:
    """A family's name, its default model and train values, and its ``--set`` overrides."""

    name: str
    model: dict[str, Any]
    train: dict[str, Any]
    overrides: list[str]

    def config(self) -> dict[str, dict[str, Any]]:
        """The ``model:``/``train:`` config of its run; diffusion's window is its length."""
        config = {"model": dict(self.model), "train": dict(self.train)}
        model_values, train_values = split_config(config, self.overrides)
        if self.name == "diffusion" and not any(
            o.strip().startswith("train.window=") for o in self.overrides
        ):
            train_values["window"] = int(model_values.get("length", 64))
        return {"model": model_values, "train": train_values}


def _evenly(items: list[Any], limit: int) -> list[Any]:
    if len(items) <= limit:
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit).round()]


@dataclass
class Context:
    """What every family of one comparison shares."""

    data: PreparedDataset
    out: Path
    split: str  # scored for likelihood
    music_splits: list[str]  # their pieces are the held-out music
    steps: int | None
    seconds: float | None
    pieces: int
    notes: int
    device: str
    seed: int
    reference: list[Piece]
    training_notes: list[np.ndarray]
    ceiling: dict[str, Any]
    tokens_per_note: float

    @classmethod
    def build(
        cls,
        data: PreparedDataset,
        out: Path,
        split: str,
        music_splits: list[str],
        budget: tuple[int | None, float | None],
        pieces: int,
        notes: int,
        device: str,
        seed: int,
    ) -> Context:
        """Load the held-out and training pieces once and measure the ceiling."""
        reference = [p for s in music_splits for p in load_dataset_split(data.path, s)]
        reference = _evenly(reference, MAX_REFERENCE_PIECES)
        training = [p.notes for p in load_dataset_split(data.path, "train")]
        counts = data.manifest["splits"]["train"]
        per_note = counts["tokens"] / counts["notes"] if counts.get("notes") else math.nan
        return cls(
            data, out, split, music_splits, *budget, pieces, notes, device, seed,
            reference, training, comparison.ceiling(reference), per_note,
        )  # fmt: skip

    def report(self, data: Any, families: dict, skipped: dict, budget: str) -> dict[str, Any]:
        """The report's header around the per-family results."""
        return {
            "data": str(data),
            "dataset": str(self.data.path),
            "budget": {"steps": self.steps, "seconds": self.seconds, "text": budget},
            "held_out": {
                "likelihood_split": self.split,
                "music_splits": self.music_splits,
                "n_reference": len(self.reference),
                "n_training": len(self.training_notes),
            },
            "sampling": {"pieces": self.pieces, "notes_asked": self.notes, "seed": self.seed},
            "tokens_per_note": self.tokens_per_note,
            "ceiling": self.ceiling,
            "families": families,
            "skipped": skipped,
        }


# --------------------------------------------------------------------------- stages


def _throughput(run: Path) -> float:
    """Mean items/s (tokens or notes) over the run's logged training intervals."""
    rates = [float(r["tokens_per_s"]) for r in Logbook(run / METRICS_FILE).read()
             if r.get("split") == "train" and r.get("tokens_per_s")]  # fmt: skip
    return float(np.mean(rates)) if rates else math.nan


def _train(spec: Family, ctx: Context) -> tuple[Path, dict[str, Any]]:
    started = clock.perf_counter()
    run = train(
        ctx.data.path,
        model=spec.name,
        config=spec.config(),
        run_dir=ctx.out / "runs" / spec.name,
        device=ctx.device,
        steps=ctx.steps,
        time=ctx.seconds,
    )
    result = read_result(run)
    return run, {
        "steps": int(result.get("steps", 0)),
        "seconds": float(result.get("seconds", math.nan)),  # training steps only
        "wall_seconds": clock.perf_counter() - started,  # the whole train call
        "reason": result.get("reason"),
        "best_valid_loss": result.get("best_valid_loss"),
    }


def _likelihood(loaded: Any, ctx: Context) -> dict[str, Any]:
    model, sampler = loaded.model, loaded.model.sampler
    if sampler == "tokens":
        context = (
            int(loaded.config["train"]["seq_len"]) if hasattr(model.config, "max_seq_len") else None
        )
        return comparison.token_nll_per_note(model, ctx.data, ctx.split, context)
    if sampler == "notes":
        return comparison.note_nll_per_note(model, ctx.data, ctx.split)
    from midiforge.data.dataset import NoteWindows
    from midiforge.metrics.likelihood import DIFFUSION_TIMESTEPS, diffusion_loss

    windows = NoteWindows(ctx.data, ctx.split, model.config.length, train=False)
    return {
        "kind": "diffusion",
        "split": ctx.split,
        "denoising_loss": diffusion_loss(model, windows),
        "timesteps": DIFFUSION_TIMESTEPS,
    }


def _length_options(loaded: Any, ctx: Context) -> dict[str, Any]:
    """Generate options that ask each sampler for about ``ctx.notes`` notes per piece."""
    sampler = loaded.model.sampler
    if sampler == "tokens":
        return {"max_tokens": max(1, math.ceil(ctx.notes * ctx.tokens_per_note))}
    if sampler == "notes":
        return {"max_tokens": ctx.notes}
    length = int(loaded.model.config.length)
    context = length // 2  # generate's default
    more = max(0, ctx.notes - length)
    return {"number": 1 + math.ceil(more / (length - context)), "steps": DIFFUSION_SAMPLING_STEPS}


def _sample(run: Path, loaded: Any, ctx: Context) -> tuple[dict[str, Any], list[Piece]]:
    from midiforge.sampling.generate import generate

    folder = ctx.out / "samples" / run.name
    options = _length_options(loaded, ctx)
    started = clock.perf_counter()
    result = generate(run, out_dir=folder, n=ctx.pieces, seed=ctx.seed, device=ctx.device,
                      **options)  # fmt: skip
    seconds = clock.perf_counter() - started
    written = int(sum(result.notes))
    _, pieces = load_midi_folder(folder, "samples") if written else ([], [])
    return {
        "folder": str(folder),
        "options": options,
        "pieces": len(result.paths),
        "notes": written,
        "seconds": seconds,  # loading the run, sampling, decoding and writing
        "notes_per_s": written / seconds if seconds > 0 else math.nan,
    }, pieces


def run_family(
    spec: Family, ctx: Context, say: Callable[[str], None]
) -> tuple[dict[str, Any], np.ndarray]:
    """Train, score, sample and measure one family; (its report entry, its first piece's notes)."""
    say(f"{spec.name}: training")
    run, trained = _train(spec, ctx)
    loaded = load_run(run, device=SCORING_DEVICE)
    unit = "tokens" if loaded.model.encoding == "tokens" else "notes"
    rate = _throughput(run)
    per_note = ctx.tokens_per_note if unit == "tokens" else 1.0
    trained.update(items_per_s=rate, unit=unit, notes_per_s=rate / per_note)
    say(
        f"{spec.name}: {trained['steps']} steps in {trained['seconds']:.0f} s "
        f"({rate:.0f} {unit}/s, stopped by {trained['reason']}); scoring the {ctx.split} split"
    )
    likelihood = _likelihood(loaded, ctx)
    say(f"{spec.name}: sampling {ctx.pieces} pieces of about {ctx.notes} notes")
    sampling, pieces = _sample(run, loaded, ctx)
    say(f"{spec.name}: {sampling['notes']} notes at {sampling['notes_per_s']:.0f} notes/s; "
        f"measuring them against {len(ctx.reference)} held-out pieces")  # fmt: skip
    music = (
        comparison.music_scores(pieces, ctx.reference, ctx.training_notes, ctx.ceiling)
        if pieces
        else None
    )
    entry = {
        "run_dir": str(run),
        "encoding": loaded.model.encoding,
        "parameters": loaded.model.num_parameters(),
        "train": trained,
        "likelihood": likelihood,
        "sampling": sampling,
        "music": music,
    }
    return entry, (pieces[0].notes if pieces else np.zeros((0, 3)))
