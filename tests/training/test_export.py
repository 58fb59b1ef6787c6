"""Exporting a run for shipping: half-precision weights that load and predict like the run."""

from __future__ import annotations

import stat

import torch
from safetensors import safe_open

from midiforge.training.checkpoint import WEIGHTS_FILE, export_run, load_run
from midiforge.training.run import train

from .conftest import tiny


def test_export_run_halves_weights_and_keeps_predictions(pop909_small, tmp_path):
    run = train(
        pop909_small,
        model="transformer",
        overrides=tiny("transformer", steps=2),
        run_dir=tmp_path / "run",
        device="cpu",
    )
    shipped = export_run(run, tmp_path / "shipped", dataset="twelve POP909 songs")
    assert sorted(p.name for p in shipped.iterdir()) == [
        "config.yaml",
        WEIGHTS_FILE,
        "tokenizer.json",
    ]
    with safe_open(str(shipped / WEIGHTS_FILE), framework="pt") as fh:
        dtypes = {fh.get_tensor(k).dtype for k in fh.keys()}  # noqa: SIM118
    assert dtypes == {torch.float16}
    size = (shipped / WEIGHTS_FILE).stat().st_size
    assert size < 0.6 * (run / WEIGHTS_FILE).stat().st_size
    for path in [shipped, *shipped.iterdir()]:
        assert path.stat().st_mode & stat.S_IROTH, f"{path} is not readable by others"

    assert load_run(shipped).config["dataset"] == "twelve POP909 songs"  # no training-machine path
    original, exported = load_run(run).model, load_run(shipped).model
    assert next(exported.parameters()).dtype == torch.float32  # cast back on load
    tokens = torch.randint(0, original.config.vocab_size, (2, 16))
    with torch.no_grad():
        a, _ = original(tokens)
        b, _ = exported(tokens)
    assert torch.allclose(a, b, atol=2e-2), (a - b).abs().max()
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.95
