"""Write a comparison of model families: ``report.md``, ``report.json``, ``piano_rolls.png``.

The report dict is what :func:`midiforge.training.compare.compare` assembles (its keys are
documented there and in ``docs/benchmarks.md``); this module only lays it out. The piano rolls
are drawn with matplotlib's object API (``Figure``), one panel per family under a held-out
piece, on the same beat axis so their rhythms can be compared by eye.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.metrics.music import DURATION, ONSET, PITCH
from midiforge.metrics.report import _fmt, _json_safe, _table

REPORT_MD, REPORT_JSON, ROLLS_PNG = "report.md", "report.json", "piano_rolls.png"
ROLL_BEATS = 32.0  # beats of each piece drawn (eight 4/4 bars)
ROLL_PANEL_IN = (10.0, 1.6)  # inches per panel
ROLL_DPI = 100
NOTE_HEIGHT = 0.8  # semitones
PITCH_MARGIN = 2  # semitones above and below a panel's notes


def _get(entry: dict[str, Any] | None, *keys: str) -> Any:
    for key in keys:
        if not isinstance(entry, dict):
            return math.nan
        entry = entry.get(key)
    return math.nan if entry is None else entry


# --------------------------------------------------------------------------- markdown


def _ranking(report: dict[str, Any]) -> list[str]:
    fams = report["families"]
    lines = ["## Ranking", "", f"By {report['ranking']['by']}:", ""]
    for place, name in enumerate(report["ranking"]["order"], 1):
        music = fams[name].get("music")
        lines.append(
            f"{place}. **{name}**: overlap / ceiling {_fmt(_get(music, 'overlap_ratio'))} "
            f"(mean overlap {_fmt(_get(music, 'mean_overlap'))})"
        )
    order = report["likelihood_ranking"]["order"]
    lines += ["", f"By {report['likelihood_ranking']['by']}: "]
    lines[-1] += (
        ", ".join(f"{n} ({_fmt(fams[n]['likelihood']['nll_per_note'])})" for n in order)
        if order
        else "no token family was compared."
    )
    return [*lines, ""]


def _training(fams: dict[str, Any]) -> list[str]:
    header = ["family", "parameters", "steps", "stopped by", "training s", "items/s", "notes/s"]
    rows = [
        [
            name,
            f["parameters"],
            f["train"]["steps"],
            f["train"]["reason"],
            f["train"]["seconds"],
            f"{_fmt(f['train']['items_per_s'])} {f['train']['unit']}",
            f["train"]["notes_per_s"],
        ]
        for name, f in fams.items()
    ]
    note = (
        "Training seconds count the optimizer steps only; items are what the loss counts "
        "(tokens or notes); token rates are turned into notes with the dataset's tokens per note."
    )
    return ["## Training", "", note, "", *_table(header, rows)]


def _likelihood(report: dict[str, Any]) -> list[str]:
    fams = report["families"]
    split = report["held_out"]["likelihood_split"]
    rows, heads, diffusion = [], [], []
    for name, f in fams.items():
        ll = f["likelihood"]
        if ll["kind"] == "tokens":
            nats = ll["nll_per_note"]
            rows.append([name, nats, nats / math.log(2), ll["pitch_nll_per_note"],
                         ll["nll_per_token"], ll["notes"]])  # fmt: skip
        elif ll["kind"] == "notes":
            rows.append([name, "–", "–", ll["pitch_nll_per_note"], "–", ll["notes"]])
            heads.append(", ".join(f"{k} {_fmt(v)}" for k, v in ll["per_head"].items()))
            heads[-1] = f"{name}'s heads per note: {heads[-1]} (time: L1, velocity: squared error)"
        else:
            diffusion.append([name, ll["denoising_loss"], ll["timesteps"]])
    header = ["family", "NLL/note (nats)", "bits/note", "pitch NLL/note", "NLL/token", "notes"]
    lines = [
        f"## Held-out likelihood per note ({split} split)",
        "",
        "A token model's NLL/note is its summed NLL over the split divided by the split's notes, "
        "so families with different vocabularies line up. The note LSTM's time and velocity "
        "heads are densities, not probabilities: only its pitch NLL/note is a probability, "
        "comparable in kind with the token models' pitch-token NLL/note (which has already read "
        "the note's position).",
        "",
        *(_table(header, rows) if rows else ["No autoregressive family was compared.", ""]),
        *(line for h in heads for line in (h, "")),
    ]
    if diffusion:
        lines += [
            "Diffusion has no likelihood here. Its denoising loss (masked MSE over a fixed "
            "timestep grid with seeded noise) is **not comparable** with the rows above:",
            "",
            *_table(["family", "denoising loss", "timesteps"], diffusion),
        ]
    return lines


def _music(report: dict[str, Any]) -> list[str]:
    fams = {n: f for n, f in report["families"].items() if f.get("music")}
    ceiling = report["ceiling"]["per_feature"]
    rows = [
        [feature, *(fams[n]["music"]["overlaps"].get(feature, math.nan) for n in fams), value]
        for feature, value in ceiling.items()
    ]
    rows.append(["**mean**", *(fams[n]["music"]["mean_overlap"] for n in fams),
                 report["ceiling"]["mean"]])  # fmt: skip
    rows.append(["**overlap / ceiling**", *(fams[n]["music"]["overlap_ratio"] for n in fams), 1.0])
    held = report["held_out"]
    return [
        "## Music against held-out music (MGEval overlap areas)",
        "",
        f"Each family's {report['sampling']['pieces']} pieces against {held['n_reference']} "
        f"held-out pieces ({' + '.join(held['music_splits'])} splits); the ceiling is one half "
        "of the held-out pieces against the other. A family's mean is over the features finite "
        "for it and for the ceiling.",
        "",
        *_table(["feature", *fams, "ceiling (half vs half)"], rows),
    ]


def _memorization_and_speed(fams: dict[str, Any]) -> list[str]:
    mem_rows, speed_rows = [], []
    for name, f in fams.items():
        mem = _get(f, "music", "memorization")
        mem_rows.append([name, _get(mem, "longest_run_max"), _get(mem, "longest_run_mean"),
                         _get(mem, "share_flagged")])  # fmt: skip
        s = f["sampling"]
        speed_rows.append([name, s["pieces"], s["notes"], s["seconds"], s["notes_per_s"]])
    threshold = next(
        (_get(f, "music", "memorization", "threshold_notes") for f in fams.values()), 0
    )
    return [
        "## Memorization",
        "",
        "Longest run of notes (intervals and onset gaps, any key) a generated piece shares with "
        f"the training pieces; flagged at ≥ {_fmt(threshold)} notes.",
        "",
        *_table(["family", "longest run (max)", "longest run (mean)", "share flagged"], mem_rows),
        "## Sampling speed",
        "",
        "Seconds of the whole `generate` call (loading the run, sampling, writing MIDI).",
        "",
        *_table(["family", "pieces", "notes", "seconds", "notes/s"], speed_rows),
    ]


def report_markdown(report: dict[str, Any]) -> str:
    """The Markdown text of a comparison report."""
    held = report["held_out"]
    skipped = [f"- skipped {line}" for line in report["skipped"].values()]
    lines = [
        f"# Model families compared on {report['data']}",
        "",
        f"Dataset {report['dataset']} ({held['n_training']} training pieces); budget "
        f"{report['budget']['text']}; {report['sampling']['pieces']} pieces of about "
        f"{report['sampling']['notes_asked']} notes sampled per family (seed "
        f"{report['sampling']['seed']}).",
        "",
        *([*skipped, ""] if skipped else []),
        *_ranking(report),
        *_training(report["families"]),
        *_likelihood(report),
        *_music(report),
        *_memorization_and_speed(report["families"]),
        "## Piano rolls",
        "",
        f"The first {ROLL_BEATS:g} beats of a held-out piece and of each family's first piece.",
        "",
        f"![piano rolls]({ROLLS_PNG})",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- piano rolls


def _panel(ax: Any, name: str, notes: np.ndarray) -> None:
    from matplotlib.collections import PolyCollection

    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    notes = notes[notes[:, ONSET] < ROLL_BEATS]
    left = notes[:, ONSET]
    right = np.minimum(left + notes[:, DURATION], ROLL_BEATS)
    low, high = notes[:, PITCH] - NOTE_HEIGHT / 2, notes[:, PITCH] + NOTE_HEIGHT / 2
    corners = ((left, low), (right, low), (right, high), (left, high))
    boxes = np.stack([np.stack(c, axis=1) for c in corners], axis=1)  # (n, 4, 2)
    if len(notes):
        ax.add_collection(PolyCollection(boxes, facecolors="C0", edgecolors="none"))
        ax.set_ylim(notes[:, PITCH].min() - PITCH_MARGIN, notes[:, PITCH].max() + PITCH_MARGIN)
    else:
        ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlim(0, ROLL_BEATS)
    ax.set_ylabel(name, rotation=0, ha="right", va="center")


def piano_rolls_png(rolls: dict[str, np.ndarray], path: Path) -> Path:
    """One panel per entry of ``rolls`` (name → note array ``(n, 3)``), stacked, shared beats."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width, height = ROLL_PANEL_IN
    fig = Figure(figsize=(width, height * max(1, len(rolls))), dpi=ROLL_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(1, len(rolls)), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (name, notes) in zip(axes, rolls.items()):
        _panel(ax, name, notes)
    axes[-1].set_xlabel("beats (quarter notes)")
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def write_compare_report(
    report: dict[str, Any], out: Path, rolls: dict[str, np.ndarray]
) -> list[Path]:
    """Write ``report.md``, ``report.json`` and ``piano_rolls.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / REPORT_MD, out / REPORT_JSON
    md.write_text(report_markdown(report), encoding="utf-8")
    js.write_text(json.dumps(_json_safe(report), indent=1), encoding="utf-8")
    return [md, js, piano_rolls_png(rolls, out / ROLLS_PNG)]
