"""``midiforge benchmark``: train a token model on a published protocol, then score it.

The encodings, the DATASET they are written to and the scoring are
:mod:`midiforge.metrics.benchmarks`; this module adds the part that needs the trainer: small
default models per family and the train-then-score run.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from midiforge.errors import MidiforgeError, choice_error
from midiforge.metrics import benchmarks as bm
from midiforge.store.run_dir import load_run
from midiforge.training.run import train

# Training defaults of `midiforge benchmark` (override with --set train.key=value / model.key=...).
DEFAULT_TRAIN = {
    "steps": 3000,
    "batch_size": 16,
    "seq_len": 256,
    "lr": 1e-3,
    "warmup_steps": 100,
    "eval_every": 250,
    "eval_batches": 16,
    "patience": 4,
}
DEFAULT_MODEL = {
    "transformer": {
        "d_model": 128,
        "n_layers": 3,
        "n_heads": 4,
        "d_ff": 512,
        "dropout": 0.2,
        "max_seq_len": 256,
        "max_rel": 256,
    },
    "lstm": {"d_embed": 256, "d_hidden": 256, "n_layers": 2, "dropout": 0.2},
    "gru": {"d_embed": 256, "d_hidden": 256, "n_layers": 2, "dropout": 0.2},
}
BENCH_MODELS = tuple(DEFAULT_MODEL)
# Why the note families have no score on these protocols, in the line the command prints.
NO_PROTOCOL = {
    "lstm-multihead": "it reads note rows with continuous time and velocity heads and has no "
    "rest or end-of-frame class, so it gives no probability to a voice slot or a roll frame",
    "diffusion": "a denoising model gives no likelihood at all",
}


def check_bench_model(model: str) -> None:
    """Refuse a family the protocols cannot score, saying why in one line."""
    if model in NO_PROTOCOL:
        raise MidiforgeError(
            f"--model {model}: the published protocols score NLL per token (jsb16) or per "
            f"piano-roll frame (polyphonic) of a discrete encoding, and {NO_PROTOCOL[model]}; "
            f"compare it on your music with `midiforge compare DATA --models {model},lstm`"
        )
    if model not in BENCH_MODELS:
        raise choice_error("--model", model, BENCH_MODELS)


def benchmark(
    name: str,
    *,
    corpus: str | None = None,
    model: str = "transformer",
    run: str | Path | None = None,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
    datasets: str | Path | None = None,
    device: str = "auto",
    limit_pieces: int | None = None,
) -> bm.BenchmarkResult:
    """Train (or load with ``run``) a token model on a benchmark and score it as published.

    Parameters
    ----------
    name : ``jsb16`` or ``polyphonic``.
    corpus : the polyphonic set (``jsb``, ``nottingham``, ``musedata``, ``piano``).
    model : ``transformer``, ``lstm`` or ``gru`` (small defaults in ``DEFAULT_MODEL``);
        ``lstm-multihead`` and ``diffusion`` are refused with the reason (``NO_PROTOCOL``).
    run : a RUN dir trained on this benchmark's encoding; skips training.
    out : work folder for the encoded dataset and the run (default ``runs/benchmark-...``).
    overrides : ``train.key=value`` / ``model.key=value`` on top of the defaults.
    datasets : the shared datasets folder (see :func:`midiforge.metrics.benchmarks.datasets_root`).
    device : ``auto``, ``cpu`` or ``cuda`` for training.
    limit_pieces : keep only the first N pieces of each split (smoke tests; not the protocol).
    """
    key = bm.benchmark_key(name, corpus)
    if run is None:
        check_bench_model(model)  # before any encoding is written
    started = time.perf_counter()
    root = bm.datasets_root(datasets)
    tag = key.replace("/", "-")
    work = Path(out) if out else Path("runs") / f"benchmark-{tag}-{model}"
    pieces = bm.encode_benchmark(name, corpus, root)
    if limit_pieces is not None:
        pieces = {split: seqs[:limit_pieces] for split, seqs in pieces.items()}
    data_dir = bm.write_token_dataset(
        work / "dataset", pieces, tag, bm.vocab_size(key), bm.pitch_ids(key)
    )
    if run is None:
        config = {"model": dict(DEFAULT_MODEL[model]), "train": dict(DEFAULT_TRAIN)}
        run = train(
            data_dir,
            model=model,
            config=config,
            overrides=overrides,
            run_dir=work / "run",
            device=device,
        )
    result = bm.score_run(key, load_run(run), pieces, str(run))
    result = dataclasses.replace(result, seconds=time.perf_counter() - started)
    bm.write_result(result, work)
    return result
