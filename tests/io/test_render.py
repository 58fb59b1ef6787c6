"""Rendering: FluidSynth WAV of a real POP909 song, piano-roll PNG, soundfont lookup, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import symusic
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.io import render as render_mod
from midiforge.io.render import find_soundfont, pitch_name, render, render_png, render_wav

CLIP_SECONDS = 20.0  # render only this much audio to keep the test fast
MAX_TAIL_SECONDS = 4.0  # FluidSynth's release tail plus its end-of-song padding
MIN_RMS = 0.01  # full scale is 1.0; silence is 0


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


def test_render_png_draws_each_track_in_its_colour(pop_clip: Path, tmp_path: Path) -> None:
    png = render_png(pop_clip, tmp_path / "roll.png")
    image = imread(str(png))[..., :3]  # (H, W, 3) floats
    assert image.shape[:2] == (600, 1400)
    n_tracks = sum(1 for t in symusic.Score(str(pop_clip)).tracks if len(t.notes))
    for i in range(n_tracks):
        colour = np.array(to_rgb(f"C{i}"))
        hits = np.all(np.abs(image - colour) < 0.02, axis=-1).sum()
        assert hits > 50, f"track {i} colour C{i} hardly drawn"


def test_pitch_names_and_bar_lines() -> None:
    assert [pitch_name(p) for p in (21, 60, 61, 69, 108)] == ["A0", "C4", "C♯4", "A4", "C8"]
    score = symusic.Score(480)
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    score.time_signatures.append(symusic.TimeSignature(2880, 4, 4))  # after two 3/4 bars
    assert render_mod._bar_lines(score, 2880 + 1920 * 2) == [0, 1440, 2880, 4800, 6720]


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
    coloured = np.argwhere(np.abs(image[..., :3] - np.array(to_rgb("C0"))).sum(axis=-1) < 0.05)
    assert coloured[:, 1].max() - coloured[:, 1].min() > image.shape[1] * 0.3
