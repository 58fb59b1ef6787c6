"""Autoregressive sampling: logits filters in a visible order, a cached decoding loop, a window.

Each step turns the model's last logits ``(B, V)`` into a token through these filters, in order:

1. ``constraints`` — forbid ids the rules do not allow next: the tokenization's grammar first,
                     then instruments and the musician's constraints
                     (:mod:`midiforge.sampling.constraints`); first, so that top-k/top-p
                     renormalise over allowed tokens only;
2. ``temperature`` — divide by T; ``T == 0`` means greedy (argmax);
3. ``top_k``       — keep the k largest (0 = off);
4. ``top_p``       — keep the smallest set whose probability reaches p (1.0 = off);

then one multinomial draw per row from a seeded generator. The model is fed only the new token
each step (its KV cache or recurrent state carries the rest). A transformer trained on
``max_seq_len`` tokens keeps generating past it: once the context reaches the window ``W``, the
cache is cut to its last ``W - 1`` positions (relative attention: exact, positions are distances)
or, for absolute positions, the last ``W // 2`` tokens are re-fed from position 0.

A model whose cache holds keys and values offers ``new_cache(dtype)`` (the transformer); the
sampler asks it for the cache dtype ``kv_cache`` names (:data:`KV_CACHE`) and the model keeps
the cache in it. RNNs carry their state instead and ignore the option.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from midiforge.errors import MidiforgeError, choice_error
from midiforge.sampling.constraints import GrammarConstraint, Rules, TokenConstraint

NEG_INF = float("-inf")
MIN_DURATION_BEATS = 1 / 32  # shortest note a regression head may produce
SILENT_STEPS = 8  # sample_notes(silent=True) draws at most this many notes per note it writes
# the decoding cache's dtype by name; None lets the model choose: fp16 where its CPU kernel
# reads fp16 (half the bytes per cached position, logits within fp16 rounding), else its dtype
KV_CACHE = {"auto": None, "float32": torch.float32, "float16": torch.float16}


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / T`` (T > 0). Greedy decoding (T == 0) is handled by :func:`draw`."""
    return logits / temperature if temperature > 0 else logits


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row ``(B, V)``; ``k <= 0`` keeps all."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (B, 1)
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the most likely ids until their probability mass reaches ``p``.

    The id that crosses ``p`` is kept, so at least one id always survives.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (B, V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of the ids ranked above each one
    drop_sorted = mass_before >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, NEG_INF)


