"""Self-conditioning of the diffusion denoiser (Chen et al. 2022), on real Nottingham tunes.

The denoiser reads its own earlier estimate of the clean window beside ``x_t``: training feeds it
a gradient-free estimate for about half the windows and zeros for the rest, evaluation feeds every
window an estimate (the sampler's path), and the sampler hands each step the x̂_0 of the step
before, with the known notes of an inpainted window standing in for their own estimate.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from midiforge.metrics.likelihood import diffusion_loss
from midiforge.models.diffusion_schedule import make_scheduler
from midiforge.sampling.diffusion import sample_window

from ..tiny_diffusion import fit_batch, tiny_model, train_then_eval_loss, window_batch


def _record_estimates(model):
    """Every denoiser call's (x_t, t, estimate, output), through a forward hook."""
    calls = []

    def hook(_module, args, output):
        x, t, _label, estimate = args[:4]
        calls.append((x.clone(), t.clone(), None if estimate is None else estimate.clone(),
                      output.clone()))  # fmt: skip

    return calls, model.unet.register_forward_hook(hook)


def test_the_denoiser_reads_its_estimate_beside_the_noisy_window(datasets):
    plain, _ = tiny_model(datasets)
    model, _ = tiny_model(datasets, self_condition=True)
    assert not plain.config.self_condition  # off unless asked: saved runs load as they were
    assert plain.unet.stem.in_channels == plain.n_features == 3
    assert model.unet.stem.in_channels == 2 * model.n_features
    torch.nn.init.normal_(model.unet.out.weight)  # the zero-initialized head hides everything
    model.eval()
    x = torch.randn(2, model.n_features, 32, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([500, 20])
    with torch.no_grad():
        none = model(x, t, None)
        zeros = model(x, t, None, torch.zeros_like(x))
        some = model(x, t, None, torch.ones_like(x))
    assert torch.equal(none, zeros)  # no estimate yet reads as zeros, as in training
    assert (some - zeros).abs().mean() > 1e-3


def test_training_gives_about_half_the_windows_an_estimate_and_evaluation_all(datasets):
    model, pieces = tiny_model(datasets, self_condition=True)
    torch.nn.init.normal_(model.unet.out.weight)
    batch = window_batch(pieces, 32, count=64)
    calls, hook = _record_estimates(model)
    train_then_eval_loss(model, batch, hook, seed=2)
    assert len(calls) == 4  # an estimating pass, then the trained one, each time
    for first, second in (calls[:2], calls[2:]):
        assert first[2] is None  # the estimating pass reads none (zeros, as tested above)
        assert torch.equal(first[0], second[0])  # the same noisy window twice
        x0, _ = model.schedule.split_prediction(first[3], first[1], first[0])
        read = second[2]
        given = read.abs().sum(dim=(1, 2)) > 0
        assert torch.equal(read[given], x0[given])  # the first pass's x̂_0, not a copy of x_0
    train_share = float((calls[1][2].abs().sum(dim=(1, 2)) > 0).float().mean())
    assert 0.25 < train_share < 0.75, train_share
    assert bool((calls[3][2].abs().sum(dim=(1, 2)) > 0).all())


def test_a_self_conditioned_model_trains(datasets):
    model, pieces = tiny_model(datasets, self_condition=True)
    before, after, out = fit_batch(model, window_batch(pieces, 32), steps=30)
    assert set(out) == {"loss", "mse_log_frequency", "mse_duration", "mse_delta"}
    assert after < 0.9 * before, (before, after)


def test_the_sampler_feeds_each_step_the_estimate_of_the_step_before(datasets):
    model, pieces = tiny_model(datasets, self_condition=True)
    torch.nn.init.normal_(model.unet.out.weight, std=0.05)
    model.eval()
    scheduler = make_scheduler(model.config.schedule, "ddim")
    scheduler.set_timesteps(6)
    known = model.encode(torch.from_numpy(pieces[0][None, :32]))  # (1, F, L)
    context = 10
    mask = torch.arange(32) < context
    calls, hook = _record_estimates(model)
    try:
        out = sample_window(model, scheduler, batch=1, known=known, known_mask=mask,
                            generator=torch.Generator().manual_seed(3))  # fmt: skip
    finally:
        hook.remove()
    assert len(calls) == 6 and calls[0][2] is None
    for before, after in itertools.pairwise(calls):
        x0, _ = scheduler.split_prediction(before[3], before[1][:1], before[0])
        assert torch.allclose(after[2][..., context:], x0[..., context:])
        assert torch.equal(after[2][..., :context], known[..., :context])
    assert torch.equal(out[..., :context], known[..., :context])


def test_the_held_out_denoising_loss_scores_the_self_conditioned_path(datasets):
    model, pieces = tiny_model(datasets, self_condition=True)
    torch.nn.init.normal_(model.unet.out.weight, std=0.05)
    model.eval()
    batch = window_batch(pieces, 32, count=6)
    windows = [{"notes": notes, "mask": torch.ones(32, dtype=torch.bool), "label": label}
               for notes, label in zip(batch["notes"], batch["label"].long())]  # fmt: skip
    calls, hook = _record_estimates(model)
    try:
        loss = diffusion_loss(model, windows, timesteps=2)
    finally:
        hook.remove()
    assert np.isfinite(loss) and len(calls) == 4  # one estimating pass per scored timestep
    for first, second in (calls[:2], calls[2:]):
        assert first[2] is None and torch.equal(first[0], second[0])
        x0, _ = model.schedule.split_prediction(first[3], first[1], first[0])
        assert torch.equal(second[2], x0)
