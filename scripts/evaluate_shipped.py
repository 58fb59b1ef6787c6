"""Figures for the model cards (docs/model-card*.md): a shipped model against held-out music.

    python scripts/evaluate_shipped.py DATASET [--model transformer|diffusion|lstm-multihead]
        [--run RUN] [--n 16] [--tokens 1024] [--notes 256] [--length fixed|held-out] [--out DIR]

For each style label: sample ``--n`` pieces with the model (the shipped ``--model`` unless
``--run``; token models ``--tokens`` tokens, note models about ``--notes`` notes), then compare
them with the dataset's held-out ``test`` files of that style (``midiforge evaluate
--reference-split test --style``), with the ceiling row (two halves of the held-out files
against each other) beside each overlap. Also the model's held-out loss on valid and test (it
needs the RUN dir, whose config names the dataset), and piano rolls of two samples per style
into ``OUT/samples`` (``--samples-png docs/samples`` to refresh the cards' figures). Prints
Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from midiforge.io.render import render_png
from midiforge.metrics.evaluate import evaluate
from midiforge.sampling.generate import generate
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import load_run, shipped_run

FEATURES = (
    "pitch_range",
    "n_pitch_classes_used",
    "pitch_class_entropy",
    "pitch_class_histogram",
    "scale_consistency",
    "polyphony",
    "polyphony_rate",
    "note_density",
    "empty_beat_rate",
    "groove_consistency",
    "ioi_histogram",
    "duration_histogram",
)
PNG_PER_STYLE = 2
DIFFUSION_CONTEXT = 16  # notes each later window reads of the one before
DIFFUSION_STEPS = 50  # DDIM steps per window
# per instrument class: the metrics every pitched class has (drums have their own in the report)
CLASS_FEATURES = ("pitch_range", "polyphony", "note_density", "scale_consistency")


def _number(value: float | None) -> float | None:
    """None for a missing or NaN figure (a class the held-out music of a style lacks)."""
    return None if value is None or math.isnan(value) else float(value)


def print_instrument_rows(reports: dict) -> None:
    """One row per style and instrument class: pieces holding it (generated / held-out) and the
    overlap of a few metrics with the held-out ceiling (``evaluate``'s ``per_instrument``)."""
    print()
    print("| style | instrument class | pieces gen / held-out | "
          + " | ".join(CLASS_FEATURES) + " |")  # fmt: skip
    print("| --- | --- | --- |" + " --- |" * len(CLASS_FEATURES))
    for style, report in reports.items():
        for name, entry in report.get("per_instrument", {}).items():
            cells = []
            for feature in CLASS_FEATURES:
                metric = entry["metrics"].get(feature) or {}
                oa, ceiling = _number(metric.get("oa")), _number(metric.get("ceiling"))
                top = "–" if ceiling is None else f"{ceiling:.2f}"
                cells.append("–" if oa is None else f"{oa:.2f} ({top})")
            print(f"| {style} | {name} | {entry['n_generated']} / {entry['n_reference']} | "
                  + " | ".join(cells) + " |")  # fmt: skip


def print_likelihood(run: Path) -> None:
    """The held-out loss: NLL per token (token models), per head per note (the note LSTM), or
    the denoising loss (diffusion, not a likelihood)."""
    rows = {split: evaluate(run, split=split) for split in ("valid", "test")}
    kind = rows["valid"].get("kind")
    if kind == "tokens":
        print("| split | NLL (nats/token) | bits/token | perplexity | tokens |")
        print("| --- | --- | --- | --- | --- |")
        for split, nll in rows.items():
            print(f"| {split} | {nll['nats']:.3f} | {nll['bits']:.3f} | "
                  f"{nll['perplexity']:.2f} | {nll['count']} |")  # fmt: skip
        return
    print(f"| split | {kind} loss | per head |")
    print("| --- | --- | --- |")
    for split, row in rows.items():
        loss = row.get("denoising_loss", row.get("loss"))
        heads = ", ".join(f"{k} {v:.3f}" for k, v in (row.get("per_head") or {}).items())
        print(f"| {split} | {loss:.3f} | {heads or '–'} |")


def held_out_length(dataset: Path, style: str) -> tuple[int, int]:
    """(tokens, notes): the median length of the style's held-out test pieces, in the
    dataset's tokens and in notes. Why: a feature such as the empty-beat rate depends on how
    long a piece is (POP909's only silent beats are a song's first bar: 1.5 % of a 300-beat
    song, 9 % of a 46-beat sample), so whole samples compare with whole pieces."""
    data = PreparedDataset(dataset)
    label = data.labels.index(style)
    rows = [i for i, lab in enumerate(data.file_labels("test").tolist()) if lab == label]
    tokens, notes = data.tokens("test"), data.notes("test")
    return (
        int(np.median([len(tokens[i]) for i in rows])),
        int(np.median([len(notes[i]) for i in rows])),
    )


def sample_args(model, args: argparse.Namespace, style: str) -> dict:
    """How long a piece is, per sampler: tokens, notes, or diffusion windows of its length;
    ``--length held-out``: as long as the style's held-out pieces."""
    tokens, notes = args.tokens, args.notes
    if args.length == "held-out":
        tokens, notes = held_out_length(args.dataset, style)
    if model.sampler == "tokens":
        return {"max_tokens": tokens}
    if model.sampler == "notes":
        return {"max_tokens": notes}
    window = model.config.length
    number = max(1, 1 + round((notes - window) / (window - DIFFUSION_CONTEXT)))
    return {"number": number, "context": DIFFUSION_CONTEXT, "steps": DIFFUSION_STEPS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path, help="the model's prepared dataset")
    parser.add_argument("--model", default="transformer", help="which shipped model")
    parser.add_argument("--run", type=Path, help="RUN dir (default: the shipped model)")
    parser.add_argument("--n", type=int, default=16, help="samples per style")
    parser.add_argument("--tokens", type=int, default=1024, help="tokens per sample")
    parser.add_argument("--notes", type=int, default=256, help="notes per sample (note models)")
    parser.add_argument(
        "--no-key-memory", dest="key_memory", action="store_false",
        help="let a long sample's key wander (generate --no-key-memory), for a before/after",
    )  # fmt: skip
    parser.add_argument(
        "--length", choices=("fixed", "held-out"), default="fixed",
        help="fixed: --tokens / --notes; held-out: each style's samples as long as its "
             "held-out pieces (their median, in tokens or notes)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="default build/model-card[-MODEL]")
    parser.add_argument(
        "--no-style-parts", dest="style_parts", action="store_false",
        help="write what the model sampled (generate --no-style-parts), for a before/after",
    )  # fmt: skip
    parser.add_argument(
        "--samples-png", type=Path, default=None,
        help="folder for the piano rolls (default OUT/samples; docs/samples refreshes the cards')",
    )  # fmt: skip
    args = parser.parse_args()
    run = args.run or shipped_run(args.model)
    suffix = "" if args.model == "transformer" else f"-{args.model}"
    args.out = args.out or Path(f"build/model-card{suffix}")
    # never docs/samples unless asked: evaluating a candidate must not replace the shipped figures
    args.samples_png = args.samples_png or args.out / "samples"
    model = load_run(run).model
    if args.run:
        print_likelihood(run)

    reports = {}
    for style in json.loads((args.dataset / "manifest.json").read_text())["labels"]:
        out = args.out / style
        start = time.perf_counter()
        result = generate(
            run,
            out_dir=out / "midi",
            n=args.n,
            style=style,
            seed=0,
            device="cpu",
            style_parts=args.style_parts,
            key_memory=args.key_memory,
            **sample_args(model, args, style),
        )
        seconds = time.perf_counter() - start
        reports[style] = evaluate(
            generated=out / "midi",
            reference=args.dataset,
            reference_split="test",
            style=style,
            out=out / "report",
        )
        reports[style]["seconds"] = seconds
        args.samples_png.mkdir(parents=True, exist_ok=True)
        for path in result.paths[:PNG_PER_STYLE]:
            render_png(path, args.samples_png / f"{style}{suffix}_{path.stem}.png")

    styles = list(reports)
    print()
    print("| overlap with held-out test (ceiling) | " + " | ".join(styles) + " |")
    print("| --- |" + " --- |" * len(styles))
    for name in FEATURES:
        cells = []
        for style in styles:
            entry = reports[style]["aggregate"].get(name)
            ceiling = reports[style]["ceiling"].get(name)
            cells.append("–" if entry is None else f"{entry['oa']:.2f} ({ceiling:.2f})")
        print(f"| {name} | " + " | ".join(cells) + " |")
    for kind in ("pitch", "duration"):
        cells = []
        for style in styles:
            fw = reports[style]["framewise"]
            cells.append(
                f"{fw['consistency_variance'][kind]['consistency']:.2f} "
                f"({fw['ceiling'][kind]['consistency']:.2f})"
            )
        print(f"| framewise consistency, {kind} | " + " | ".join(cells) + " |")
    print(
        "| longest run shared with training (notes, max) | "
        + " | ".join(str(max(reports[s]["memorization"]["longest_runs"])) for s in styles)
        + " |"
    )
    print(
        "| pieces / held-out pieces | "
        + " | ".join(f"{reports[s]['n_generated']} / {reports[s]['n_reference']}" for s in styles)
        + " |"
    )
    print(
        "| sampling seconds (all pieces, batch, CPU) | "
        + " | ".join(f"{reports[s]['seconds']:.1f}" for s in styles)
        + " |"
    )
    print_instrument_rows(reports)


if __name__ == "__main__":
    main()
