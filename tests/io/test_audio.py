"""Audio clean-up (format, fixed-length cuts, cuts from a file) and audio → MIDI transcription."""

from __future__ import annotations

from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile as sf
import symusic

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.io.audio import (
    MAX_PIECES,
    MIN_TRIM_SECONDS,
    cut_points,
    process_audio,
    read_audio,
    read_cut_times,
)
from midiforge.io.convert import convert
from midiforge.io.render import render_wav
from midiforge.io.transcribe import transcribe

RATE_HZ = 8000
PCM16_FULL_SCALE = 32768
CLIP_SECONDS = 20.0
MIN_ONSET_F1 = 0.7


@pytest.fixture()
def ramp_wav(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """1.05 s of stereo audio whose left channel is sample index k / 32768 (exact in PCM16)."""
    n = int(1.05 * RATE_HZ)
    left = (np.arange(n) % 30000) / PCM16_FULL_SCALE
    samples = np.stack([left, -left], axis=1).astype(np.float32)  # (N, 2)
    path = tmp_path / "ramp.wav"
    sf.write(str(path), samples, RATE_HZ, subtype="PCM_16")
    return path, samples


def test_trim_every_cuts_at_exact_samples(ramp_wav, tmp_path: Path) -> None:
    path, samples = ramp_wav
    pieces = process_audio(path, tmp_path / "out", trim_every=0.25)
    assert [p.name for p in pieces] == [f"ramp_{i:03d}.wav" for i in range(5)]
    parts = [read_audio(p)[0] for p in pieces]
    assert [len(p) for p in parts] == [2000, 2000, 2000, 2000, 400]
    for i, part in enumerate(parts):  # each piece starts at the sample 2000 * i of the source
        assert part[0, 0] * PCM16_FULL_SCALE == pytest.approx(2000 * i)
    assert np.array_equal(np.concatenate(parts), samples)


def test_trim_at_reads_seconds_from_a_file(ramp_wav, tmp_path: Path) -> None:
    path, samples = ramp_wav
    cuts = tmp_path / "cuts.txt"
    cuts.write_text("# cut list\n0.5\n\n0.1  # intro\n2.0\n")  # unsorted; 2.0 s is past the end
    times = read_cut_times(cuts)
    assert times == [0.1, 0.5, 2.0]
    assert cut_points(len(samples), RATE_HZ, at=times) == [0, 800, 4000, len(samples)]
    report = convert(path, tmp_path / "out", trim_at=cuts, audio_format="flac", jobs=1)
    outputs = [Path(p) for p in report.converted[0]["outputs"]]
    assert [p.name for p in outputs] == ["ramp_000.flac", "ramp_001.flac", "ramp_002.flac"]
    parts = [read_audio(p)[0] for p in outputs]
    assert [len(p) for p in parts] == [800, 3200, len(samples) - 4000]
    assert np.array_equal(np.concatenate(parts), samples)  # FLAC is lossless


def test_format_conversion_and_bad_input(ramp_wav, tmp_path: Path) -> None:
    path, samples = ramp_wav
    (ogg,) = process_audio(path, tmp_path, audio_format="ogg")
    data, rate = read_audio(ogg)
    assert rate == RATE_HZ and data.shape[1] == 2
    assert abs(len(data) - len(samples)) < RATE_HZ // 10  # Vorbis may pad its last block
    # MP3 through libsndfile ≥ 1.1 (bundled with soundfile ≥ 0.12)
    sf.write(str(tmp_path / "tone.mp3"), samples[:, 0], RATE_HZ, format="MP3")
    mp3, mp3_rate = read_audio(tmp_path / "tone.mp3")
    assert mp3_rate == RATE_HZ and len(mp3) >= len(samples) - RATE_HZ // 10
    bad = tmp_path / "cuts.txt"
    bad.write_text("1.0\nsoon\n")
    with pytest.raises(MidiforgeError, match=r"cuts.txt:2"):
        read_cut_times(bad)
    with pytest.raises(MidiforgeError, match="not both"):
        cut_points(100, RATE_HZ, every=1.0, at=[0.5])
    with pytest.raises(MidiforgeError, match="--audio-format"):
        process_audio(path, tmp_path, audio_format="aiff")
    (tmp_path / "noise.wav").write_bytes(b"RIFF not really")
    with pytest.raises(MidiforgeError, match="not a readable audio file"):
        read_audio(tmp_path / "noise.wav")


def test_trim_refuses_absurd_intervals_and_writes_nothing(ramp_wav, tmp_path: Path, capsys) -> None:
    path, _ = ramp_wav
    out = tmp_path / "out"
    for every in (1e-9, MIN_TRIM_SECONDS / 2):  # 1e-9 s once wrote 23,879 files in 60 s
        with pytest.raises(MidiforgeError, match=f"{every:g} s is shorter than the 0.1 s"):
            process_audio(path, out, trim_every=every)
    with pytest.raises(MidiforgeError, match="positive number"):
        cut_points(100, RATE_HZ, every=float("nan"))
    assert not out.exists()
    # the piece count is computed, not listed: a day of audio in 0.1 s pieces is refused at once
    day = 24 * 3600 * RATE_HZ
    with pytest.raises(MidiforgeError, match=f"864000 pieces, more than the {MAX_PIECES}"):
        cut_points(day, RATE_HZ, every=MIN_TRIM_SECONDS)
    many_cuts = [i * 0.5 for i in range(1, MAX_PIECES + 1)]
    assert len(cut_points(day, RATE_HZ, at=many_cuts[:-1])) == MAX_PIECES + 1  # at the limit
    with pytest.raises(MidiforgeError, match=f"--trim-at: .* more than the {MAX_PIECES}"):
        cut_points(day, RATE_HZ, at=many_cuts)
    # the command line refuses before reading or writing anything
    assert main(["convert", str(path), str(out), "--trim-every", "1e-9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trim-every: 1e-09 s is shorter than the 0.1 s" in err[0]
    assert not out.exists()


def _intervals(score: symusic.Score) -> tuple[np.ndarray, np.ndarray]:
    """(onset, offset) seconds and Hz of every non-drum note, as mir_eval wants them."""
    seconds = score.to("second")
    rows = [(n.time, n.end, n.pitch) for t in seconds.tracks if not t.is_drum for n in t.notes]
    rows.sort()
    arr = np.array(rows, dtype=float).reshape(-1, 3)
    return arr[:, :2], 440.0 * 2 ** ((arr[:, 2] - 69) / 12)


def test_transcribing_a_rendered_nottingham_tune(datasets: Path, tmp_path: Path) -> None:
    tune = symusic.Score(str(datasets / "nottingham" / "ashover10.mid")).to("second")
    clip = tune.clip(0.0, CLIP_SECONDS, clip_end=True).to("tick")
    clip.dump_midi(str(tmp_path / "tune.mid"))
    reference = symusic.Score(str(tmp_path / "tune.mid"))
    wav = render_wav(tmp_path / "tune.mid", tmp_path / "tune.wav", sample_rate=22050)
    estimate = transcribe(wav)
    ref_iv, ref_hz = _intervals(reference)
    est_iv, est_hz = _intervals(estimate)
    assert len(ref_hz) > 50
    precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_iv, ref_hz, est_iv, est_hz, offset_ratio=None
    )
    assert f1 >= MIN_ONSET_F1, (precision, recall, f1)
    # through convert(): the same audio becomes a MIDI file in the output tree
    report = convert(wav, tmp_path / "midi", jobs=1)
    (out,) = report.converted[0]["outputs"]
    assert symusic.Score(out).note_num() == estimate.note_num()
