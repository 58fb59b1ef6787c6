"""The ``generate`` stage: a trained run (or the shipped default) → new MIDI files.

Loads the run, turns the options into a primer and a label, calls the sampler that fits the
model (:func:`_sampler_for`, the one place that dispatches on the model), decodes with the run's
own tokenizer or note decoder, and writes ``OUT/sample_NNN.mid`` (plus ``.wav`` / ``.png`` when
asked). The result lists the files and, for token models, how many generated tokens broke the
tokenization's grammar (MidiTok's ``tokens_errors``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from symusic import Score

from midiforge.device import resolve_device
from midiforge.errors import MidiforgeError, choice_error
from midiforge.store.run_dir import default_run

log = logging.getLogger(__name__)

SAMPLE_STEM = "sample"  # OUT/sample_000.mid, sample_001.mid, ...
# the transformer's key/value cache while decoding: "auto" = fp16 where the CPU kernel reads
# it (half the bytes per cached position), else the model's dtype; "float32" = exact
KV_CACHE = {"auto": None, "float32": torch.float32, "float16": torch.float16}


@dataclass
class GenerateOptions:
    """What every sampler receives; mirrors the arguments of :func:`generate`."""

    n: int
    max_tokens: int
    temperature: float
    top_k: int
    top_p: float
    seed: int | None
    label: int | None
    grammar_mask: bool
    noise: float
    window: int | None
    steps: int | None = None  # diffusion: DDIM steps; None = DDPM over every trained step
    eta: float = 0.0  # diffusion: DDIM stochasticity (0 = deterministic)
    guidance: float = 1.0  # diffusion: classifier-free guidance scale for the label
    number: int = 1  # diffusion: windows per piece (continued by inpainting)
    context: int | None = None  # diffusion: notes kept as known between windows (None = L/2)
    fixed_time: float | None = None  # diffusion: beats; put notes on a fixed grid
    trace: str | Path | None = None  # diffusion: PNG of the first window being denoised
    kv_cache: str = "auto"  # transformer: key/value cache dtype, a key of KV_CACHE


@dataclass
class GenerateResult:
    """Files written by :func:`generate` and what is known about each sample."""

    paths: list[Path]  # the MIDI files, one per sample
    notes: list[int]  # notes in each file (re-parsed)
    generated: list[int]  # tokens (token models) or notes (note models) generated per sample
    grammar_errors: list[int] = field(default_factory=list)  # per sample; empty for note models
    extra: list[Path] = field(default_factory=list)  # rendered WAV / PNG files

    def summary(self) -> str:
        """Lines for the command line: one per file, then the grammar total."""
        lines = []
        for i, path in enumerate(self.paths):
            line = f"{path}  notes={self.notes[i]} generated={self.generated[i]}"
            if self.grammar_errors:
                line += f" grammar_errors={self.grammar_errors[i]}"
            lines.append(line)
        if self.grammar_errors:
            total = sum(self.grammar_errors)
            lines.append(f"grammar errors: {total} of {sum(self.generated)} generated tokens")
        lines.extend(str(p) for p in self.extra)
        return "\n".join(lines)


# --------------------------------------------------------------------------- inputs


def label_index(style: str | None, labels: list[str], n_labels: int) -> int | None:
    """Map a style name to its label index, with an error that lists what the run knows."""
    if style is None:
        return None
    if n_labels == 0 or not labels:
        raise MidiforgeError(
            f"style: {style!r} was given but this model was trained without labels; "
            "drop --style or train on a labelled dataset"
        )
    if style not in labels:
        raise MidiforgeError(
            f"style: {style!r} is not a label of this run; expected one of: " + ", ".join(labels)
        )
    return labels.index(style)


def read_primer(path: str | Path, bars: int | None) -> Score:
    """The primer MIDI, cut to its first ``bars`` bars when given."""
    from midiforge.io.midi import load_midi

    score = load_midi(path)
    if bars is not None:
        if bars < 1:
            raise MidiforgeError(f"primer_bars: {bars} must be >= 1 (or omitted for all)")
        downbeats = np.asarray(score.get_downbeats())
        if len(downbeats) > bars:
            score = score.clip(0, int(downbeats[bars]), clip_end=True)
    if score.note_num() == 0:
        raise MidiforgeError(f"primer {path}: no notes (in the first {bars} bars)")
    return score


def _one_stream(score: Score) -> Score:
    """Merge the primer's tracks like ``prepare --tracks merge`` does, drums dropped."""
    from midiforge.data.corpus import clean_score

    merged, stats = clean_score(
        score, programs=None, drums=False, tracks="merge", max_note_beats=None, max_gap_beats=None
    )
    if merged is None:
        raise MidiforgeError(f"primer: nothing left after dropping drums ({stats.reason})")
    return merged


