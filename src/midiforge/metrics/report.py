"""Write an evaluation as ``report.md`` (tables), ``report.json`` (same numbers), and PNGs.

Histograms are drawn with matplotlib's object API (``Figure``), not ``pyplot``, so no global
backend or window state is touched.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.metrics.adherence import report_lines as adherence_lines
from midiforge.metrics.overlap import BOUNDS_DESCRIPTIONS, OVERLAP_BOUNDS

HISTOGRAM_BINS = 20
FIGURE_SIZE_IN = (5.0, 3.2)  # inches
FIGURE_DPI = 100
CV_STATS = ("consistency", "variance")
HISTOGRAMS = (
    "pitch_range",
    "pitch_class_entropy",
    "polyphony",
    "note_density",
    "mean_ioi",
    "empty_beat_rate",
    "groove_consistency",
    "scale_consistency",
)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def histogram_png(name: str, gen: np.ndarray, ref: np.ndarray, path: Path) -> None:
    """Overlaid, normalized histograms of one per-piece metric."""
    from matplotlib.figure import Figure

    gen, ref = gen[np.isfinite(gen)], ref[np.isfinite(ref)]
    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI)
    ax = fig.add_subplot()
    both = np.concatenate([gen, ref])
    if len(both):
        lo, hi = float(both.min()), float(both.max())
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, HISTOGRAM_BINS + 1)
        for values, who in ((ref, "reference"), (gen, "generated")):
            if len(values):
                ax.hist(values, bins=bins, density=True, alpha=0.5, label=f"{who} ({len(values)})")
        ax.legend(fontsize="small")
    ax.set_xlabel(name.replace("_", " "))
    ax.set_ylabel("density")
    fig.tight_layout()
    fig.savefig(path)


def _conventions(result: dict[str, Any]) -> list[str]:
    """The header lines that say how the numbers were computed."""
    bounds = result["overlap_bounds"]
    other = next(b for b in OVERLAP_BOUNDS if b != bounds)
    bars = result["bar_lengths"]
    source = (
        "given for every piece"
        if bars["source"] == "given"
        else "from each MIDI file's first time signature; a dataset's pieces are 4/4"
    )

    def counts(by_length: dict[str, int]) -> str:
        return ", ".join(f"{n} × {length}" for length, n in by_length.items()) or "none"

    return [
        f"Overlap areas (MGEval): kernel densities of intra-set and inter-set distances, "
        f"{BOUNDS_DESCRIPTIONS[bounds]} (overlap bounds `{bounds}`; `{other}`: "
        f"{BOUNDS_DESCRIPTIONS[other]}).",
        "",
        f"Bar lengths in beats ({source}): generated {counts(bars['generated'])}; "
        f"reference {counts(bars['reference'])}.",
        "",
    ]


def _per_file(per_file: list[dict[str, Any]]) -> list[str]:
    """The per-file table; a metric a file lacks (drums where it has none) shows as –."""
    keys: list[str] = []
    for row in per_file:
        keys += [k for k in row if k != "file" and k not in keys]
    keys.sort(key=lambda k: k == "longest_training_run")  # stable: that column last
    rows = [[f["file"], *(f.get(k, math.nan) for k in keys)] for f in per_file]
    return _table(["file", *keys], rows)


def _metric_table(metrics: dict[str, Any], ceiling: dict[str, float], bounds: str) -> list[str]:
    """Both sets' means and spreads, the overlap area and its ceiling, one row per metric."""
    rows = []
    for name, entry in metrics.items():
        g, r = entry.get("generated", {}), entry.get("reference", {})
        stats = [g.get("mean"), g.get("std"), r.get("mean"), r.get("std")]
        rows.append(
            [
                name,
                *(math.nan if v is None else v for v in stats),
                entry["oa"],
                ceiling.get(name, math.nan),
            ]
        )
    header = ["metric", "generated mean", "generated std", "reference mean", "reference std"]
    header += [f"overlap area ({bounds})", "ceiling (reference halves)"]
    return _table(header, rows)


