"""The ``generate`` stage: a trained run (or the shipped default) → new MIDI files.

Checks the options (:class:`midiforge.sampling.options.GenerateOptions`, the one list of them),
loads the run, turns the options into a primer and a label (and, for token models, the
instruments rule of :mod:`midiforge.sampling.instrument_rule`), calls the sampler the model
declares (``MidiModel.sampler``, looked up in :data:`SAMPLERS`), decodes with the run's own
tokenizer or note decoder, names each track after its instrument, and writes
``OUT/sample_NNN.mid`` (plus ``.wav`` / ``.png`` when asked); a sample with no notes is drawn
again first (:func:`redraw_empty`), and a sample whose key nothing set moves into one of its
style's keys (:func:`to_style_keys`). The
result lists the files and, for token models, how many generated tokens broke the tokenization's
grammar (MidiTok's ``tokens_errors``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from symusic import Score

from midiforge.device import resolve_device
from midiforge.errors import MidiforgeError
from midiforge.sampling.harmonize import harmonizing
from midiforge.sampling.infill import infilling
from midiforge.sampling.options import MAX_SEED, GenerateOptions, ignored_by, with_fields
from midiforge.store.run_dir import shipped_run

log = logging.getLogger(__name__)

SAMPLE_STEM = "sample"  # OUT/sample_000.mid, sample_001.mid, ...
EMPTY_REDRAWS = 3  # times a sample with no notes is drawn again before it is written empty


@dataclass
class GenerateResult:
    """Files written by :func:`generate` and what is known about each sample."""

    paths: list[Path]  # the MIDI files, one per sample
    notes: list[int]  # notes in each file (re-parsed)
    generated: list[int]  # tokens (token models) or notes (note models) generated per sample
    grammar_errors: list[int] = field(default_factory=list)  # per sample; empty for note models
    extra: list[Path] = field(default_factory=list)  # rendered WAV / PNG files
    # per sample: (key it was played in, key it was moved to) by --style-keys; None = kept
    keys: list[tuple[str, str] | None] = field(default_factory=list)

    def summary(self) -> str:
        """Lines for the command line: one per file, then the grammar total."""
        lines = []
        for i, path in enumerate(self.paths):
            line = f"{path}  notes={self.notes[i]} generated={self.generated[i]}"
            if self.grammar_errors:
                line += f" grammar_errors={self.grammar_errors[i]}"
            if self.keys and self.keys[i] is not None:
                played, now = self.keys[i]
                line += f"  in {now} (played in {played})"
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
    """The primer MIDI, cut to its first ``bars`` bars (>= 1, checked by GenerateOptions)."""
    from midiforge.io.midi import load_midi

    score = load_midi(path)
    if bars is not None:
        downbeats = np.asarray(score.get_downbeats())
        if len(downbeats) > bars:
            score = score.clip(0, int(downbeats[bars]), clip_end=True)
    if score.note_num() == 0:
        where = f" in its first {bars} bars" if bars is not None else ""
        raise MidiforgeError(f"primer {path}: no notes{where}; give a MIDI file with notes")
    return score


def _one_stream(score: Score) -> Score:
    """Merge the primer's tracks like ``prepare --tracks merge`` does, drums dropped (for runs
    whose tokenizer has no Program tokens, and for note models)."""
    from midiforge.data.corpus import clean_score

    merged, stats = clean_score(
        score, programs=None, drums=False, tracks="merge", max_note_beats=None, max_gap_beats=None
    )
    if merged is None:
        raise MidiforgeError(f"primer: nothing left after dropping drums ({stats.reason})")
    return merged


def _instrument_rules(run: Any, opts: GenerateOptions, primer: Score | None):
    """The primer as the run's tokenizer can take it, and the instruments rule (or none).

    A tokenizer with Program tokens keeps the primer's tracks, each on a program the run
    learned (:func:`~midiforge.sampling.instrument_rule.continue_programs`); the programs
    allowed are the requested ones plus the primer's, and a primer alone allows its own. A
    merged run takes the primer merged to one stream; a request is then checked against the
    run's one instrument and needs no rule. With neither, ``--style S`` keeps the run to the
    programs S's training pieces play (``LoadedRun.style_instruments``), masked, not steered.
    """
    from midiforge.instruments import resolve_instruments
    from midiforge.sampling.instrument_rule import (
        InstrumentConstraint,
        continue_programs,
        tokenizer_programs,
    )

    tok = run.tokenizer
    asked = (
        resolve_instruments(opts.instruments.split(","), run.instruments)
        if opts.instruments
        else []
    )
    if not tokenizer_programs(tok):
        if primer is not None and len(primer.tracks) > 1:
            primer = _one_stream(primer)
        return primer, []
    allowed = list(asked)
    if primer is not None:
        primer, programs = continue_programs(primer, run.instruments)
        allowed += [p for p in programs if p not in allowed]
    if not allowed and opts.style is not None:  # the style's own band, nothing steered
        style = [p for p in run.style_instruments.get(opts.style, []) if p in run.instruments]
        return primer, [InstrumentConstraint(tok, style, steer=0.0)] if style else []
    return primer, [InstrumentConstraint(tok, allowed)] if allowed else []


# --------------------------------------------------------------------------- samplers


def _sample_tokens(
    run: Any,
    opts: GenerateOptions,
    primer: Score | None,
    label: int | None,
    suffix: Score | None = None,
):
    """Token models: BOS + primer ids → sampler → MIDI scores, grammar errors per sample.

    ``suffix`` (an infill's bars after the range, from time 0) is read first, in
    fill-in-the-middle order, when the run's tokenizer has the markers (:mod:`midiforge.data.fim`).
    """
    from midiforge.data import fim
    from midiforge.data.encode import ids_to_score, score_to_ids, special_ids
    from midiforge.sampling.autoregressive import sample
    from midiforge.sampling.grammar import count_errors
    from midiforge.sampling.key_memory import KeyMemory
    from midiforge.sampling.musical import Musical, add_end_marker
    from midiforge.sampling.token_rules import musical_constraints, reads_time

    tok = run.tokenizer
    if tok is None:
        raise MidiforgeError(f"{run.path}: tokenizer.json is missing; the run is incomplete")
    specials = special_ids(tok)
    start = [specials["BOS"]] if "BOS" in specials else [tok.vocab["Bar_None"]]
    primer, rules = _instrument_rules(run, opts, primer)
    if primer is not None:
        start = start + score_to_ids(tok, primer)
    # the rules after the grammar, in the order sampling.constraints documents; the musician's
    # (key, range, polyphony, length) need REMI's grammar, so they switch the grammar mask on;
    # the grammar mask brings the rules' time order with it (a Position moves time forward)
    musical = musical_constraints(
        tok,
        Musical.from_options(opts),
        max_tokens=opts.max_tokens,
        primer_ids=start,
        forward_time=opts.grammar_mask,
    )
    window = opts.window or getattr(run.model, "max_seq_len", None)
    memory = []
    if opts.key_memory and window is not None and reads_time(tok):
        memory = [KeyMemory(tok, window)]  # acts only once a sample outgrows the window
    markers = fim.marker_ids(tok.vocab) if suffix is not None else None
    prelude: list[int] = []
    if markers:  # the suffix's tracks on the run's programs, as the primer's are
        suffix = _instrument_rules(run, opts, suffix)[0]
        prelude = fim.prelude(score_to_ids(tok, suffix), markers, window)
    seqs = sample(
        run.model,
        n=opts.n,
        max_tokens=opts.max_tokens,
        primer_ids=start,
        temperature=opts.temperature,
        top_k=opts.top_k,
        top_p=opts.top_p,
        seed=opts.seed,
        label=label,
        grammar=_grammar(tok, opts.grammar_mask or bool(musical)),
        window=opts.window,
        eos_id=specials.get("EOS"),
        kv_cache=opts.kv_cache,
        constraints=[*rules, *musical, *memory],
        prelude_ids=prelude,
    )
    ends = musical[0].end_ticks() if musical else None
    scores, generated, errors = [], [], []
    for i, ids in enumerate(seqs):
        new = ids[len(start) :]
        generated.append(len(new))
        errors.append(count_errors(tok, ids[1:]))
        scores.append(ids_to_score(tok, ids))
        if ends is not None:
            add_end_marker(scores[-1], ends[i])
    return scores, generated, errors


def _grammar(tok: Any, wanted: bool) -> Any:
    """The grammar mask (on by default), unless turned off or the tokenizer uses BPE, whose
    merged ids span several token types (then the errors are still counted and reported)."""
    from midiforge.sampling.grammar import TypeGrammar

    if not wanted:
        return None
    if getattr(tok, "is_trained", False):
        log.info("generate: a BPE tokenizer has no type grammar to mask; sampling without it")
        return None
    return TypeGrammar(tok)


def _requested_programs(run: Any, opts: GenerateOptions) -> list[int] | None:
    """The GM programs ``opts.instruments`` names, among those the model knows (None: the
    model chooses); an instrument it never saw is a one-line error naming the ones it knows."""
    if opts.instruments is None:
        return None
    from midiforge.instruments import resolve_instruments

    return resolve_instruments(opts.instruments, run.instruments)


def primer_rows(run: Any, primer: Score | None) -> np.ndarray | None:
    """The primer's note rows: every track with its program (drums too) for a model with
    instruments, else merged into one stream as the model was trained."""
    from midiforge.data.encode import notes_from_score

    if primer is None:
        return None
    if len(getattr(run.model.config, "programs", [])) > 1:
        return notes_from_score(primer)
    return notes_from_score(_one_stream(primer))


def _sample_notes(
    run: Any,
    opts: GenerateOptions,
    primer: Score | None,
    label: int | None,
    lead: Any = None,
    meter: Any = None,
    chord_bonus: float | None = None,
):
    """Note models: primer notes → per-head sampler → ``score_from_notes``. Harmonize gives a
    ``lead`` to play along with (:class:`midiforge.sampling.autoregressive.Lead`, on top of
    the ``max_tokens`` new notes) and the melody's ``meter``
    (:class:`midiforge.sampling.harmonize.Meter`): the bars the rules count in and the scores'
    time signatures (None: 4/4); ``chord_bonus`` replaces the chord steer's."""
    from midiforge.data.encode import FIELD, score_from_notes
    from midiforge.models.note_features import draw_pickups
    from midiforge.sampling.autoregressive import make_generator, sample_notes
    from midiforge.sampling.key_memory import NoteKeyMemory
    from midiforge.sampling.musical import Musical
    from midiforge.sampling.note_rules import NoteRules, end_on_last_bar_line

    programs = _requested_programs(run, opts)
    primer_notes = primer_rows(run, primer)
    musical = Musical.from_options(opts)
    if chord_bonus is not None:
        musical = replace(musical, chord_bonus=chord_bonus)
    lines = None if meter is None else meter.lines
    rules = NoteRules(musical, opts.n, primer=primer_notes, lines=lines) if musical.active else None
    window = opts.window or (run.config.get("train") or {}).get("seq_len")
    memory = None
    if opts.key_memory and window:  # acts once a sample outgrows the notes trained on at once
        pitches = None if primer_notes is None else primer_notes[:, FIELD["pitch"]]
        memory = NoteKeyMemory(opts.n, int(window), pitches)
    notes = sample_notes(
        run.model,
        n=opts.n,
        max_notes=opts.max_tokens + (0 if lead is None else len(lead.onset)),
        primer_notes=primer_notes,
        temperature=opts.temperature,
        top_k=opts.top_k,
        top_p=opts.top_p,
        time_noise=opts.noise,
        velocity_noise=opts.noise,
        seed=opts.seed,
        label=label,
        instruments=programs,
        rules=rules,
        lead=lead,
        silent=programs is not None,
        memory=memory,
    )
    n_primer = 0 if primer_notes is None else len(primer_notes)
    if opts.style_parts and primer_notes is None and lead is None and rules is None:
        # a new piece begins where in its bar its style's pieces begin (a pickup), as the
        # diffusion sampler's do; the rules and a primer or melody count bars from beat 0
        table, generator = run.style_pickups(opts.style), make_generator(opts.seed, "cpu")
        for piece, beats in zip(notes, draw_pickups(table, len(notes), generator)):
            piece[:, FIELD["onset"]] += beats
    asked = None if rules is None else rules.end_beats()
    ends = [asked] * len(notes)
    if asked is None:  # no length asked: each piece ends on the last bar line it reaches
        notes, ends = map(list, zip(*(end_on_last_bar_line(x, n_primer) for x in notes)))
    scores = [score_from_notes(x) for x in notes]
    for score in scores if meter is not None else []:
        meter.sign(score)
    _mark_end(scores, ends)
    return scores, [len(x) - n_primer for x in notes], []


def _sample_diffusion(run: Any, opts: GenerateOptions, primer: Score | None, label: int | None):
    """Diffusion models: windows of notes denoised, continued by inpainting (from the primer's
    last notes when there is one)."""
    from midiforge.data.encode import DEFAULT_TPQ, score_from_notes
    from midiforge.sampling.diffusion import generate_notes, resolve_label
    from midiforge.sampling.musical import Musical
    from midiforge.sampling.note_rules import DiffusionRules

    programs = _requested_programs(run, opts)
    primer_notes = primer_rows(run, primer)
    musical = Musical.from_options(opts)
    rhythm = run.model.rhythm(resolve_label(run.model, label))
    rules = DiffusionRules(musical, run.model.scaler, rhythm=rhythm) if musical.active else None
    notes = generate_notes(
        run.model,
        n=opts.n,
        number=opts.number,
        context=opts.context,
        steps=opts.steps,
        eta=opts.eta,
        guidance=opts.guidance,
        label=label,
        seed=opts.seed,
        fixed_time=opts.fixed_time,
        trace=opts.trace,
        instruments=programs,
        primer=primer_notes,
        resample=opts.resample,
        rules=rules,
        key_guidance=opts.key_guidance,
        style_keys=style_key_counts(run, opts) if run.model.config.key_condition else None,
        parts=opts.style_parts,
    )
    n_primer = 0 if primer_notes is None else len(primer_notes)
    scores = [score_from_notes(x) for x in notes]
    end = None if rules is None or rules.end is None else rules.end / DEFAULT_TPQ
    _mark_end(scores, [end] * len(scores))
    return scores, [len(x) - n_primer for x in notes], []


def _mark_end(scores: list[Score], ends: list[float | None]) -> None:
    """Note runs: each file with an end (beats) ends on that bar line (see sampling.musical)."""
    from midiforge.sampling.musical import add_end_marker

    for score, end in zip(scores, ends):
        if end is not None:
            add_end_marker(score, round(end * score.ticks_per_quarter))


# (run, options, primer Score or None, label index or None)
#   -> (scores, generated counts, grammar errors); symusic's Score is a factory, hence Any
Sampler = Callable[[Any, GenerateOptions, Any, int | None], tuple[list[Any], list[int], list[int]]]
# MidiModel.sampler -> the routine that writes that model's music; the one place that picks it
SAMPLERS: dict[str, Sampler] = {
    "tokens": _sample_tokens,
    "notes": _sample_notes,
    "diffusion": _sample_diffusion,
}


def _sampler_for(model: Any) -> Sampler:
    """The routine for the sampler ``model`` declares (``MidiModel.sampler``)."""
    kind = getattr(model, "sampler", None)
    if kind not in SAMPLERS:
        raise MidiforgeError(
            f"generate: model {model.name!r} declares sampler {kind!r}; known: "
            + ", ".join(SAMPLERS)
        )
    return SAMPLERS[kind]


def redraw_empty(
    sampler: Sampler,
    call: tuple[Any, GenerateOptions, Any, int | None],
    drawn: tuple[list[Any], list[int], list[int]],
    tries: int = EMPTY_REDRAWS,
) -> int:
    """Draw again, in place, each sample of ``drawn`` whose score has no notes.

    A model can end a piece before its first note (EOS first, or a token budget spent on bar
    lines); a file with no notes is of no use to anyone, so those samples are drawn again, each
    try with its own seed (``seed + try``, so a seeded run stays reproducible), up to ``tries``
    times. Returns how many are still empty; they are written as they are and logged.
    """
    loaded, opts, primer, label = call
    scores, generated, errors = drawn
    for attempt in range(1, tries + 1):
        empty = [i for i, score in enumerate(scores) if score.note_num() == 0]
        if not empty:
            return 0
        seed = None if opts.seed is None else (opts.seed + attempt) % (MAX_SEED + 1)
        log.info("generate: %d sample(s) had no notes; drawing them again", len(empty))
        again = sampler(loaded, replace(opts, n=len(empty), seed=seed), primer, label)
        for j, i in enumerate(empty):
            scores[i], generated[i] = again[0][j], again[1][j]
            if errors:
                errors[i] = again[2][j]
    left = sum(score.note_num() == 0 for score in scores)
    if left:
        log.warning("generate: %d sample(s) still have no notes after %d tries", left, tries)
    return left


KEY_SETTERS = ("key", "primer", "chords", "infill", "harmonize")  # options that set the key


def style_key_counts(run: Any, opts: GenerateOptions) -> dict[str, int]:
    """The keys (key → training pieces) of the asked style that an unkeyed sample goes into;
    {} when an option set the key, with ``--no-style-keys``, or for a run written before
    style_keys (it keeps the keys it plays)."""
    from midiforge.sampling.style_key import style_counts

    if not opts.style_keys or any(getattr(opts, name) is not None for name in KEY_SETTERS):
        return {}
    return style_counts(run.style_keys, opts.style)


def to_style_keys(run: Any, opts: GenerateOptions, scores: list[Score]) -> list:
    """Move the samples, in place, into keys of their style (:mod:`midiforge.sampling.style_key`)
    unless an option set the key or ``--no-style-keys``; per sample what moved (or None). A
    key-conditioned diffusion model was told a key of its style to write in
    (:func:`~midiforge.sampling.diffusion.piece_keys`), so its samples stay where they are."""
    from midiforge.sampling.musical import Musical
    from midiforge.sampling.style_key import move_to_style_keys

    counts = style_key_counts(run, opts)
    if not counts or getattr(getattr(run.model, "config", None), "key_condition", False):
        return []
    allowed = Musical.from_options(opts).pitch_table() if opts.range else None
    return move_to_style_keys(scores, counts, opts.seed, allowed)


def _name_tracks(score: Score) -> Score:
    """Each track named after its GM instrument ("Electric Bass (finger)", "Drums")."""
    from midiforge.instruments import DRUMS, instrument_name

    for track in score.tracks:
        track.name = instrument_name(DRUMS if track.is_drum else track.program)
    return score


def _write(scores: list[Score], out: Path) -> tuple[list[Path], list[int]]:
    """``OUT/sample_NNN.mid`` per score (tracks named), and each file's notes as re-parsed."""
    from midiforge.io.midi import load_midi, save_midi

    out.mkdir(parents=True, exist_ok=True)
    paths, notes = [], []
    for i, score in enumerate(scores):
        _name_tracks(score)
        path = save_midi(score, out / f"{SAMPLE_STEM}_{i:03d}.mid")
        paths.append(path)
        notes.append(load_midi(path).note_num())
    return paths, notes


# --------------------------------------------------------------------------- the stage


def generate(
    run: str | Path | None = None,
    *,
    out_dir: str | Path,
    options: GenerateOptions | None = None,
    model: str | None = None,
    **fields: Any,
) -> GenerateResult:
    """Sample ``options.n`` pieces from a trained run and write them as MIDI files.

    Parameters
    ----------
    run
        A RUN dir written by ``midiforge train``; None = a model shipped with the package.
    out_dir
        Folder for ``sample_000.mid`` ...; created if missing, same-named files are replaced.
    options
        A :class:`~midiforge.sampling.options.GenerateOptions` (None = its defaults); every
        field is documented there, with the samplers that read it.
    **fields
        Any of its fields by name, replacing the value in ``options``
        (``generate(run, out_dir="out", n=3, seed=0)``); an unknown name is an error that lists
        the accepted ones.
    model
        Which shipped model plays when ``run`` is None: ``"transformer"`` (the default),
        ``"diffusion"`` or ``"lstm-multihead"`` (:data:`midiforge.assets.SHIPPED`).

    Options the run's sampler does not read (``steps`` for a token model, say) are logged and
    left unused.
    """
    opts = with_fields(options, fields)  # checked before anything is loaded
    from midiforge.store.run_dir import load_run

    if run is not None and model is not None:
        raise MidiforgeError(
            f"model: {model!r} names a shipped model and run: {str(run)!r} a trained one; "
            "give one of them"
        )
    run_dir = Path(run) if run is not None else shipped_run(model)
    loaded = load_run(run_dir, device=resolve_device(opts.device))
    sampler = _sampler_for(loaded.model)
    unused = ignored_by(opts, loaded.model.sampler)
    if unused:
        log.info("generate: a %s run does not use %s", loaded.model.sampler, ", ".join(unused))
    label = label_index(opts.style, loaded.labels, getattr(loaded.model.config, "n_labels", 0))
    primer = read_primer(opts.primer, opts.primer_bars) if opts.primer is not None else None
    if opts.infill is not None:  # bars A..B of a song, regenerated around the sampler
        sampler = infilling(sampler)
    if opts.harmonize is not None:  # an accompaniment under a melody, around the sampler
        sampler = harmonizing(sampler)
    scores, generated, errors = sampler(loaded, opts, primer, label)
    redraw_empty(sampler, (loaded, opts, primer, label), (scores, generated, errors))
    keys = to_style_keys(loaded, opts, scores)
    if loaded.model.sampler != "diffusion":  # the diffusion sampler plays its own parts
        from midiforge.sampling.score_parts import to_style_parts

        to_style_parts(loaded, opts, scores)
    out = Path(out_dir)
    paths, notes = _write(scores, out)
    result = GenerateResult(paths, notes, generated, errors, keys=keys)
    if opts.wav or opts.png:
        from midiforge.io import render

        for path in paths:
            if opts.wav:
                result.extra.append(render.render_wav(path, path.with_suffix(".wav")))
            if opts.png:
                result.extra.append(render.render_png(path, path.with_suffix(".png")))
    log.info("generated %d files in %s", len(paths), out)
    return result
