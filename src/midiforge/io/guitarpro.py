"""Guitar Pro 3/4/5 → symusic Score, read with PyGuitarPro (``import guitarpro``).

What is kept: the initial tempo and the tempo changes of mix-table events, every track with its
General MIDI program (the track's MIDI channel instrument; percussion tracks become drum tracks),
the string tuning and capo, note velocities, tied notes (merged into the note they continue on
the same string; a tie with nothing before it is dropped) and repeats, which are unfolded into
the timeline, alternate endings included.
Dead (muted) notes are dropped; ornaments (bends, slides, vibrato, harmonics) are not rendered as
MIDI events. Segno/coda directions (GP5) are not followed: the score plays once through, with its
repeat bars.

PyGuitarPro counts 960 ticks per quarter note and starts the first measure at tick 960; the
score written here keeps 960 ticks per quarter and starts at 0.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import symusic

from midiforge.errors import MidiforgeError

GP_SUFFIXES = frozenset({".gp3", ".gp4", ".gp5"})
GP_TICKS_PER_QUARTER = 960  # guitarpro.models.Duration.quarterTime
DRUM_CHANNEL = 9  # the General MIDI percussion channel, counted from 0
_INSTALL = "pip install pyguitarpro  (or: pip install 'midiforge[convert]')"


def _guitarpro():
    try:
        import guitarpro
    except ImportError as exc:
        raise MidiforgeError(
            f"reading Guitar Pro files needs PyGuitarPro; install it with: {_INSTALL}"
        ) from exc
    return guitarpro


def unfold_repeats(headers: list) -> list[int]:
    """Order in which measures are played, as indices into ``headers``.

    A repeat-close bar with count ``n`` jumps back ``n`` times to the last repeat-open bar (or to
    the bar after the previous finished repeat). A bar with alternate endings (a bit mask: bit
    ``k`` = ending ``k + 1``) is played only on the passes it lists.
    """
    order: list[int] = []
    start, passes = 0, 1
    jumps: dict[int, int] = defaultdict(int)
    i = 0
    while i < len(headers):
        header = headers[i]
        if header.isRepeatOpen and i != start:
            start, passes = i, 1
        if header.repeatAlternative and not (header.repeatAlternative >> (passes - 1)) & 1:
            i += 1
            continue
        order.append(i)
        if header.repeatClose > 0 and jumps[i] < header.repeatClose:
            jumps[i] += 1
            passes += 1
            i = start
            continue
        if header.repeatClose > 0:  # this repeat is done; a later close without open starts here
            start = i + 1
        i += 1
    return order


def read_guitarpro(path: str | Path) -> symusic.Score:
    """Read a ``.gp3``/``.gp4``/``.gp5`` file into a Score (960 ticks per quarter note)."""
    path = Path(path)
    gp = _guitarpro()
    try:
        song = gp.parse(str(path))
    except Exception as exc:  # PyGuitarPro raises struct.error, GPException, ValueError...
        raise MidiforgeError(f"{path}: not a readable Guitar Pro 3/4/5 file ({exc})") from exc
    headers = song.measureHeaders
    order = unfold_repeats(headers)
    # where each played measure starts in the unfolded timeline, in ticks
    starts, cursor = [], 0
    for index in order:
        starts.append(cursor)
        cursor += headers[index].length

    score = symusic.Score(GP_TICKS_PER_QUARTER)
    score.tempos.append(symusic.Tempo(0, float(song.tempo)))
    first = headers[0].timeSignature if headers else None
    if first is not None:
        score.time_signatures.append(
            symusic.TimeSignature(0, first.numerator, first.denominator.value)
        )
    tempo_changes: dict[int, float] = {}
    for track in song.tracks:
        is_drum = bool(track.isPercussionTrack) or track.channel.channel == DRUM_CHANNEL
        out = symusic.Track(
            name=track.name.strip(),
            program=0 if is_drum else track.channel.instrument,
            is_drum=is_drum,
        )
        notes: list[list[int]] = []  # [time, duration, pitch, velocity]
        sounding: dict[int, int] = {}  # string number -> index in notes of its last note
        capo = 0 if is_drum else track.offset
        for played, index in enumerate(order):
            measure = track.measures[index]
            offset = starts[played] - measure.header.start
            for voice in measure.voices:
                for beat in voice.beats:
                    onset = beat.start + offset
                    mix = beat.effect.mixTableChange
                    if mix is not None and mix.tempo is not None and mix.tempo.value > 0:
                        tempo_changes[onset] = float(mix.tempo.value)
                    length = beat.duration.time
                    for note in beat.notes:
                        if note.type == gp.NoteType.tie:  # a tie from nothing is dropped
                            if note.string in sounding:
                                tied = notes[sounding[note.string]]
                                tied[1] = onset + length - tied[0]
                        elif note.type == gp.NoteType.normal:
                            pitch = note.realValue + capo
                            sounding[note.string] = len(notes)
                            notes.append([onset, length, pitch, note.velocity])
        for time, duration, pitch, velocity in notes:
            if 0 <= pitch <= 127:
                out.notes.append(
                    symusic.Note(time, max(duration, 1), pitch, min(max(velocity, 1), 127))
                )
        out.notes.sort()
        score.tracks.append(out)
    for time, qpm in sorted(tempo_changes.items()):
        if time > 0:
            score.tempos.append(symusic.Tempo(time, qpm))
    return score
