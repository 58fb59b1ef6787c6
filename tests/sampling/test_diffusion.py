"""Diffusion sampling on a tiny model trained briefly on real Nottingham windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from symusic import Score

from midiforge.data import encode
from midiforge.errors import MidiforgeError
from midiforge.models.diffusion_schedule import make_scheduler
from midiforge.sampling.diffusion import generate_notes, sample_window
from midiforge.schema import NOTE_FIELDS
from tests.models.test_diffusion import TINY, note_windows, nottingham_notes, tiny_model

TUNE_FOLDERS = ("ashover", "jigs")  # two labels for prepare --labels-from folder
TRAIN_STEPS = 20
TIMESTEPS = 50  # trained noise levels: DDPM samples all of them
L = TINY["length"]
PITCH, DURATION, DELTA, ONSET = (
    NOTE_FIELDS.index(f) for f in ("pitch", "duration", "delta", "onset")
)


@pytest.fixture(scope="module")
def one_thread():
    """Toy models run fastest on one thread, and the test machine is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model(datasets, one_thread):
    notes, labels = nottingham_notes(datasets, per_prefix=2)
    model = tiny_model(notes, schedule={"num_train_timesteps": TIMESTEPS})
    batch = note_windows(notes, labels, L)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(TRAIN_STEPS):
        optimizer.zero_grad()
        model.loss(batch)["loss"].backward()
        optimizer.step()
    return model.eval()


def _valid_piece(piece: np.ndarray, n_notes: int) -> None:
    assert piece.shape == (n_notes, len(NOTE_FIELDS))
    assert np.isfinite(piece).all()
    assert piece[:, PITCH].min() >= 0 and piece[:, PITCH].max() <= 127
    assert (piece[:, DELTA] >= 0).all() and (piece[:, DURATION] > 0).all()
    assert np.allclose(np.diff(piece[:, ONSET]), piece[1:, DELTA], atol=1e-5)


@pytest.mark.parametrize("steps", [None, 8])
def test_ddpm_and_ddim_write_files_that_parse(model, steps, tmp_path):
    pieces = generate_notes(model, n=2, steps=steps, seed=1)
    assert len(pieces) == 2
    for i, piece in enumerate(pieces):
        _valid_piece(piece, L)
        path = tmp_path / f"{i}.mid"
        encode.score_from_notes(piece).dump_midi(str(path))
        back = encode.notes_from_score(Score(str(path)))
        assert len(back) == L
        assert sorted(back[:, PITCH].tolist()) == sorted(piece[:, PITCH].tolist())
    again = generate_notes(model, n=2, steps=steps, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(pieces, again))  # seeded
    assert not np.array_equal(pieces[0], generate_notes(model, n=1, steps=steps, seed=2)[0])


def test_ddim_eta_adds_noise(model):
    plain = generate_notes(model, steps=8, eta=0.0, seed=3)[0]
    noisy = generate_notes(model, steps=8, eta=1.0, seed=3)[0]
    assert not np.array_equal(plain, noisy)