def grammar_filter(logits: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """Forbid ids where ``allowed`` ``(B, V)`` is False (None = no grammar)."""
    return logits if allowed is None else torch.where(allowed, logits, NEG_INF)


def filter_logits(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """All filters in the documented order; returns logits ``(B, V)`` with -inf where excluded."""
    logits = grammar_filter(logits.float(), allowed)
    logits = apply_temperature(logits, temperature)
    logits = top_k_filter(logits, top_k)
    return top_p_filter(logits, top_p)


def draw(logits: torch.Tensor, temperature: float, generator: torch.Generator) -> torch.Tensor:
    """One id per row ``(B,)`` from filtered logits; argmax when ``temperature == 0``."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def check_options(temperature: float, top_k: int, top_p: float) -> None:
    """Name the bad sampling option and its accepted range."""
    if temperature < 0:
        raise MidiforgeError(f"temperature: {temperature} must be >= 0 (0 = greedy)")
    if top_k < 0:
        raise MidiforgeError(f"top_k: {top_k} must be >= 0 (0 = off)")
    if not 0.0 < top_p <= 1.0:
        raise MidiforgeError(f"top_p: {top_p} must be in (0, 1] (1 = off)")


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(int(seed))
    return gen


@torch.inference_mode()
def sample(
    model: Any,
    *,
    n: int = 1,
    max_tokens: int = 512,
    primer_ids: list[int] | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int | None = None,
    label: int | None = None,
    grammar: Any = None,
    window: int | None = None,
    eos_id: int | None = None,
    kv_cache: str = "auto",
    constraints: Sequence[TokenConstraint] = (),
    prelude_ids: Sequence[int] = (),
) -> list[list[int]]:
    """Sample ``n`` continuations of ``primer_ids`` together, one batch, with the model's cache.

    Parameters
    ----------
    model
        A token model with ``forward(tokens, *, label, cache) -> (logits, cache)`` and
        ``trim_cache``; ``model.max_seq_len`` (None for RNNs) is the default window.
    n, max_tokens
        Number of samples and new tokens per sample (the primer is not counted).
    primer_ids
        Start of every sample (non-empty: at least a BOS or Bar token).
    temperature, top_k, top_p
        Filters, see the module docstring.
    seed
        Seeds the draw, so the same call returns the same samples.
    label
        Style label index for conditioned models (None or -1: unconditional).
    grammar
        A :class:`midiforge.sampling.grammar.TypeGrammar` to mask illegal ids, or None; it
        becomes the first of the constraints.
    constraints
        :class:`midiforge.sampling.constraints.TokenConstraint` rules, applied in order after
        the grammar (see that module for the order and how masks combine).
    window
        Context kept once generation passes it (default ``model.max_seq_len``); RNNs ignore it.
    eos_id
        A sample ends at this id (excluded from the result).
    prelude_ids
        Ids the model reads before the primer that no rule sees and the result leaves out: a
        fill-in-the-middle suffix (:func:`midiforge.data.fim.prelude`). A windowed model
        keeps them at the front of its context: when the window fills, the context is read
        again as the prelude plus the recent half window.
    kv_cache
        dtype of a key/value cache, a key of :data:`KV_CACHE`: ``auto`` (fp16 where the CPU
        kernel reads it, else the model's dtype), ``float32`` (exact) or ``float16``.

    Returns
    -------
    ``n`` lists of ids: the primer followed by what was generated.
    """
    check_options(temperature, top_k, top_p)
    if kv_cache not in KV_CACHE:
        raise choice_error("kv_cache", kv_cache, tuple(KV_CACHE))
    if not primer_ids:
        raise MidiforgeError("primer_ids: give at least one start token (BOS or Bar)")
    if n < 1 or max_tokens < 1:
        raise MidiforgeError(f"n={n} and max_tokens={max_tokens} must both be >= 1")
    limit = getattr(model, "max_seq_len", None)
    window = window or limit
    if window is not None and window < 2:
        raise MidiforgeError(f"window: {window} must be >= 2 tokens")
    model.eval()
    device = next(model.parameters()).device
    gen = make_generator(seed, device)
    seq = torch.tensor([list(primer_ids)] * n, dtype=torch.long, device=device)  # (n, P)
    rules = Rules([*([GrammarConstraint(grammar)] if grammar else []), *constraints])
    rules.start(seq)
    pre = torch.tensor([list(prelude_ids)] * n, dtype=torch.long, device=device).reshape(n, -1)
    if window is not None and pre.shape[1] >= window // 2:
        raise MidiforgeError(
            f"prelude_ids: {pre.shape[1]} ids leave no room in a window of {window}; give "
            f"fewer than {window // 2}"
        )
    context = seq if window is None else seq[:, -(window - pre.shape[1]) :]
    context = torch.cat([pre, context], 1)
    new_cache = getattr(model, "new_cache", None)  # None: the model's state is its own cache

    def empty_cache() -> Any:
        return new_cache(KV_CACHE[kv_cache]) if new_cache is not None else None

    logits, cache = model(context, label=label, cache=empty_cache())
    logits = logits[:, -1]  # (n, V)
    cached = context.shape[1]
    done = torch.zeros(n, dtype=torch.bool, device=device)
    new: list[torch.Tensor] = []
    for step in range(max_tokens):
        allowed = rules.allowed() if rules else None
        filtered = filter_logits(
            rules.steer(logits) if rules else logits,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            allowed=allowed,
        )
        token = draw(filtered, temperature, gen)  # (n,)
        rules.update(token)
        new.append(token)
        if eos_id is not None:
            done |= token == eos_id
            if bool(done.all()):
                break
        if step == max_tokens - 1:
            break
        if window is not None and cached >= window:
            trimmed = None if pre.shape[1] else model.trim_cache(cache, window - 1)
            if trimmed is None:  # absolute positions or a prelude: re-feed the recent half
                recent = torch.cat([seq, torch.stack(new, 1)], 1)[:, -(window // 2) :]
                recent = torch.cat([pre, recent], 1)
                logits, cache = model(recent, label=label, cache=empty_cache())
                logits, cached = logits[:, -1], recent.shape[1]
                continue
            cache, cached = trimmed, window - 1
        logits, cache = model(token[:, None], label=label, cache=cache)
        logits = logits[:, -1]
        cached += 1
    out = torch.cat([seq, torch.stack(new, 1)], 1).tolist()
    if eos_id is not None:
        out = [row[: len(primer_ids) + _first(row[len(primer_ids) :], eos_id)] for row in out]
    return out


def _first(row: list[int], value: int) -> int:
    return row.index(value) if value in row else len(row)


def note_programs(model: Any, instruments: Sequence[int] | None) -> tuple[Any, int]:
    """``(allowed, program)`` for :func:`sample_notes`.

    A model with an instrument head: ``allowed`` is a ``(K,)`` bool mask of the head's classes
    (the requested ``instruments``, or all of them), ``program`` unused. A model without one
    writes its single program (0 for runs from before instruments): ``allowed`` is None, and
    asking it for any other instrument is an error that names the one it plays.
    """
    programs = [int(p) for p in getattr(model.config, "programs", [])]
    if len(programs) > 1:
        wanted = programs if instruments is None else [int(p) for p in instruments]
        unknown = [p for p in wanted if p not in programs]
        if unknown or not wanted:
            raise MidiforgeError(
                f"instruments: {wanted} are not all among the model's programs {programs}"
            )
        return torch.tensor([p in wanted for p in programs]), 0
    only = programs[0] if programs else 0
    if instruments is not None and [int(p) for p in instruments] != [only]:
        raise MidiforgeError(
            f"instruments: {list(instruments)} asked of a model that plays program {only} only"
        )
    return None, only


@torch.inference_mode()
def sample_notes(
    model: Any,
    *,
    n: int = 1,
    max_notes: int = 256,
    primer_notes: Any = None,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    time_noise: float = 0.0,
    velocity_noise: float = 0.0,
    seed: int | None = None,
    label: int | None = None,
    instruments: Sequence[int] | None = None,
    rules: Any = None,
    lead: Any = None,
    silent: bool = False,
    memory: Any = None,
) -> list[Any]:
    """Sample ``n`` note sequences from a note model with pitch/time/velocity heads.

    A model with an instrument head draws each note's instrument first (its logits at
    ``temperature``, only among ``instruments`` when given: GM programs the model knows), then
    the other heads conditioned on it; a model without one writes its one program (see
    :func:`note_programs`). The pitch head goes through the same filters as tokens
    (``temperature`` is the pitch temperature). A categorical time head (``time_head:
    classes``) draws the onset gap (among the gaps the style's training notes take) and the
    duration at the same ``temperature`` and ``top_p``; a chained model (``chain_heads``) draws
    the gap, then the pitch given it, then the duration and velocity given both. A regression
    head gives a point estimate (the median log-time; the velocity's mean), in standardised units;
    ``time_noise`` / ``velocity_noise`` add Gaussian noise with that standard deviation *in
    standardised units* (0 = deterministic), and a median time head moves each gap to the
    nearest onset gap its training notes use (the style's, with ``label``; ``snap_time``), so
    the onsets stay on the corpus' grid. Primer notes keep their programs.

    ``rules`` (a :class:`midiforge.sampling.note_rules.NoteRules`, or None) applies the
    musician's constraints: its ``pitch_mask()`` joins the filters first, its ``place()`` moves
    or shortens each drawn note, and a sample ends where it says the piece is over.

    ``lead`` (a :class:`Lead`, or None) is a part the samples play along with: harmonize's
    melody. Whenever the drawn instrument is the lead's, or the drawn onset would pass the
    lead's next note, that note is read instead of the drawn one (the rules do not see it), so
    the model hears the melody where it falls, as it heard every part in training, and writes
    only the other parts around it. Why: without it an accompaniment drawn for a style whose
    tunes are a violin over guitar waited for a violin that never came, and piled up to 130
    guitar notes on one onset (bench/harmonize.py, stop 31).

    ``silent`` (with ``instruments`` a part of what the model knows): the model still draws
    every instrument it knows, and the notes on ones not asked for are fed back but not written
    (nor seen by the rules' ``place()``), so the asked parts are played as the model learned
    them, inside the whole arrangement. Why: asked for the guitar alone, a model that only ever
    heard folk guitar under a violin tune waited for the tune and stacked up to 130 notes on one
    onset; the sampler then draws up to ``SILENT_STEPS`` times ``max_notes`` notes to write
    ``max_notes``.

    Returns
    -------
    ``n`` float32 arrays ``[n_notes, len(NOTE_FIELDS)]`` (the primer's notes, then new ones;
    never the lead's), ready for :func:`midiforge.data.encode.score_from_notes`.
    """

    from midiforge.data.encode import FIELD, NOTE_FIELDS

    check_options(temperature, top_k, top_p)
    model.eval()
    device = next(model.parameters()).device
    gen = make_generator(seed, device)
    allowed, program = note_programs(model, instruments)
    head_programs = torch.tensor(getattr(model.config, "programs", []), dtype=torch.float32)
    asked = allowed if silent and allowed is not None else None  # the parts it writes
    if asked is not None:
        allowed = torch.ones_like(asked)
    if lead is not None:
        lead = lead.start(n)
        if allowed is not None:  # the model may choose the lead's instrument: it is then read
            allowed = allowed | torch.isin(head_programs, lead.programs)
    n_fields = len(NOTE_FIELDS)
    start = model.start_rows(n, n_fields, device)  # (n, 1, F)
    primer = np.zeros((0, n_fields), np.float32) if primer_notes is None else primer_notes
    primer_t = torch.as_tensor(np.asarray(primer, np.float32), device=device)
    inputs = torch.cat([start, primer_t[None].expand(n, -1, -1)], dim=1)  # (n, 1 + P, F)
    out, state = model(inputs, label=label)
    onset = torch.full((n,), float(primer[-1, FIELD["onset"]]) if len(primer) else 0.0)
    gaps = model.gap_classes(label) if hasattr(model, "gap_classes") else None
    chained = bool(getattr(model.config, "chain_heads", False))
    rows, written = [], []
    played = torch.zeros(n, dtype=torch.long)  # notes written or read per sample: the budget
    for _ in range(max_notes * (1 if asked is None else SILENT_STEPS)):
        if not bool((played < max_notes).any()):
            break
        heads, programs, inst = out, torch.full((n,), float(program)), None
        if allowed is not None:
            logits = out["instrument"][:, -1].masked_fill(~allowed.to(device), NEG_INF)
            inst = draw(filter_logits(logits, temperature=temperature), temperature, gen)[:, None]
            heads = model.heads(out["hidden"][:, -1:], inst)
            programs = head_programs[inst[:, 0].cpu()]
        pitch_opts = (rules, onset, programs, temperature, top_k, top_p, gen, memory)
        if chained:  # gap, then pitch given the gap, then duration and velocity given both
            gap = _draw_gap(heads["time"][:, -1, 0], temperature, top_p, gen, gaps)  # (n,)
            delta = model.time_bins[gap].float().cpu()
            heads = model.heads(out["hidden"][:, -1:], inst, gap[:, None])
            pitch = _draw_pitch(heads["pitch"][:, -1], delta, *pitch_opts)
            heads = model.heads(out["hidden"][:, -1:], inst, gap[:, None], pitch[:, None])
            duration = _draw_duration(heads["time"][:, -1, 1], temperature, top_p, gen)
            duration = model.time_bins[duration].float().cpu()
            velocity = model.velocity_of(heads["velocity"][:, -1], velocity_noise, gen)
            raw = torch.stack([delta, duration, velocity], dim=1)
        else:
            # the heads read the same state, so the time can be drawn before the pitch: the
            # chord steer then sees the onset the note will have, not a guess at it
            time = _draw_time(model, heads["time"][:, -1], temperature, top_p, time_noise, gen,
                              gaps, label)  # fmt: skip
            velocity = model.velocity_of(heads["velocity"][:, -1], velocity_noise, gen)
            raw = torch.cat([time, velocity[:, None]], dim=1)  # (n, 3): delta, duration, velocity
            pitch = _draw_pitch(heads["pitch"][:, -1], raw[:, 0], *pitch_opts)
        begin, duration = onset + raw[:, 0], raw[:, 1].clamp_min(MIN_DURATION_BEATS)
        read = torch.zeros(n, dtype=torch.bool) if lead is None else lead.due(begin, programs)
        heard = read | (played >= max_notes)  # fed back, not this sample's own note
        if asked is not None:
            heard |= ~asked[inst[:, 0].cpu()] & ~read
        if rules is not None:
            begin, duration = rules.place(pitch.cpu(), begin, duration, skip=heard)
        raw = torch.stack([begin - onset, duration, raw[:, 2]], dim=1)
        row = _note_row(pitch.float().cpu(), begin, raw, programs, FIELD, n_fields)
        if bool(read.any()):
            row[read] = lead.take(onset, read, FIELD, n_fields)[read]
        onset = row[:, FIELD["onset"]].clone()
        rows.append(row)
        written.append(~heard if rules is None else rules.alive & ~heard)
        played += (written[-1] | read).long()
        if memory is not None:  # the notes the piece holds, the lead's among them
            memory.update(row[:, FIELD["pitch"]], written[-1] | read)
        if rules is not None and not bool(rules.alive.any()):
            break
        out, state = model(row[:, None].to(device), label=label, cache=state)
    new = torch.stack(rows, dim=1).numpy()  # (n, notes drawn, F)
    keep = torch.stack(written, dim=1).numpy()  # (n, notes drawn): the samples' own notes
    return [np.concatenate([primer, new[i, keep[i]]]).astype(np.float32) for i in range(n)]


@dataclass
class Lead:
    """A part :func:`sample_notes` reads instead of drawing (harmonize's melody): its notes'
    onsets (beats, on the sampler's time line, sorted), pitches, durations (beats), velocities
    and GM programs, each ``(L,)``; ``at`` is each sample's next note (set by :meth:`start`)."""

    onset: np.ndarray
    pitch: np.ndarray
    duration: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    at: torch.Tensor | None = None

    EPS = 1e-6  # beats: a drawn onset this close to the lead's next one is not past it

    @property
    def programs(self) -> torch.Tensor:
        return torch.from_numpy(np.unique(self.program)).float()

    def start(self, n: int) -> Lead:
        """A copy at the lead's first note for ``n`` samples."""
        return replace(self, at=torch.zeros(n, dtype=torch.long))

    def due(self, onset: torch.Tensor, programs: torch.Tensor) -> torch.Tensor:
        """``(n,)`` bool: the samples whose next note is the lead's (module docstring of
        :func:`sample_notes`): a note left, and the drawn ``onset`` past it or the drawn
        instrument one of the lead's ``programs``."""
        left = self.at < len(self.onset)
        nxt = torch.from_numpy(self.onset).float()[self.at.clamp(max=len(self.onset) - 1)]
        return left & ((onset > nxt + self.EPS) | torch.isin(programs, self.programs))

    def take(self, onset: torch.Tensor, read: torch.Tensor, field: dict[str, int], n_fields: int):
        """Note rows ``(n, F)`` of each sample's next lead note after ``onset`` (its gap never
        below 0), the samples in ``read`` moved on to the note after it."""
        i = self.at.clamp(max=len(self.onset) - 1).numpy()
        begin = torch.maximum(torch.from_numpy(self.onset[i]).float(), onset)
        raw = torch.stack([begin - onset, torch.from_numpy(self.duration[i]).float(),
                           torch.from_numpy(self.velocity[i]).float()], dim=1)  # fmt: skip
        pitch = torch.from_numpy(self.pitch[i]).float()
        row = _note_row(pitch, begin, raw, torch.from_numpy(self.program[i]).float(), field,
                        n_fields)  # fmt: skip
        self.at += read.long()
        return row


def _draw_pitch(
    logits: torch.Tensor,
    delta: torch.Tensor,
    rules: Any,
    onset: torch.Tensor,
    programs: torch.Tensor,
    temperature: float,
    top_k: int,
    top_p: float,
    gen: torch.Generator,
    memory: Any = None,
) -> torch.Tensor:
    """``(n,)`` pitches drawn from the pitch head's ``(n, 128)`` logits, through the rules'
    pitch mask and, with chords, their steer at the note's onset (``onset + delta``); a
    ``memory`` (:class:`~midiforge.sampling.key_memory.NoteKeyMemory`) steers first."""
    if memory is not None:
        logits = memory.steer(logits)
    allowed = None if rules is None else rules.pitch_mask().to(logits.device)
    if rules is not None and rules.steers:  # chords: by the onset drawn for this note
        logits = rules.steer(logits, onset + delta, programs)
    logits = filter_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p,
                           allowed=allowed)  # fmt: skip
    return draw(logits, temperature, gen)


def _draw_gap(
    logits: torch.Tensor,
    temperature: float,
    top_p: float,
    gen: torch.Generator | None,
    gaps: torch.Tensor | None,
) -> torch.Tensor:
    """``(n,)`` onset-gap bins drawn from ``(n, bins)`` logits among the style's ``gaps``."""
    allowed = None if gaps is None else gaps.expand_as(logits)
    return draw(filter_logits(logits, temperature=temperature, top_p=top_p, allowed=allowed),
                temperature, gen)  # fmt: skip


def _draw_duration(
    logits: torch.Tensor, temperature: float, top_p: float, gen: torch.Generator | None
) -> torch.Tensor:
    """``(n,)`` duration bins drawn from ``(n, bins)`` logits (any bin: a note may be held)."""
    return draw(filter_logits(logits, temperature=temperature, top_p=top_p), temperature, gen)


def _draw_time(
    model: Any,
    time: torch.Tensor,
    temperature: float,
    top_p: float,
    noise: float,
    gen: torch.Generator | None,
    gaps: torch.Tensor | None,
    label: int | None,
) -> torch.Tensor:
    """CPU ``(n, 2)`` (delta, duration) in beats from the time head's outputs ``time``.

    A categorical head ``(n, 2, bins)`` draws each from its distribution (``temperature``,
    nucleus ``top_p``) over ``model.time_bins``, the gap among the bins ``gaps`` (the style's,
    ``gap_classes``; None = any); a median head ``(n, 2)`` gives its point
    estimate plus Gaussian ``noise`` in standardised units, the gap then moved onto the style's
    onset gaps (``snap_time``).
    """
    if time.dim() == 3:
        gap = _draw_gap(time[:, 0], temperature, top_p, gen, gaps)
        drawn = torch.stack([gap, _draw_duration(time[:, 1], temperature, top_p, gen)], 1)
        return model.time_bins[drawn].float().cpu()
    if noise > 0:
        time = time + noise * torch.randn(time.shape, generator=gen, device=time.device)
    return model.snap_time(model.median_time(time), label)


def _note_row(
    pitch: torch.Tensor,
    onset: torch.Tensor,
    raw: torch.Tensor,
    programs: torch.Tensor,
    field: dict[str, int],
    n_fields: int,
) -> torch.Tensor:
    """Raw note rows ``(n, F)`` of drawn pitches, onsets, (delta, duration, velocity), programs."""
    from midiforge.data.encode import frequency_hz

    row = torch.zeros(len(pitch), n_fields)
    row[:, field["pitch"]] = pitch
    row[:, field["onset"]] = onset
    row[:, field["delta"]] = raw[:, 0]
    row[:, field["duration"]] = raw[:, 1]  # floored at MIN_DURATION_BEATS before the rules
    row[:, field["velocity"]] = raw[:, 2].clamp(1, 127)
    row[:, field["program"]] = programs
    row[:, field["frequency"]] = torch.from_numpy(frequency_hz(pitch.numpy()).astype("float32"))
    return row