# --------------------------------------------------------------------------- samplers


def _sample_tokens(run: Any, opts: GenerateOptions, primer: Score | None):
    """Token models: BOS + primer ids → sampler → MIDI scores, grammar errors per sample."""
    from midiforge.data.encode import ids_to_score, score_to_ids, special_ids
    from midiforge.sampling.autoregressive import sample
    from midiforge.sampling.grammar import TypeGrammar, count_errors

    tok = run.tokenizer
    if tok is None:
        raise MidiforgeError(f"{run.path}: tokenizer.json is missing; the run is incomplete")
    specials = special_ids(tok)
    start = [specials["BOS"]] if "BOS" in specials else [tok.vocab["Bar_None"]]
    if primer is not None:
        if not tok.config.use_programs and len(primer.tracks) > 1:
            primer = _one_stream(primer)
        start = start + score_to_ids(tok, primer)
    if hasattr(run.model, "kv_dtype"):
        run.model.kv_dtype = KV_CACHE[opts.kv_cache]
    seqs = sample(
        run.model,
        n=opts.n,
        max_tokens=opts.max_tokens,
        primer_ids=start,
        temperature=opts.temperature,
        top_k=opts.top_k,
        top_p=opts.top_p,
        seed=opts.seed,
        label=opts.label,
        grammar=TypeGrammar(tok) if opts.grammar_mask else None,
        window=opts.window,
        eos_id=specials.get("EOS"),
    )
    scores, generated, errors = [], [], []
    for ids in seqs:
        new = ids[len(start) :]
        generated.append(len(new))
        errors.append(count_errors(tok, ids[1:]))
        scores.append(ids_to_score(tok, ids))
    return scores, generated, errors


def _sample_notes(run: Any, opts: GenerateOptions, primer: Score | None):
    """Note models: primer notes → per-head sampler → ``score_from_notes``."""
    from midiforge.data.encode import notes_from_score, score_from_notes
    from midiforge.sampling.autoregressive import sample_notes

    primer_notes = None
    if primer is not None:
        primer_notes = notes_from_score(_one_stream(primer))
    notes = sample_notes(
        run.model,
        n=opts.n,
        max_notes=opts.max_tokens,
        primer_notes=primer_notes,
        temperature=opts.temperature,
        top_k=opts.top_k,
        top_p=opts.top_p,
        time_noise=opts.noise,
        velocity_noise=opts.noise,
        seed=opts.seed,
        label=opts.label,
    )
    n_primer = 0 if primer_notes is None else len(primer_notes)
    return [score_from_notes(x) for x in notes], [len(x) - n_primer for x in notes], []


def _sample_diffusion(run: Any, opts: GenerateOptions, primer: Score | None):
    """Diffusion models: windows of notes denoised, continued by inpainting."""
    from midiforge.data.encode import score_from_notes
    from midiforge.sampling.diffusion import generate_notes

    if primer is not None:
        raise MidiforgeError(
            "primer: diffusion runs do not take a primer; drop --primer (use --number and "
            "--context for longer pieces)"
        )
    notes = generate_notes(
        run.model,
        n=opts.n,
        number=opts.number,
        context=opts.context,
        steps=opts.steps,
        eta=opts.eta,
        guidance=opts.guidance,
        label=opts.label,
        seed=opts.seed,
        fixed_time=opts.fixed_time,
        trace=opts.trace,
    )
    return [score_from_notes(x) for x in notes], [len(x) for x in notes], []


# (run, options, primer or None) -> (scores, generated counts, grammar errors)
Sampler = Callable[[Any, GenerateOptions, Any], tuple[list[Score], list[int], list[int]]]


