"""The listening guide's files (docs/samples/README.md): short samples you can hear in a browser.

    PYTHONPATH=src python scripts/render_samples.py [--datasets ../shared/datasets]
        [--out docs/samples] [--device cpu] [--models transformer,diffusion,lstm-multihead]

For each shipped model (``generate --model transformer|diffusion|lstm-multihead``) and each
style (pop, folk, chorale) it writes ``SAMPLES_PER_STYLE`` pieces of ``SECONDS`` seconds (seed
``SEED``, one batch per style: the same call as ``midiforge generate --model M --style S -n 2
--seconds 16 --seed 0``), and for each style one real held-out piece cut to the same number of
beats (:data:`REFERENCES`). ``--seconds``, not ``--bars``: bars count in the time signature the
model writes, and a model trained before POP909 was put on its annotated bars writes POP909's
1/4 (most of POP909's files declare it), where 8 bars last 4 s. Every piece is kept as MIDI,
rendered through FluidSynth by midiforge's own :func:`midiforge.io.render.render_wav`,
encoded as compressed audio (stereo Ogg Vorbis at :data:`VORBIS_QUALITY`) and drawn as a
piano roll by :func:`midiforge.io.render.render_png`::

    docs/samples/{style}-{model}-{k}.{mid,ogg,png}   k = 1, 2
    docs/samples/{style}-reference.{mid,ogg,png}
    docs/samples/harmonize-{model}.{mid,ogg,png}, harmonize-melody.{mid,ogg,png}

The ``harmonize`` part takes the folk reference's melody alone (its violin track, the same 32
beats) and has each model accompany it (``midiforge generate --model M --style folk
--harmonize harmonize-melody.mid --seed 0``), to hear beside the reference's own chords.
``--parts styles`` or ``--parts harmonize`` renders one part only.

It prints one line per piece (seconds, notes, bytes). The whole run takes about 9 CPU minutes
(33 minutes on two cores shared with other jobs), most of it the diffusion model's 50 DDIM
steps per window. The MIDI files come out the same byte for byte on a rerun. The older piano
rolls in docs/samples/ (``{style}[-model]_sample_00k.png``, linked by the model cards) come from
``scripts/evaluate_shipped.py`` and are left alone.

Why Vorbis in an .ogg: every current browser plays it in an ``<audio>`` element or a plain link,
libsndfile (soundfile) writes it with no extra program, and at a modest quality a 20 s clip is
about 200 kilobytes. Stereo, as FluidSynth renders it: the General MIDI font's piano and strings
are stereo samples (side/mid energy 0.55-0.77 in the pop and chorale references), so a mono
mix would not be what ``midiforge render`` plays; it costs about 1.5 times the bytes of mono.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import symusic

from midiforge.data.corpora import jsb_score, with_part_programs
from midiforge.errors import MidiforgeError
from midiforge.io.audio import read_audio
from midiforge.io.bounds import notes_end_seconds
from midiforge.io.render import render_png, render_wav
from midiforge.sampling.generate import generate
from midiforge.sampling.options import TEMPO_BPM

MODELS = ("transformer", "diffusion", "lstm-multihead")  # midiforge.assets.SHIPPED
STYLES = ("pop", "folk", "chorale")  # the labels of the shipped models' dataset
SAMPLES_PER_STYLE = 2
SECONDS = 16  # per sample: the whole bars in 32 beats at the 120 bpm the models write
SEED = 0  # the model cards' seed
REFERENCE_BEATS = round(SECONDS * TEMPO_BPM / 60)  # a reference is cut to as many quarter
# notes as a sample holds (32), at the bar line nearest to that
HARMONIZED = "folk"  # the style whose reference melody the models accompany
PARTS = ("styles", "harmonize")
VORBIS_QUALITY = 0.2  # libsndfile's 0..1 scale (Vorbis -q 2): about 80 kbit/s stereo, 44.1 kHz


@dataclass(frozen=True)
class Reference:
    """A held-out piece: its file under the shared datasets folder and how it is read."""

    corpus: str  # a key of midiforge.data.corpora.PART_PROGRAMS
    path: str  # relative to the datasets folder
    jsb_test_index: int | None = None  # the chorales ship as JSON: the piece's test index


# The first piece of each style in the ``test`` split of the dataset the three shipped models
# were trained on (build/default/dataset/manifest.json, files sorted by path): music none of
# them has seen. Licences: POP909 MIT; Nottingham and the JSB chorales public domain.
REFERENCES = {
    "pop": Reference("pop909", "pop909/006/006.mid"),
    "folk": Reference("nottingham", "nottingham/ashover12.mid"),
    "chorale": Reference("jsb", "jsb_chorales/Jsb16thSeparated.json", jsb_test_index=0),
}


def read_reference(datasets: Path, ref: Reference) -> symusic.Score:
    """The reference as the models learned it: each part with its GM program (corpora.py)."""
    source = datasets / ref.path
    if not source.is_file():
        raise MidiforgeError(f"--datasets: {source} does not exist; give the shared datasets")
    if ref.jsb_test_index is not None:
        return jsb_score(json.loads(source.read_text())["test"][ref.jsb_test_index])
    return with_part_programs(symusic.Score(str(source)), ref.corpus)


def cut_beats(score: symusic.Score, beats: int) -> symusic.Score:
    """``beats`` quarter notes of ``score`` from the bar of its first note, ending at the bar line
    nearest to that length (notes cut there), moved to start at tick 0."""
    downbeats = np.asarray(score.get_downbeats(), np.int64)
    first = min(int(track.notes.numpy()["time"].min()) for track in score.tracks if track.notes)
    start = int(downbeats[downbeats <= first].max()) if (downbeats <= first).any() else 0
    want = start + beats * score.ticks_per_quarter
    end = int(downbeats[np.abs(downbeats - want).argmin()]) if len(downbeats) else want
    end = end if end > start else want
    return score.clip(start, end, clip_end=True).shift_time(-start)


def encode(wav: Path, out: Path) -> Path:
    """The stereo WAV as Vorbis in ``out`` (.ogg), at :data:`VORBIS_QUALITY`, written atomically."""
    samples, rate = read_audio(wav)
    part = out.with_name(f".{out.name}.part")
    soundfile.write(
        str(part), samples, rate, format="OGG", subtype="VORBIS",
        compression_level=1.0 - VORBIS_QUALITY,  # libsndfile: quality = 1 - compression level
    )  # fmt: skip
    part.replace(out)
    return out


def publish(midi: Path, out: Path, stem: str, work: Path) -> list[Path]:
    """Copy ``midi`` to ``out/stem.mid`` and write its audio and piano roll beside it."""
    target = out / f"{stem}.mid"
    target.write_bytes(midi.read_bytes())
    wav = render_wav(target, work / f"{stem}.wav")
    files = [target, encode(wav, out / f"{stem}.ogg"), render_png(target, out / f"{stem}.png")]
    score = symusic.Score(str(target))
    sizes = " + ".join(f"{f.suffix[1:]} {f.stat().st_size / 1024:.0f} KB" for f in files)
    print(f"{stem:28s} {notes_end_seconds(score):5.1f} s  {score.note_num():4d} notes  {sizes}")
    return files


def render_harmonized(datasets: Path, out: Path, work: Path, device: str, models) -> list[Path]:
    """The folk reference's melody alone, and each model's accompaniment under it."""
    cut = cut_beats(read_reference(datasets, REFERENCES[HARMONIZED]), REFERENCE_BEATS)
    cut.tracks = [cut.tracks[0]]  # Nottingham: track 0 is the tune, track 1 its chords
    melody = work / "harmonize-melody.mid"
    cut.dump_midi(str(melody))
    written = publish(melody, out, "harmonize-melody", work)
    for model in models:
        result = generate(model=model, out_dir=work / model / "harmonize", n=1,
                          style=HARMONIZED, harmonize=melody, seed=SEED, device=device)  # fmt: skip
        written += publish(result.paths[0], out, f"harmonize-{model}", work)
    return written


def render_samples(
    datasets: Path,
    out: Path,
    device: str = "cpu",
    models: tuple[str, ...] = MODELS,
    parts: tuple[str, ...] = PARTS,
) -> list[Path]:
    """Write the samples of ``models`` and every reference of the listening guide into
    ``out`` (``parts``: the styles' samples, the harmonized melody); return the files."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="midiforge-samples-") as tmp:
        work = Path(tmp)
        if "harmonize" in parts:
            written += render_harmonized(datasets, out, work, device, models)
        for style in STYLES if "styles" in parts else ():
            cut = cut_beats(read_reference(datasets, REFERENCES[style]), REFERENCE_BEATS)
            cut.dump_midi(str(work / f"{style}-reference.mid"))
            written += publish(work / f"{style}-reference.mid", out, f"{style}-reference", work)
            for model in models:
                result = generate(
                    model=model,
                    out_dir=work / model / style,
                    n=SAMPLES_PER_STYLE,
                    style=style,
                    seconds=SECONDS,
                    seed=SEED,
                    device=device,
                )
                for k, path in enumerate(result.paths, start=1):
                    written += publish(path, out, f"{style}-{model}-{k}", work)
    total = sum(f.stat().st_size for f in written)
    print(f"{len(written)} files, {total / 1e6:.2f} MB in {out}")
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--out", type=Path, default=Path("docs/samples"))
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda (default: cpu)")
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated shipped models to render"
    )
    parser.add_argument("--parts", default=",".join(PARTS), help="styles and/or harmonize")
    args = parser.parse_args()
    models = tuple(m for m in args.models.split(",") if m)
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        parser.error(f"--models: {', '.join(unknown)} unknown; accepted: {', '.join(MODELS)}")
    parts = tuple(p for p in args.parts.split(",") if p)
    if not parts or any(p not in PARTS for p in parts):
        parser.error(f"--parts: {args.parts!r}; accepted: a comma-separated subset of {PARTS}")
    render_samples(args.datasets, args.out, args.device, models, parts)


if __name__ == "__main__":
    main()