def test_continuation_keeps_the_context(model):
    context, number = 12, 3
    one = generate_notes(model, steps=6, seed=4)[0]
    piece = generate_notes(model, steps=6, seed=4, number=number, context=context)[0]
    _valid_piece(piece, L + (L - context) * (number - 1))
    assert np.array_equal(piece[:L], one)  # the first window is the same draw
    # the inpainted window returns its known notes exactly
    scheduler = make_scheduler(model.config.schedule, "ddim")
    scheduler.set_timesteps(6)
    known = model.encode(torch.from_numpy(one[None]))  # (1, F, L)
    mask = torch.arange(L) < context
    out = sample_window(
        model, scheduler, batch=1, known=known, known_mask=mask,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert torch.equal(out[:, :, :context], known[:, :, :context])
    assert not torch.equal(out[:, :, context:], known[:, :, context:])


def test_guidance_follows_the_label(model):
    kwargs = {"steps": 6, "seed": 5, "guidance": 3.0}
    first = generate_notes(model, label="ashover", **kwargs)[0]
    second = generate_notes(model, label="jigs", **kwargs)[0]
    assert not np.array_equal(first, second)
    by_index = generate_notes(model, label=1, **kwargs)[0]
    assert np.array_equal(second, by_index)
    with pytest.raises(MidiforgeError, match="label"):
        generate_notes(model, label="polka", steps=2)


def test_fixed_time_puts_notes_on_a_grid(model):
    piece = generate_notes(model, steps=4, seed=6, fixed_time=0.5, number=2, context=8)[0]
    assert set(np.unique(piece[:, DURATION]).tolist()) == {0.5}
    assert set(np.unique(piece[1:, DELTA]).tolist()) <= {0.0, 0.5}


def test_trace_png_is_written(model, tmp_path):
    path = tmp_path / "trace.png"
    generate_notes(model, steps=10, seed=7, trace=path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 3 * height  # a row of panels
    with pytest.raises(MidiforgeError, match="png"):
        generate_notes(model, steps=2, trace=tmp_path / "trace.jpg")


def test_bad_arguments_name_the_fix(model):
    with pytest.raises(MidiforgeError, match="context"):
        generate_notes(model, steps=2, number=2, context=L)
    with pytest.raises(MidiforgeError, match="steps"):
        generate_notes(model, steps=0)
    with pytest.raises(MidiforgeError, match="number"):
        generate_notes(model, steps=2, number=0)


def test_generate_command_runs_a_trained_diffusion_run(datasets, tmp_path, monkeypatch, one_thread):
    """prepare → train → ``midiforge generate RUN --steps … --number … --trace`` end to end."""
    from midiforge import api
    from midiforge.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    src = tmp_path / "midi"
    for prefix in TUNE_FOLDERS:
        (src / prefix).mkdir(parents=True)
        for path in sorted((datasets / "nottingham").glob(f"{prefix}*.mid"))[:4]:
            (src / prefix / path.name).write_bytes(path.read_bytes())
    api.prepare(src, tmp_path / "data", labels_from="folder", jobs=1, quiet=True)
    overrides = [f"model.{k}={json.dumps(v)}" for k, v in TINY.items() if k != "n_labels"]
    overrides += ["model.schedule.num_train_timesteps=20", f"train.window={L}",
                  "train.steps=4", "train.batch_size=4", "train.eval_every=4"]  # fmt: skip
    run = api.train(tmp_path / "data", model="diffusion", overrides=overrides,
                    run_dir=tmp_path / "run", device="cpu")  # fmt: skip
    state = json.loads((run / "data_state.json").read_text())
    assert state["labels"] == list(TUNE_FOLDERS)
    assert state["features"]["features"] == ["log_frequency", "duration", "delta"]
    out, trace = tmp_path / "out", tmp_path / "trace.png"
    argv = ["generate", str(run), "-o", str(out), "--n", "2", "--steps", "5", "--number", "2",
            "--context", "8", "--style", "jigs", "--guidance", "2", "--seed", "3",
            "--trace", str(trace), "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    files = sorted(out.glob("*.mid"))
    assert len(files) == 2 and trace.is_file()
    for path in files:
        assert Score(str(path)).note_num() == L + (L - 8)
    assert main(["generate", str(run), "-o", str(out), "--steps", "0", "--device", "cpu"]) == 2


def _primer(datasets, notes: int = 20) -> np.ndarray:
    path = sorted((datasets / "nottingham").glob("reels*.mid"))[0]  # not a training tune
    return encode.notes_from_score(Score(str(path)))[:notes]


def test_a_primer_is_kept_exactly_and_seeds_the_first_window(model, datasets):
    primer, context, number = _primer(datasets), 12, 2
    piece = generate_notes(model, steps=6, seed=8, primer=primer, context=context, number=number)[0]
    _valid_piece(piece[len(primer) :], (L - context) * number)
    assert np.array_equal(piece[: len(primer)], primer)  # every field of every primer note
    assert piece[len(primer), ONSET] >= primer[-1, ONSET]  # new notes follow the primer
    # the primer's last notes are the first window's known part: another primer tail changes it
    other = primer.copy()
    other[-context:, PITCH] = np.clip(other[-context:, PITCH] + 7, 0, 127)
    other[:, 1] = encode.frequency_hz(other[:, PITCH])
    moved = generate_notes(model, steps=6, seed=8, primer=other, context=context, number=1)[0]
    assert not np.array_equal(moved[len(primer) :], piece[len(primer) : len(primer) + L - context])
    short = generate_notes(model, steps=4, seed=8, primer=primer[:3], context=context)[0]
    assert len(short) == 3 + L - 3  # a primer shorter than C is all known
    with pytest.raises(MidiforgeError, match="primer"):
        generate_notes(model, steps=2, primer=primer[:0])


def test_resampling_repeats_each_inpainted_step_and_keeps_the_context(model, datasets):
    calls = []
    hook = model.unet.register_forward_hook(lambda *_: calls.append(1))
    primer, steps, rounds = _primer(datasets), 6, 3
    try:
        plain = generate_notes(model, steps=steps, seed=9, primer=primer, context=8)[0]
        plain_calls = len(calls)
        again = generate_notes(model, steps=steps, seed=9, primer=primer, context=8,
                               resample=rounds)[0]  # fmt: skip
    finally:
        hook.remove()
    assert plain_calls == steps
    assert len(calls) - plain_calls == (steps - 1) * rounds + 1  # the last step is not repeated
    assert np.array_equal(again[: len(primer)], primer)
    assert not np.array_equal(again, plain)
    with pytest.raises(MidiforgeError, match="resample"):
        generate_notes(model, steps=2, primer=primer, resample=0)
    from midiforge.sampling.options import GenerateOptions

    with pytest.raises(MidiforgeError, match="resample"):
        GenerateOptions(resample=0)