def _aggregate(result: dict[str, Any]) -> list[str]:
    """The aggregate table: both sets' means and spreads, overlap area and its ceiling."""
    bounds = result["overlap_bounds"]
    return ["## Aggregate", "", *_metric_table(result["aggregate"], result["ceiling"], bounds)]


def _per_instrument(result: dict[str, Any]) -> list[str]:
    """One table per instrument class, after a list of the classes and who has them."""
    classes = result["per_instrument"]
    md = [
        "## Per instrument class",
        "",
        "Each class is a General MIDI family of the pitched notes, or the drums, compared "
        "between the pieces that have it. Drums are measured by their onsets: drum-pattern "
        "consistency (MusPy), groove, density and inter-onset intervals; the pitched-only "
        "and duration metrics are skipped for them. The ceiling is the same overlap between "
        "two halves of the reference's pieces of the class.",
        "",
        *_table(
            ["class", "generated pieces", "reference pieces", "present in"],
            [[n, c["n_generated"], c["n_reference"], c["status"]] for n, c in classes.items()],
        ),
    ]
    for name, entry in classes.items():
        where = "" if entry["status"] == "both" else f" ({entry['status']})"
        ceiling = {metric: m.get("ceiling", math.nan) for metric, m in entry["metrics"].items()}
        md += [f"### {name}{where}", ""]
        md += _metric_table(entry["metrics"], ceiling, result["overlap_bounds"])
    return md


def _framewise(framewise: dict[str, Any]) -> list[str]:
    """Mittal et al.'s Consistency/Variance against the reference, and its ceiling row."""
    rows = []
    for who, cv in (
        ("generated vs reference", framewise["consistency_variance"]),
        ("ceiling: reference half vs half", framewise["ceiling"]),
    ):
        rows.append([who] + [cv[k][s] for k in ("pitch", "duration") for s in CV_STATS])
    header = ["comparison"] + [f"{k} {s}" for k in ("pitch", "duration") for s in CV_STATS]
    return [
        "## Framewise self-similarity (Mittal et al. 2021)",
        "",
        "Frames of 4 bars every 2 bars, inside each piece, in its bars (above). Variance compares "
        "two variances of mostly-high overlaps set by a few outlying frames, so it moves a lot "
        "with the pieces drawn: read the ceiling row before the generated one.",
        "",
        *_table(header, rows),
    ]


def write_report(
    result: dict[str, Any],
    out: Path,
    *,
    gen_features: dict[str, np.ndarray],
    ref_features: dict[str, np.ndarray],
) -> list[Path]:
    """Write report.md, report.json and one PNG per histogram metric into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in HISTOGRAMS:
        path = out / f"{name}.png"
        histogram_png(name, gen_features[name], ref_features[name], path)
        written.append(path)
    runs = np.asarray(result["memorization"]["longest_runs"], dtype=np.float64)
    histogram_png("longest_training_run", runs, np.zeros(0), out / "longest_training_run.png")
    written.append(out / "longest_training_run.png")
    mem = result["memorization"]
    md = [
        f"# Evaluation of {result['generated']}",
        "",
        f"Reference: {result['reference']}; {result['n_generated']} generated pieces, "
        f"{result['n_reference']} reference pieces.",
        "",
        *_conventions(result),
        *_aggregate(result),
        *_per_instrument(result),
        *_framewise(result["framewise"]),
        *adherence_lines(result),
        "## Memorization",
        "",
        f"Longest run of notes (intervals and onset gaps, any key) shared with the training "
        f"pieces; flagged at ≥ {mem['threshold_notes']} notes: "
        f"{_fmt(mem['share_flagged'])} of files.",
        "",
        "## Per file",
        "",
        *_per_file(result["per_file"]),
        "## Histograms",
        "",
        *(f"![{p.stem}]({p.name})" for p in written),
        "",
    ]
    (out / "report.md").write_text("\n".join(md), encoding="utf-8")
    (out / "report.json").write_text(json.dumps(_json_safe(result), indent=1), encoding="utf-8")
    return [out / "report.md", out / "report.json", *written]