def _sampler_for(model: Any) -> Sampler:
    """The one place that picks a sampling routine for a model (diffusion adds its branch)."""
    if model.encoding == "tokens":
        return _sample_tokens
    if model.name == "lstm-multihead":  # autoregressive over note rows
        return _sample_notes
    if model.name == "diffusion":
        return _sample_diffusion
    raise MidiforgeError(f"generate: model {model.name!r} has no sampler yet")


# --------------------------------------------------------------------------- the stage


def generate(
    run: str | Path | None = None,
    *,
    out_dir: str | Path,
    n: int = 4,
    max_tokens: int = 1024,
    primer: str | Path | None = None,
    primer_bars: int | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    style: str | None = None,
    grammar_mask: bool = False,
    noise: float = 0.0,
    window: int | None = None,
    device: str = "auto",
    wav: bool = False,
    png: bool = False,
    steps: int | None = None,
    eta: float = 0.0,
    guidance: float = 1.0,
    number: int = 1,
    context: int | None = None,
    fixed_time: float | None = None,
    trace: str | Path | None = None,
    kv_cache: str = "auto",
) -> GenerateResult:
    """Sample ``n`` pieces from a trained run and write them as MIDI files.

    Parameters
    ----------
    run
        A RUN dir written by ``midiforge train``; None = the shipped default model.
    out_dir
        Folder for ``sample_000.mid`` ...; created if missing, same-named files are replaced.
    n, max_tokens
        Samples, and new tokens per sample (notes per sample for note models).
    primer, primer_bars
        A MIDI file every sample continues (optionally only its first K bars).
    temperature, top_k, top_p
        Sampling filters (0 = greedy / off / off at 0, 0, 1.0); for note models they act on the
        pitch head.
    seed
        Makes the samples reproducible.
    style
        A label name of the run's dataset, for label-conditioned models.
    grammar_mask
        Forbid tokens the tokenization's grammar does not allow after the previous one.
    noise
        Note models: Gaussian noise (standardised units) on the time and velocity heads.
    window
        Context kept when generating past the training length (default: the model's).
    device
        ``auto``, ``cpu`` or ``cuda``.
    wav, png
        Also render each file with FluidSynth / as a piano roll (``midiforge.io.render``).
    steps, eta, guidance, number, context, fixed_time, trace
        Diffusion runs: DDIM steps (None = DDPM), DDIM noise, guidance scale for ``style``,
        windows per piece and the notes each continuation keeps, a fixed note grid in beats,
        and a PNG of the denoising (see :func:`midiforge.sampling.diffusion.generate_notes`).
    kv_cache
        Transformer runs: the key/value cache's dtype while decoding. ``auto`` keeps it in fp16
        where the CPU kernel reads it (half the memory traffic per cached position; logits
        within fp16 rounding of the exact ones), else in the model's dtype; ``float32`` is
        exact, ``float16`` forces half precision.
    """
    if kv_cache not in KV_CACHE:
        raise choice_error("kv_cache", kv_cache, tuple(KV_CACHE))
    from midiforge.io.midi import load_midi, save_midi
    from midiforge.store.run_dir import load_run

    run_dir = Path(run) if run is not None else default_run()
    loaded = load_run(run_dir, device=resolve_device(device))
    label = label_index(style, loaded.labels, getattr(loaded.model.config, "n_labels", 0))
    opts = GenerateOptions(
        n, max_tokens, temperature, top_k, top_p, seed, label, grammar_mask, noise, window,
        steps=steps, eta=eta, guidance=guidance, number=number, context=context,
        fixed_time=fixed_time, trace=trace, kv_cache=kv_cache,
    )  # fmt: skip
    primer_score = read_primer(primer, primer_bars) if primer is not None else None
    scores, generated, errors = _sampler_for(loaded.model)(loaded, opts, primer_score)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, notes = [], []
    for i, score in enumerate(scores):
        path = save_midi(score, out / f"{SAMPLE_STEM}_{i:03d}.mid")
        paths.append(path)
        notes.append(load_midi(path).note_num())
    result = GenerateResult(paths, notes, generated, errors)
    if wav or png:
        from midiforge.io import render

        for path in paths:
            if wav:
                result.extra.append(render.render_wav(path, path.with_suffix(".wav")))
            if png:
                result.extra.append(render.render_png(path, path.with_suffix(".png")))
    log.info("generated %d files in %s", len(paths), out)
    return result
