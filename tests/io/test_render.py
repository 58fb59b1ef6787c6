"""Rendering: FluidSynth WAV of POP909 and band songs, piano-roll PNGs, soundfont lookup, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import symusic
from matplotlib.image import imread

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, instrument_name
from midiforge.io import pianoroll
from midiforge.io import render as render_mod
from midiforge.io.pianoroll import instrument_colour, legend_entries, pitch_name
from midiforge.io.render import find_soundfont, render, render_png, render_wav

CLIP_SECONDS = 20.0  # render only this much audio to keep the test fast
MAX_TAIL_SECONDS = 4.0  # FluidSynth's release tail plus its end-of-song padding
MIN_RMS = 0.01  # full scale is 1.0; silence is 0
RATE_HZ = 22050
COLOUR_TOLERANCE = 0.02  # RGB distance per channel of a pixel drawn in a given colour
MIN_PIXELS = 50  # a colour drawn on fewer pixels than this is hardly drawn


@pytest.fixture(scope="module")
def pop_clip(datasets: Path, tmp_path_factory) -> Path:
    """The first 20 s of POP909 song 001, as a MIDI file."""
    score = symusic.Score(str(datasets / "pop909" / "001" / "001.mid")).to("second")
    clip = score.clip(0.0, CLIP_SECONDS, clip_end=True).to("tick")
    path = tmp_path_factory.mktemp("render") / "pop001.mid"
    clip.dump_midi(str(path))
    return path


def test_render_wav_length_and_loudness(pop_clip: Path, tmp_path: Path) -> None:
    end_s = symusic.Score(str(pop_clip)).to("second").end()
    wav = render_wav(pop_clip, tmp_path / "out.wav", sample_rate=22050)
    data, rate = sf.read(str(wav))
    assert rate == 22050
    seconds = len(data) / rate
    assert end_s <= seconds <= end_s + MAX_TAIL_SECONDS, (end_s, seconds)
    rms = float(np.sqrt(np.mean(data**2)))
    assert rms > MIN_RMS
    # sound is spread over the song, not one burst: every 5 s stretch of the clip is audible
    for start in range(0, int(CLIP_SECONDS) - 5, 5):
        piece = data[start * rate : (start + 5) * rate]
        assert np.sqrt(np.mean(piece**2)) > MIN_RMS / 2, start
    assert not list(tmp_path.glob(".*part*")), "temporary file left behind"


def _pixels(image: np.ndarray, colour: tuple[float, float, float]) -> int:
    return int(np.all(np.abs(image - np.asarray(colour)) < COLOUR_TOLERANCE, axis=-1).sum())


def test_render_png_draws_each_track_in_its_colour(pop_clip: Path, tmp_path: Path) -> None:
    # POP909: three piano tracks (melody, bridge, accompaniment): shades of the piano's blue
    png = render_png(pop_clip, tmp_path / "roll.png")
    image = imread(str(png))[..., :3]  # (H, W, 3) floats
    assert image.shape[:2] == (600, 1400)
    score = symusic.Score(str(pop_clip))
    tracks = [t for t in score.tracks if len(t.notes)]
    assert {t.program for t in tracks} == {0} and len(tracks) == 3
    for k in range(len(tracks)):
        assert _pixels(image, instrument_colour(0, k)) > MIN_PIXELS, f"track {k} hardly drawn"
    assert [e.label for e in legend_entries(score)] == ["Acoustic Grand Piano ×3"]


def test_pitch_names_and_bar_lines() -> None:
    assert [pitch_name(p) for p in (21, 60, 61, 69, 108)] == ["A0", "C4", "C♯4", "A4", "C8"]
    score = symusic.Score(480)
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    score.time_signatures.append(symusic.TimeSignature(2880, 4, 4))  # after two 3/4 bars
    assert pianoroll._bar_lines(score, 2880 + 1920 * 2) == [0, 1440, 2880, 4800, 6720]


def test_soundfont_lookup_names_the_fix(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(MidiforgeError, match="--soundfont"):
        find_soundfont(tmp_path / "missing.sf2")
    monkeypatch.delenv(render_mod.SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(render_mod, "SOUNDFONT_LOCATIONS", (str(tmp_path / "none.sf2"),))
    with pytest.raises(MidiforgeError, match="apt-get install fluid-soundfont-gm"):
        find_soundfont()
    monkeypatch.setenv(render_mod.SOUNDFONT_ENV, str(tmp_path / "env.sf2"))
    with pytest.raises(MidiforgeError, match=render_mod.SOUNDFONT_ENV):
        find_soundfont()


def test_render_folder_and_cli(pop_clip: Path, tmp_path: Path, capsys) -> None:
    short = symusic.Score(str(pop_clip)).to("second").clip(0.0, 3.0, clip_end=True).to("tick")
    folder = tmp_path / "midi" / "sub"
    folder.mkdir(parents=True)
    short.dump_midi(str(folder / "a.mid"))
    written = render(tmp_path / "midi", wav=True, png=True, out_dir=tmp_path / "out")
    assert sorted(p.name for p in written) == ["a.png", "a.wav"]
    assert all(p.stat().st_size > 1000 for p in written)
    assert main(["render", str(folder / "a.mid"), "--png", "--out-dir", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "a.png").is_file()
    assert not (tmp_path / "cli" / "a.wav").exists()
    assert main(["render", str(tmp_path / "nothing.mid")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_render_png_ignores_a_far_meta_event(tmp_path: Path) -> None:
    # A sampled piece can end with a tempo event far past its notes (seen at tick 2**28);
    # the picture must span the notes, not millions of empty bars, and finish quickly.
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(2**28, 120.0))
    track = symusic.Track("melody", 0, False)
    track.notes.append(symusic.Note(0, 960, 60, 80))
    score.tracks.append(track)
    midi = tmp_path / "far.mid"
    score.dump_midi(str(midi))
    png = render_png(midi, tmp_path / "far.png")
    image = imread(str(png))
    assert image.shape[0] > 0
    # the single note fills a visible share of the width: the x range ends near beat 2
    piano = np.asarray(instrument_colour(0))
    coloured = np.argwhere(np.abs(image[..., :3] - piano).sum(axis=-1) < 0.05)
    assert coloured[:, 1].max() - coloured[:, 1].min() > image.shape[1] * 0.3


# ----------------------------------------------------------------------------- instruments


def _chord(program: int, start: int, pitches=(60, 64, 67), *, is_drum: bool = False):
    track = symusic.Track(f"program {program}", program, is_drum)
    for p in pitches:
        track.notes.append(symusic.Note(start, 960, p, 100))
    return track


def _mono(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path))
    assert rate == RATE_HZ
    return data.mean(axis=1)


def _band_energy(signal: np.ndarray, low_hz: float, high_hz: float) -> float:
    power = np.abs(np.fft.rfft(signal)) ** 2
    freqs = np.fft.rfftfreq(len(signal), 1 / RATE_HZ)
    return float(power[(freqs >= low_hz) & (freqs < high_hz)].sum())


def test_drums_play_on_the_drum_channel(tmp_path: Path) -> None:
    # the same piano chord alone, and under a bar of kick, snare and closed hi-hat
    piano = symusic.Score(480)
    piano.tracks.append(_chord(0, 0))
    piano.dump_midi(str(tmp_path / "piano.mid"))
    kit = symusic.Track("drums", 0, True)
    for beat in range(4):
        kit.notes.append(symusic.Note(beat * 480, 120, 36, 110))  # Bass Drum 1
        kit.notes.append(symusic.Note(beat * 480 + 240, 120, 42, 100))  # Closed Hi-Hat
        if beat % 2:
            kit.notes.append(symusic.Note(beat * 480, 120, 38, 110))  # Acoustic Snare
    band = piano.copy()
    band.tracks.append(kit)
    band.dump_midi(str(tmp_path / "band.mid"))
    alone = _mono(render_wav(tmp_path / "piano.mid", tmp_path / "piano.wav", sample_rate=RATE_HZ))
    both = _mono(render_wav(tmp_path / "band.mid", tmp_path / "band.wav", sample_rate=RATE_HZ))
    n = min(len(alone), len(both))
    alone, both = alone[:n], both[:n]
    # cymbals and snare fill the top of the spectrum and the kick its bottom, where the
    # chord C4-E4-G4 has little; measured: ×45 above 5 kHz, ×60 below 100 Hz
    assert _band_energy(both, 5000, RATE_HZ / 2) > 10 * _band_energy(alone, 5000, RATE_HZ / 2)
    assert _band_energy(both, 20, 100) > 10 * _band_energy(alone, 20, 100)
    assert np.sqrt(np.mean((both - alone) ** 2)) > 0.5 * np.sqrt(np.mean(alone**2))


def test_a_sixteenth_track_does_not_take_the_first_ones_sound(tmp_path: Path) -> None:
    # 16 pitched tracks, 15 programs: symusic writes the 16th (a violin) on channel 1 with the
    # piano, whose chord at beat 1 then played as a violin; laid out one channel per program,
    # the first seconds are the piano alone, sample for sample
    piano = symusic.Score(480)
    piano.tracks.append(_chord(0, 480))
    piano.dump_midi(str(tmp_path / "piano.mid"))
    crowd = piano.copy()
    for k in range(1, 15):  # one note each from beat 8 (4 s), programs 8, 16, ..., 112
        crowd.tracks.append(_chord(8 * k, 480 * 8, (72,)))
    crowd.tracks.append(_chord(40, 480 * 8, (76,)))  # a second Violin track, 16th in the file
    crowd.dump_midi(str(tmp_path / "crowd.mid"))
    alone = _mono(render_wav(tmp_path / "piano.mid", tmp_path / "piano.wav", sample_rate=RATE_HZ))
    mixed = _mono(render_wav(tmp_path / "crowd.mid", tmp_path / "crowd.wav", sample_rate=RATE_HZ))
    first = int(3.5 * RATE_HZ)  # before the other tracks come in
    assert np.sqrt(np.mean(alone[:first] ** 2)) > MIN_RMS
    np.testing.assert_allclose(mixed[:first], alone[:first], atol=1e-4)


def test_legend_lists_the_instruments_of_a_band_song(datasets: Path) -> None:
    path = datasets / "robustness" / "MIDIs_multitrack" / "Mr. Blue Sky.mid"
    score = symusic.Score(str(path))
    entries = legend_entries(score)
    with_notes = [t for t in score.tracks if len(t.notes)]
    programs = [DRUMS if t.is_drum else t.program for t in with_notes]
    assert [e.program for e in entries] == [p for p in dict.fromkeys(programs) if p != DRUMS] + [
        DRUMS
    ]
    assert [e.label for e in entries] == [
        "Flute", "Acoustic Grand Piano", "Electric Bass (finger)", "String Ensemble 1",
        "Lead 3 (calliope)", "Choir Aahs", "Pad 3 (polysynth)", "Overdriven Guitar", "Drums",
    ]  # fmt: skip
    assert [e.label for e in entries] == [instrument_name(e.program) for e in entries]
    assert sum(e.notes for e in entries) == score.note_num()
    assert len({e.colour for e in entries}) == len(entries)  # no two instruments alike
    # a colour belongs to the instrument, not to the file: the bass is the bass everywhere
    fun = symusic.Score(str(path.with_name("Funkytown.mid")))
    assert instrument_colour(33) in [e.colour for e in entries]
    assert instrument_colour(87) in [e.colour for e in legend_entries(fun)]
    # several tracks of one program are one entry
    small = legend_entries(symusic.Score(str(path.with_name("All The Small Things.mid"))))
    assert "Electric Guitar (jazz) ×3" in [e.label for e in small]
    assert "Distortion Guitar ×2" in [e.label for e in small]


def test_band_piano_roll_has_instrument_colours_and_a_drum_lane(
    datasets: Path, tmp_path: Path
) -> None:
    path = datasets / "robustness" / "MIDIs_multitrack" / "Mr. Blue Sky.mid"
    image = imread(str(render_png(path, tmp_path / "blue.png")))[..., :3]
    assert image.shape[:2] == (600, 1400)
    drawn = [e for e in legend_entries(symusic.Score(str(path))) if e.program != DRUMS]
    # each instrument's colour on the notes (Pad 3 has 13 notes: fewer pixels), and in the legend
    present = [e.label for e in drawn if _pixels(image, e.colour) > MIN_PIXELS]
    assert len(present) >= len(drawn) - 1, present
    # drum hits are ticks in a lane under the roll, not boxes among the pitches
    drum = np.all(np.abs(image - np.asarray(instrument_colour(DRUMS))) < 0.1, axis=-1)
    rows = np.nonzero(drum[:, 150:1150].sum(axis=1) > 20)[0]  # rows crossed by many ticks
    assert len(rows) and rows.min() > image.shape[0] * 0.6, rows
    # a piece of drums alone is one lane, with no pitch axis to speak of
    kit = symusic.Score(480)
    kit.tracks.append(_chord(0, 0, (36, 38, 42), is_drum=True))
    kit.dump_midi(str(tmp_path / "kit.mid"))
    alone = imread(str(render_png(tmp_path / "kit.mid", tmp_path / "kit.png")))[..., :3]
    assert alone.shape[:2] == (600, 1400)
    assert [e.label for e in legend_entries(kit)] == ["Drums"]
    assert pianoroll.drum_name(42) == "Closed Hi-Hat" and pianoroll.drum_name(20) == "key 20"
