"""Channel layout for playback, read back from the bytes symusic writes (real multitrack files)."""

from __future__ import annotations

from pathlib import Path

import pytest
import symusic

from midiforge.io.channels import (
    DRUM_CHANNEL_INDEX,
    PITCHED_CHANNELS,
    plan_channels,
    playable_score,
)
from tests.io.midi_bytes import read_channels

MULTITRACK = ("robustness", "MIDIs_multitrack")


def _track(program: int, notes: int, *, is_drum: bool = False, pitch: int = 60) -> symusic.Track:
    track = symusic.Track(f"p{program}", program, is_drum)
    for i in range(notes):
        track.notes.append(symusic.Note(i * 480, 240, pitch + i % 5, 90))
    return track


def _one_program_per_channel(score: symusic.Score) -> dict[int, int]:
    """channel → its program, checking no channel is given two different programs."""
    channels = read_channels(score.dumps_midi())
    for channel in channels.used():
        assert len(set(channels.programs.get(channel, [0]))) == 1, (channel, channels.programs)
    return {c: channels.programs.get(c, [0])[0] for c in channels.used()}


def test_sixteen_tracks_of_a_real_song_get_a_channel_each(datasets: Path) -> None:
    path = datasets.joinpath(*MULTITRACK, "d8faddb8596fff7abb24d78666f73e4e.mid")
    score = symusic.Score(str(path))
    pitched = [t for t in score.tracks if len(t.notes) and not t.is_drum]
    assert len(pitched) == PITCHED_CHANNELS and sum(t.is_drum for t in score.tracks) == 1
    # symusic's writer puts the 16th pitched track back on channel 1, over the first one's
    # program (French Horn and String Ensemble on one channel): what FluidSynth used to play
    raw = read_channels(score.dumps_midi())
    assert any(len(set(programs)) > 1 for programs in raw.programs.values())
    playable, plan = playable_score(score)
    assert plan.folded == () and len(plan.pitched) == PITCHED_CHANNELS
    by_channel = _one_program_per_channel(playable)
    assert len(by_channel) == PITCHED_CHANNELS + 1
    assert DRUM_CHANNEL_INDEX in by_channel
    pitched_channels = sorted(c for c in by_channel if c != DRUM_CHANNEL_INDEX)
    assert [by_channel[c] for c in pitched_channels] == [t.program for t in pitched]


def test_drum_tracks_share_channel_ten_with_the_busiest_kit(datasets: Path) -> None:
    # Girls Just Want to Have Fun: kick (kit 16, 255 hits), snare and hi-hat (kit 0, 170 and
    # 680 hits) on three tracks
    score = symusic.Score(str(datasets.joinpath(*MULTITRACK, "Girls Just Want to Have Fun.mid")))
    playable, plan = playable_score(score)
    assert len(plan.drums) == 3 and plan.drum_kit == 0
    assert sum(t.is_drum for t in playable.tracks) == 1 and playable.tracks[-1].is_drum
    hits = sum(len(t.notes) for t in score.tracks if t.is_drum)
    assert playable.tracks[-1].note_num() <= hits  # unisons of two drum tracks merged
    channels = read_channels(playable.dumps_midi())
    assert channels.programs[DRUM_CHANNEL_INDEX] == [0]
    assert channels.notes[DRUM_CHANNEL_INDEX] == playable.tracks[-1].note_num()
    assert len(_one_program_per_channel(playable)) == 10  # 9 pitched tracks, 1 drum channel


def test_more_than_fifteen_programs_fold_onto_their_family() -> None:
    loud = [0, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 16, 8]  # a channel each
    quiet = [1, 25, 33, 41, 121]  # one note each; Sound Effects (121) has no kept family member
    score = symusic.Score(480)
    score.tracks.append(_track(0, 4, is_drum=True, pitch=36))
    for program in loud:
        score.tracks.append(_track(program, 10))
    for program in quiet:
        score.tracks.append(_track(program, 1, pitch=72))
    score.tracks.append(_track(25, 3, is_drum=True, pitch=42))  # a second drum track, kit 25
    assert any(len(set(p)) > 1 for p in read_channels(score.dumps_midi()).programs.values())
    playable, plan = playable_score(score)
    assert plan.folded == ((1, 0), (25, 24), (33, 32), (41, 40), (121, 112))
    assert "Synth Voice" not in plan.describe_folds()
    assert "Gunshot" not in plan.describe_folds()
    assert plan.describe_folds().startswith("Bright Acoustic Piano (1) plays as Acoustic Grand")
    assert plan.programs == tuple(loud) and plan.drum_kit == 0  # the kit with more hits
    by_channel = _one_program_per_channel(playable)
    assert sorted(by_channel) == list(range(16))  # every channel, none twice
    assert by_channel[DRUM_CHANNEL_INDEX] == 0
    channels = read_channels(playable.dumps_midi())
    piano = next(c for c, p in by_channel.items() if p == 0 and c != DRUM_CHANNEL_INDEX)
    assert channels.notes[piano] == 10 + 1  # its own notes and the folded program's
    assert channels.notes[DRUM_CHANNEL_INDEX] == 4 + 3


@pytest.mark.parametrize(
    ("programs", "channels"),
    [
        ([0] * 9 + [48] * 8, 2),  # 17 tracks of 2 programs: a channel per program
        ([0, 0, 0], 3),  # few tracks keep a channel each, even of one program
    ],
)
def test_tracks_share_a_channel_only_when_they_must(programs: list[int], channels: int) -> None:
    score = symusic.Score(480)
    for program in programs:
        score.tracks.append(_track(program, 2))
    playable, plan = playable_score(score)
    assert len(plan.pitched) == len(playable.tracks) == channels and plan.folded == ()
    assert sorted(_one_program_per_channel(playable).values()) == sorted(plan.programs)
    assert sum(plan.pitched, ()) == tuple(range(len(programs)))


def test_plan_ignores_empty_tracks(datasets: Path) -> None:
    # Aicha's first track holds no notes (a conductor track with a program change)
    score = symusic.Score(str(datasets.joinpath(*MULTITRACK, "Aicha.mid")))
    plan = plan_channels(score)
    assert 0 not in sum(plan.pitched, ())
    assert len(plan.pitched) == sum(1 for t in score.tracks if len(t.notes) and not t.is_drum)
