"""Rendering is bounded: hostile or broken MIDI files cost seconds and megabytes, not the disk.

Every file here is written for real (symusic, or raw bytes where symusic cannot write the
broken value) and rendered with the real FluidSynth and matplotlib.
"""

from __future__ import annotations

import logging
import struct
import time
import wave
from pathlib import Path

import pytest
import symusic

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.io import pianoroll
from midiforge.io.bounds import (
    RELEASE_TAIL_SECONDS,
    merge_unisons,
    notes_end_seconds,
    tick_at_seconds,
)
from midiforge.io.render import render, render_png, render_wav

RATE_HZ = 22050
UNISON_NOTES = 100  # FluidSynth 2.3 overflowed its event queue from about 90 of them


def _frames(wav_path: Path) -> int:
    with wave.open(str(wav_path)) as w:  # the header's frame count
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, RATE_HZ)
        return w.getnframes()


def _score(tpq: int, notes: list[tuple[int, int, int]], tempo_mspq: int | None = None):
    score = symusic.Score(tpq)
    if tempo_mspq is not None:
        score.tempos.append(symusic.Tempo(0, 60e6 / tempo_mspq))
    track = symusic.Track("piano", 0, False)
    for time_, duration, pitch in notes:
        track.notes.append(symusic.Note(time_, duration, pitch, 80))
    score.tracks.append(track)
    return score


@pytest.fixture()
def unison_midi(tmp_path: Path) -> Path:
    """100 notes of the same pitch at the same time: a 637-byte file that FluidSynth used to
    render without end (516 MB in 16 s)."""
    path = tmp_path / "unison.mid"
    _score(480, [(0, 480, 60)] * UNISON_NOTES).dump_midi(str(path))
    assert path.stat().st_size < 1000
    return path


def test_unison_file_renders_to_the_notes_plus_the_tail_quickly(
    unison_midi: Path, tmp_path: Path
) -> None:
    end = notes_end_seconds(symusic.Score(str(unison_midi)))
    assert end == pytest.approx(0.5)
    started = time.perf_counter()
    wav = render_wav(unison_midi, tmp_path / "unison.wav", sample_rate=RATE_HZ)
    assert time.perf_counter() - started < 10
    frames = _frames(wav)
    assert RATE_HZ * end < frames <= RATE_HZ * (end + RELEASE_TAIL_SECONDS) + 1
    # fixed at the cause: with the stack merged FluidSynth ends by itself (release + its 2 s
    # grace), before the cut a runaway render would meet
    assert frames < RATE_HZ * (end + RELEASE_TAIL_SECONDS) - RATE_HZ // 4
    merged = merge_unisons(symusic.Score(str(unison_midi)))
    assert merged is not None and merged.note_num() == 1
    assert merge_unisons(_score(480, [(0, 480, 60), (0, 480, 64), (480, 480, 60)])) is None


