"""The MIDI files a request uploads (a primer, a song to rewrite, a melody), checked before a
job reads them.

The page offers the three ``generate`` options that name a file (:data:`UPLOADS`) as file
inputs. Each upload must be a readable Standard MIDI File of at most
:data:`MAX_UPLOAD_BYTES` with notes, and must not cost far more than its size: at most
:data:`MAX_UPLOAD_TRACKS` tracks and :data:`MAX_UPLOAD_NOTES` notes, no more than
:data:`MAX_UNISON` notes stacked on one key at one time, and at most :data:`MAX_NOTES_READ`
notes in what the sampler reads at once (the primer bars continued; for a song to rewrite, the
bars before the range, which are its primer). A song's bar range must lie within its bars, and
a melody needs pitched notes (:func:`midiforge.sampling.harmonize.melody_of`, as
``generate`` reads it). A refusal is a :class:`MidiforgeError` naming the option, the file and
what is accepted. The bytes stay in memory until the job writes them into its own folder under
a fixed name (:data:`STORED_AS`), so nothing of the upload's own name reaches the disk.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from midiforge.errors import MidiforgeError

# the GenerateOptions fields the page fills with an uploaded file, and the name each is
# written under in the job's folder (never the uploaded name)
STORED_AS = {"primer": "primer.mid", "infill": "song.mid", "harmonize": "melody.mid"}
UPLOADS = tuple(STORED_AS)
MIDI_MAGIC = b"MThd"  # every Standard MIDI File starts with this chunk id
MAX_UPLOAD_BYTES = 512 * 1024  # 512 KiB: a long piano piece is ~100 KiB
MAX_UPLOAD_NOTES = 50_000  # a long piano piece has ~10,000
MAX_NOTES_READ = 2_000  # in the primer bars continued: ~8,000 tokens, past most contexts
MAX_UPLOAD_TRACKS = 256
MAX_UNISON = 16  # notes starting together on one key; more is a bomb, not music
MAX_NAME_CHARS = 40  # characters of an uploaded file's name kept for messages


def upload_name(option: str, filename: str) -> str:
    """The uploaded file's own name (no folders), cut short, for messages; the name it is
    stored under when the browser sent none."""
    name = PurePosixPath(filename.replace("\\", "/")).name
    if len(name) > MAX_NAME_CHARS:
        name = name[:MAX_NAME_CHARS] + "..."
    return name or STORED_AS[option]


def read_upload(option: str, data: bytes, name: str) -> Any:
    """The upload ``data`` as a ``symusic.Score`` if it is a MIDI file within the limits."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise MidiforgeError(
            f"{option}: {name} is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES} bytes "
            "(upload a shorter MIDI file)"
        )
    if not data.startswith(MIDI_MAGIC):
        raise MidiforgeError(f"{option}: {name} is not a MIDI file (.mid); upload a MIDI file")
    import symusic

    try:
        score = symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises RuntimeError/ValueError for broken files
        raise MidiforgeError(f"{option}: {name} is not a readable MIDI file ({exc})") from None
    if score.note_num() == 0:
        raise MidiforgeError(f"{option}: {name} holds no notes; upload a MIDI file with notes")
    _check_cost(option, score, name)
    return score


def _check_cost(option: str, score: Any, name: str) -> None:
    """Refuse an upload whose notes would cost far more than its bytes (a MIDI bomb)."""
    import numpy as np

    if len(score.tracks) > MAX_UPLOAD_TRACKS:
        raise MidiforgeError(
            f"{option}: {name} has {len(score.tracks)} tracks; at most {MAX_UPLOAD_TRACKS} are "
            "accepted"
        )
    if score.note_num() > MAX_UPLOAD_NOTES:
        raise MidiforgeError(
            f"{option}: {name} holds {score.note_num()} notes; at most {MAX_UPLOAD_NOTES} are "
            "accepted (upload a shorter piece)"
        )
    arrays = [t.notes.numpy() for t in score.tracks if t.note_num()]
    keys = np.concatenate([a["time"].astype(np.int64) * 128 + a["pitch"] for a in arrays])
    values, counts = np.unique(keys, return_counts=True)
    worst = int(counts.argmax())
    if counts[worst] > MAX_UNISON:
        tick, pitch = divmod(int(values[worst]), 128)
        raise MidiforgeError(
            f"{option}: {name} stacks {int(counts[worst])} notes on one key at one time (pitch "
            f"{pitch} at tick {tick}); at most {MAX_UNISON} are accepted (remove the "
            "duplicates)"
        )


def check_primer(data: bytes | None, filename: str = "", bars: int | None = None) -> bytes | None:
    """The uploaded primer if it is a readable MIDI file within the limits, else an error;
    ``bars`` is how many of its bars the job continues (None: all)."""
    if not data:
        return None
    name = upload_name("primer", filename) if filename else "the upload"
    score = read_upload("primer", data, name)
    used = score
    if bars is not None:  # cut as the sampler cuts it (midiforge.sampling.generate.read_primer)
        import numpy as np

        downbeats = np.asarray(score.get_downbeats())
        if len(downbeats) > bars:
            used = score.clip(0, int(downbeats[bars]), clip_end=True)
    if used.note_num() > MAX_NOTES_READ:
        where = "in all its bars" if bars is None else f"in its first {bars} bars"
        raise MidiforgeError(
            f"primer: {name} holds {used.note_num()} notes {where}; a primer may hold at most "
            f"{MAX_NOTES_READ} (lower the primer bars, or upload a shorter piece)"
        )
    return data


def check_song(data: bytes, filename: str, first: int, last: int) -> bytes:
    """The song whose bars ``first..last`` (1-based, inclusive) a job rewrites, if they lie
    within its bars (:func:`midiforge.sampling.infill.bar_lines`, as ``generate`` splits it)
    and the bars before them, the primer, are within :data:`MAX_NOTES_READ` notes."""
    from midiforge.sampling.infill import bar_lines

    name = upload_name("infill", filename)
    score = read_upload("infill", data, name)
    lines = bar_lines(score)
    bars = len(lines) - 1
    if last > bars:  # the words of midiforge.sampling.infill.split_song
        raise MidiforgeError(
            f"bars: {first}-{last} is past the end of {name}, which has {bars} bars; "
            f"use A-B within 1-{bars}"
        )
    before = score.clip(0, int(lines[first - 1]), clip_end=False)
    if before.note_num() > MAX_NOTES_READ:
        raise MidiforgeError(
            f"infill: {name} holds {before.note_num()} notes before bar {first}, which the "
            f"model reads as its primer; at most {MAX_NOTES_READ} are accepted (rewrite "
            "earlier bars, or upload a shorter piece)"
        )
    return data


def check_melody(data: bytes, filename: str) -> tuple[bytes, int]:
    """The melody to harmonize and its number of bars (what the accompaniment will be), if
    it has pitched notes (:func:`midiforge.sampling.harmonize.melody_of`)."""
    from midiforge.sampling.harmonize import melody_of

    name = upload_name("harmonize", filename)
    return data, melody_of(read_upload("harmonize", data, name), name).n_bars
