"""MIDI channels for playback: one channel per instrument, every drum on channel 10.

A MIDI file has 16 channels and a channel plays one program at a time: a synthesizer sounds
every note of a channel with whichever program change came last. General MIDI keeps channel 10
(index 9) for drums, so 15 channels are left for pitched instruments. symusic, which writes
every MIDI file this package makes, puts track ``i`` on a channel counted from its index
(skipping channel 10 for pitched tracks) and starts again at channel 1 after the sixteenth, so
a score with more than 15 pitched tracks comes out with two programs sharing a channel, and
one of them plays with the other's sound; a drum track placed early wastes a pitched channel.

:func:`playable_score` lays a score out so that cannot happen, before FluidSynth plays it:

1. up to 15 pitched tracks keep a channel each (a bend or a pedal stays in its own part);
2. more than 15: tracks of the same program share a channel (the sound is the same);
3. more than 15 programs: the 15 with the most notes keep a channel each, and every other
   program is *folded* onto a kept program of its GM family (the one with the most notes), or,
   when its family kept none, onto the kept program nearest in number (GM numbers run by
   timbre). The folds are returned and logged, so nothing is replaced silently;
4. every drum track plays on channel 10 with the kit (program) of the drum track with the
   most notes: the channel holds one kit at a time, whatever the tracks say.

Each channel becomes one track, pitched ones first and the drum track last, which is the order
symusic's writer maps onto distinct channels (the test reads the written bytes back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import symusic

from midiforge.instruments import DRUMS, family_of, instrument_name
from midiforge.io.bounds import merge_unisons

PITCHED_CHANNELS = 15  # 16 MIDI channels less channel 10, which General MIDI keeps for drums
DRUM_CHANNEL_INDEX = 9  # channel 10 counted from 0, as MIDI bytes count it


@dataclass(frozen=True)
class ChannelPlan:
    """Which tracks play on which channel.

    ``pitched``: per pitched channel, in channel order, the indices of the score's tracks it
    plays, with ``programs`` the program each channel plays; ``drums``: the drum tracks (all
    on channel 10) and ``drum_kit`` their kit; ``folded``: ``(program, plays as)`` for every
    program that got no channel of its own.
    """

    pitched: tuple[tuple[int, ...], ...]
    programs: tuple[int, ...]
    drums: tuple[int, ...]
    drum_kit: int
    folded: tuple[tuple[int, int], ...]

    def describe_folds(self) -> str:
        """``"Viola (41) plays as Violin (40), ..."``: what the folding changed, for a warning."""
        return ", ".join(
            f"{instrument_name(p)} ({p}) plays as {instrument_name(q)} ({q})"
            for p, q in self.folded
        )


def _fold_target(program: int, kept: Sequence[int], notes: dict[int, int]) -> int:
    """The kept program that ``program`` plays as: its family's busiest, else the nearest."""
    family = [k for k in kept if family_of(k) == family_of(program)]
    if family:
        return max(family, key=lambda k: (notes[k], -k))
    return min(kept, key=lambda k: (abs(k - program), k))


def _by_program(tracks: Sequence[symusic.Track], pitched: list[int]) -> dict[int, list[int]]:
    groups: dict[int, list[int]] = {}
    for i in pitched:
        groups.setdefault(int(tracks[i].program), []).append(i)
    return groups


def plan_channels(score: symusic.Score) -> ChannelPlan:
    """Assign the score's tracks with notes to MIDI channels (module docstring, steps 1–4)."""
    tracks = score.tracks
    pitched = [i for i, t in enumerate(tracks) if len(t.notes) and not t.is_drum]
    drums = tuple(i for i, t in enumerate(tracks) if len(t.notes) and t.is_drum)
    kit = int(tracks[max(drums, key=lambda i: len(tracks[i].notes))].program) if drums else 0
    folded: list[tuple[int, int]] = []
    if len(pitched) <= PITCHED_CHANNELS:
        groups = [(int(tracks[i].program), [i]) for i in pitched]
    else:
        by_program = _by_program(tracks, pitched)
        if len(by_program) > PITCHED_CHANNELS:
            notes = {p: sum(len(tracks[i].notes) for i in idx) for p, idx in by_program.items()}
            ranked = sorted(by_program, key=lambda p: (-notes[p], p))
            kept = ranked[:PITCHED_CHANNELS]
            for program in sorted(ranked[PITCHED_CHANNELS:]):
                target = _fold_target(program, kept, notes)
                by_program[target] += by_program.pop(program)
                folded.append((program, target))
        groups = [(p, sorted(idx)) for p, idx in by_program.items()]
    groups.sort(key=lambda group: group[1][0])  # channels in the order the tracks came
    pitched_groups = tuple(tuple(idx) for _, idx in groups)
    programs = tuple(p for p, _ in groups)
    return ChannelPlan(pitched_groups, programs, drums, kit, tuple(folded))


def _merged_track(
    tracks: Sequence[symusic.Track], indices: Sequence[int], program: int, is_drum: bool
) -> symusic.Track:
    """One track holding every event of ``indices``: they share one channel anyway."""
    own = tracks[indices[0]].name.strip() if len(indices) == 1 else ""
    name = own or instrument_name(DRUMS if is_drum else program)
    out = symusic.Track(name, program, is_drum)
    for i in indices:
        source = tracks[i]
        out.notes.extend(source.notes)
        out.controls.extend(source.controls)
        out.pitch_bends.extend(source.pitch_bends)
        out.pedals.extend(source.pedals)
        out.lyrics.extend(source.lyrics)
    out.sort()
    return out


def playable_score(score: symusic.Score) -> tuple[symusic.Score, ChannelPlan]:
    """A copy of ``score`` with one track per MIDI channel, and the plan it follows.

    Pitched channels come first, in track order, then one drum track (written on channel 10).
    Stacked unisons are merged afterwards (:func:`~midiforge.io.bounds.merge_unisons`), also
    those of two tracks that now share a channel, since FluidSynth stalls on them per channel.
    """
    plan = plan_channels(score)
    tracks = score.tracks
    layout = [
        _merged_track(tracks, group, program, False)
        for group, program in zip(plan.pitched, plan.programs)
    ]
    if plan.drums:
        layout.append(_merged_track(tracks, plan.drums, plan.drum_kit, True))
    out = score.copy()
    out.tracks = layout
    merged = merge_unisons(out)
    return (merged if merged is not None else out), plan