def test_the_bound_holds_when_fluidsynth_runs_away(tmp_path: Path) -> None:
    # 150 strikes of one key 1 tick apart (tpq 30000: all within 3 ms): not a unison stack,
    # so nothing is merged, and FluidSynth 2.3 never stops on it; the pipe is cut instead
    path = tmp_path / "near.mid"
    _score(30000, [(i, 30000, 60) for i in range(150)]).dump_midi(str(path))
    assert merge_unisons(symusic.Score(str(path))) is None
    end = notes_end_seconds(symusic.Score(str(path)))
    started = time.perf_counter()
    wav = render_wav(path, tmp_path / "near.wav", sample_rate=RATE_HZ)
    assert time.perf_counter() - started < 10
    assert _frames(wav) == pytest.approx(RATE_HZ * (end + RELEASE_TAIL_SECONDS), abs=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["near.mid", "near.wav"]


def test_a_long_file_renders_exactly_the_cap_with_a_warning(tmp_path: Path, caplog) -> None:
    path = tmp_path / "long.mid"
    _score(480, [(i * 480, 480, 60 + i % 12) for i in range(60)]).dump_midi(str(path))  # 30 s
    with caplog.at_level(logging.WARNING, logger="midiforge.io.render"):
        wav = render_wav(path, tmp_path / "long.wav", sample_rate=RATE_HZ, max_seconds=2.5)
    assert _frames(wav) == round(2.5 * RATE_HZ)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "30.0 s" in warnings[0] and "first 2.5 s" in warnings[0]


def test_cli_max_seconds(tmp_path: Path, capsys) -> None:
    path = tmp_path / "long.mid"
    _score(480, [(i * 480, 480, 60) for i in range(20)]).dump_midi(str(path))  # 10 s
    out = tmp_path / "cli"
    assert main(["render", str(path), "--max-seconds", "1.5", "--out-dir", str(out)]) == 0
    with wave.open(str(out / "long.wav")) as w:
        assert w.getnframes() == round(1.5 * w.getframerate())
    assert main(["render", str(path), "--max-seconds", "0"]) == 2
    assert "max_seconds: 0.0 is not accepted" in capsys.readouterr().err
    with pytest.raises(MidiforgeError, match="max_seconds"):
        render(path, png=True, max_seconds=float("inf"))


def test_piano_roll_of_a_huge_tick_file_is_bounded_in_time(tmp_path: Path, caplog) -> None:
    # a note at tick 2**28: 77 hours at 120 BPM; once 99-146 s of drawing
    path = tmp_path / "far.mid"
    _score(480, [(0, 480, 60), (2**28, 480, 67)]).dump_midi(str(path))
    score = symusic.Score(str(path))
    assert tick_at_seconds(score, 10.0) == pytest.approx(9600)
    assert pianoroll._drawn_span(score, path, 10.0) == 9600
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="midiforge.io.pianoroll"):
        png = render_png(path, tmp_path / "far.png")
    assert time.perf_counter() - started < 5
    assert png.stat().st_size > 1000
    assert any("first 600 s" in r.getMessage() for r in caplog.records)
    # bar lines are thinned to a bounded count however short the bar and long the span
    tiny_bars = _score(480, [(0, 480, 60)])
    tiny_bars.time_signatures.append(symusic.TimeSignature(0, 1, 128))
    bars = pianoroll._bar_lines(tiny_bars, 2**28)
    assert 0 < len(bars) <= pianoroll.MAX_BAR_LINES and bars[0] == 0
    for i in range(1, 5000):  # a signature change every bar
        tiny_bars.time_signatures.append(symusic.TimeSignature(i * 1920, 4, 4))
    assert len(pianoroll._bar_lines(tiny_bars, 5000 * 1920)) <= pianoroll.MAX_BAR_LINES


def _smf(tpq: int, events: list[bytes]) -> bytes:
    """A type-1 MIDI file with one track, built byte by byte."""
    body = b"".join(events) + b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 1, 1, tpq)
    return header + b"MTrk" + struct.pack(">I", len(body)) + body


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n := n >> 7:
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


NOTE = [b"\x00\x90\x3c\x50", b"\x83\x60\x80\x3c\x00"]  # C4 on at 0, off 480 ticks later
ABSURD = {
    "tpq0": (_smf(0, NOTE), "ticks per quarter note is 0"),
    "no_notes": (_smf(480, []), "has no notes"),
    # nine deltas of 2**28 - 1 ticks before the second note: past 2**31, wrapped negative
    "int32": (
        _smf(480, NOTE + [_vlq(2**28 - 1) + b"\xff\x01\x01x"] * 9 + NOTE),
        "beyond the 32-bit tick range",
    ),
    "denominator255": (_smf(480, [b"\x00\xff\x58\x04\x04\xff\x18\x08", *NOTE]), "time signature"),
}


@pytest.mark.parametrize("name", sorted(ABSURD))
def test_absurd_files_give_one_line_errors(name: str, tmp_path: Path, capsys) -> None:
    data, message = ABSURD[name]
    path = tmp_path / f"{name}.mid"
    path.write_bytes(data)
    for draw in (render_wav, render_png):
        with pytest.raises(MidiforgeError, match=message) as caught:
            draw(path, tmp_path / f"out.{draw.__name__[-3:]}")
        assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    capsys.readouterr()
    assert main(["render", str(path), "--png"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_render_refuses_what_the_disk_cannot_hold(tmp_path: Path) -> None:
    # tpq 1, 16.8 s per quarter note, a note at tick 2**30: 570 years of audio, petabytes
    path = tmp_path / "eons.mid"
    _score(1, [(0, 1, 60), (2**30, 1, 60)], tempo_mspq=2**24 - 1).dump_midi(str(path))
    with pytest.raises(MidiforgeError, match="not enough free disk space") as caught:
        render_wav(path, tmp_path / "out" / "eons.wav", max_seconds=1e12)
    message = str(caught.value)
    assert str(tmp_path / "out") in message and "needs" in message and "available" in message
    assert not list((tmp_path / "out").iterdir())
