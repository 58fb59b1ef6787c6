"""Read back which MIDI channel each note of a written file is on, from the file's bytes.

symusic hides channels (a ``Track`` has none), so a test of the channel layout has to read the
Standard MIDI File itself: chunks, delta times, running status, meta and sysex events.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field


@dataclass
class Channels:
    """Per channel (0..15): the programs set on it and its notes (note-ons with velocity > 0)."""

    programs: dict[int, list[int]] = field(default_factory=dict)
    notes: dict[int, int] = field(default_factory=dict)

    def used(self) -> list[int]:
        return sorted(self.notes)


def _vlq(body: bytes, i: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = body[i]
        value = (value << 7) | (byte & 0x7F)
        i += 1
        if not byte & 0x80:
            return value, i


def _read_track(body: bytes, out: Channels) -> None:
    i, status = 0, 0
    while i < len(body):
        _, i = _vlq(body, i)
        if body[i] == 0xFF:  # meta: type, length, data
            length, i = _vlq(body, i + 2)
            i += length
            continue
        if body[i] in (0xF0, 0xF7):  # sysex: length, data
            length, i = _vlq(body, i + 1)
            i += length
            continue
        if body[i] & 0x80:
            status, i = body[i], i + 1
        kind, channel = status >> 4, status & 0x0F
        if kind == 0xC:
            out.programs.setdefault(channel, []).append(body[i])
        elif kind == 0x9 and body[i + 1] > 0:
            out.notes[channel] = out.notes.get(channel, 0) + 1
        i += 1 if kind in (0xC, 0xD) else 2


def read_channels(data: bytes) -> Channels:
    """Programs and note counts per channel of a Standard MIDI File's bytes."""
    if data[:4] != b"MThd":
        raise ValueError("not a Standard MIDI File")
    pos = 8 + struct.unpack(">I", data[4:8])[0]
    out = Channels()
    while pos + 8 <= len(data):
        tag, length = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        if tag == b"MTrk":
            _read_track(data[pos + 8 : pos + 8 + length], out)
        pos += 8 + length
    return out
