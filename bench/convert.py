"""Conversion speed: parallel workers against one process, and transcription against real time.

Run from the repository root: ``python bench/convert.py [--files N] [--jobs J]``. Prints

- the speed-up of ``convert(music21:bach, jobs=J)`` over ``jobs=1`` on the same N chorales
  (baseline: the serial run, measured in the same process);
- the real-time factor of basic-pitch transcription (seconds of audio per second of compute) on
  a FluidSynth rendering of a Nottingham tune (baseline: the audio's own duration).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf
import symusic

from midiforge.io.convert import convert
from midiforge.io.render import render_wav
from midiforge.io.transcribe import transcribe

ROOT = Path(__file__).resolve().parents[1]
TUNE = ROOT.parent / "shared" / "datasets" / "nottingham" / "ashover10.mid"
CLIP_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        timings = {}
        for jobs in (1, args.jobs):
            start = time.perf_counter()
            report = convert("music21:bach", tmp / f"j{jobs}", jobs=jobs, limit=args.files)
            timings[jobs] = time.perf_counter() - start
            assert len(report.converted) == args.files, report.skipped
        print(
            f"convert {args.files} chorales: jobs=1 {timings[1]:.2f} s, jobs={args.jobs} "
            f"{timings[args.jobs]:.2f} s, speed-up {timings[1] / timings[args.jobs]:.2f}x"
        )
        clip = symusic.Score(str(TUNE)).to("second").clip(0.0, CLIP_SECONDS, clip_end=True)
        clip.to("tick").dump_midi(str(tmp / "tune.mid"))
        wav = render_wav(tmp / "tune.mid", tmp / "tune.wav", sample_rate=22050)
        audio_s = sf.info(str(wav)).duration
        transcribe(wav)  # warm-up: loads the ONNX model once
        start = time.perf_counter()
        notes = transcribe(wav).note_num()
        compute_s = time.perf_counter() - start
        print(
            f"transcribe {audio_s:.1f} s of audio ({notes} notes) in {compute_s:.2f} s: "
            f"{audio_s / compute_s:.1f}x real time"
        )


if __name__ == "__main__":
    main()
