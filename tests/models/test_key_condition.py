"""Key conditioning of the diffusion denoiser, on real Nottingham tunes.

A ``key_condition`` model is told each window's diatonic scale (named by its major tonic): in
training the scale its own notes are in, in scoring the same, in sampling one scale for every
window of a piece (``--key``'s, the chords', the primer's, or one drawn).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from midiforge.metrics.likelihood import diffusion_loss
from midiforge.metrics.pitch import scale_consistency
from midiforge.models import registry
from midiforge.models.note_features import NO_SCALE, window_scales
from midiforge.pitches import diatonic_scale, key_scale
from midiforge.sampling.diffusion import generate_notes, guided_output, piece_keys
from midiforge.sampling.musical import Musical
from midiforge.schema import FIELD

from ..tiny_diffusion import TINY, fit_batch, tiny_model, train_then_eval_loss, tunes, window_batch


def _model(datasets, **options):
    return tiny_model(datasets, key_condition=True, **options)


def _told(model):
    """The scale indices every denoiser call is told, through a hook on the key embedding."""
    seen: list[torch.Tensor] = []
    hook = model.unet.key_emb.register_forward_hook(lambda _m, args, _o: seen.append(args[0]))
    return seen, hook


def test_a_key_is_named_by_the_major_tonic_of_its_scale():
    assert key_scale("C") == key_scale("A minor") == key_scale("D dorian") == 0
    assert key_scale("G") == key_scale("E minor") == key_scale("D mixolydian") == 7
    assert key_scale("Eb") == key_scale("C minor") == 3
    d_major = [2, 4, 6, 7, 9, 11, 1]
    assert diatonic_scale(d_major) == 2
    assert diatonic_scale([*d_major, 8]) == 2  # a G# too: A major holds 7 as well; the lowest
    assert diatonic_scale([*d_major, 8, 8]) == 9  # G# twice: A major holds 8, D major 7


def test_a_window_is_in_the_scale_that_holds_most_of_its_notes(datasets):
    pieces = tunes(datasets)
    batch = window_batch(pieces, 32)
    scales = window_scales(batch["notes"])
    for notes, scale in zip(batch["notes"].numpy(), scales.tolist()):
        classes = np.rint(notes[:, FIELD["pitch"]]).astype(int) % 12
        held = np.isin(classes, [(scale + s) % 12 for s in (0, 2, 4, 5, 7, 9, 11)]).mean()
        assert held == pytest.approx(scale_consistency(notes))  # the best of the 24 scales
    moved = batch["notes"].clone()
    moved[..., FIELD["pitch"]] += 5  # a fourth up: every scale moves with it
    assert torch.equal(window_scales(moved), (scales + 5) % 12)
    drums = batch["notes"][:2].clone()
    drums[..., FIELD["program"]] = -1  # drums are not in a key
    assert window_scales(drums).tolist() == [NO_SCALE, NO_SCALE]
    masked = torch.zeros(2, 32, dtype=torch.bool)
    assert window_scales(batch["notes"][:2], masked).tolist() == [NO_SCALE, NO_SCALE]


def test_training_tells_each_window_its_own_scale_and_sometimes_none(datasets):
    model, pieces = _model(datasets)
    assert not registry.build("diffusion", TINY).config.key_condition  # off unless asked
    batch = window_batch(pieces, 32, count=64)
    batch["notes"][::2, :, FIELD["pitch"]] += 3  # half the windows in other keys
    truth = window_scales(batch["notes"])
    seen, hook = _told(model)
    train_then_eval_loss(model, batch, hook, seed=4)
    trained, scored = seen
    told = trained != NO_SCALE
    assert torch.equal(trained[told], truth[told])
    assert 0.8 < float(told.float().mean()) < 1.0  # dropped as often as the label (0.1)
    assert torch.equal(scored, truth)  # evaluation tells every window


def test_a_key_conditioned_model_trains_and_hears_the_key(datasets):
    model, pieces = _model(datasets)
    batch = window_batch(pieces, 32)
    before, after, _ = fit_batch(model, batch, steps=30)
    assert after < 0.9 * before, (before, after)
    model.eval()
    x = torch.randn(4, model.n_features, 32, generator=torch.Generator().manual_seed(5))
    t = torch.full((4,), 300)
    with torch.no_grad():
        none = model(x, t, None)
        told = model(x, t, None, key=torch.full((4,), NO_SCALE))
        other = model(x, t, None, key=torch.full((4,), 6))
    assert torch.equal(none, told)  # no key is the "not told" embedding
    assert (other - none).abs().mean() > 1e-4


def test_the_held_out_loss_tells_each_window_its_scale(datasets):
    model, pieces = _model(datasets)
    batch = window_batch(pieces, 32, count=6)
    windows = [{"notes": notes, "mask": torch.ones(32, dtype=torch.bool), "label": label}
               for notes, label in zip(batch["notes"], batch["label"].long())]  # fmt: skip
    seen, hook = _told(model)
    try:
        loss = diffusion_loss(model, windows, timesteps=2)
    finally:
        hook.remove()
    assert np.isfinite(loss) and len(seen) == 2
    assert all(torch.equal(s, window_scales(batch["notes"])) for s in seen)


def test_every_window_of_a_piece_is_told_the_same_scale(datasets):
    model, pieces = _model(datasets)
    gen = torch.Generator().manual_seed(6)
    assert piece_keys(registry.build("diffusion", TINY), 3, gen) is None  # other models
    drawn = piece_keys(model, 64, torch.Generator().manual_seed(6))
    again = piece_keys(model, 64, torch.Generator().manual_seed(6))
    assert torch.equal(drawn, again) and len(set(drawn.tolist())) > 6  # seeded, all keys
    assert bool(((drawn >= 0) & (drawn < 12)).all())
    musical = Musical(key="E minor")
    assert piece_keys(model, 2, gen, musical, pieces[0]).tolist() == [7, 7]  # --key first
    chords = Musical(chords="F Bb C F")
    assert piece_keys(model, 2, gen, chords, pieces[0]).tolist() == [5, 5]  # then chords
    primer = pieces[0][:40]
    expected = int(window_scales(torch.from_numpy(primer)[None])[0])
    assert piece_keys(model, 2, gen, None, primer).tolist() == [expected] * 2
    folk = {"D major": 30, "G major": 20, "E minor": 0, "A minor": 5}  # a style's keys
    told = piece_keys(model, 64, torch.Generator().manual_seed(6), style_keys=folk)
    assert set(told.tolist()) == {key_scale("D major"), key_scale("G major"), key_scale("A minor")}
    assert told.tolist().count(key_scale("D major")) > told.tolist().count(key_scale("A minor"))
    assert piece_keys(model, 2, gen, musical, style_keys=folk).tolist() == [7, 7]  # --key wins

    model.eval()
    seen, hook = _told(model)
    try:
        out = generate_notes(model, n=2, number=2, steps=3, seed=7, rules=None)
    finally:
        hook.remove()
    keys = piece_keys(model, 2, torch.Generator().manual_seed(7))
    assert len(out) == 2 and len(seen) == 6  # 3 steps × 2 windows
    assert all(torch.equal(s, keys) for s in seen)


def test_key_guidance_moves_the_output_away_from_the_one_told_no_key(datasets):
    model, _ = _model(datasets)
    torch.nn.init.normal_(model.unet.out.weight, std=0.05)
    model.eval()
    x = torch.randn(3, model.n_features, 32, generator=torch.Generator().manual_seed(8))
    key, none = torch.tensor([0, 7, 2]), torch.full((3,), NO_SCALE)
    t = torch.full((3,), 400)
    with torch.no_grad():

        def out(label, told):
            return model(x, t, torch.full((3,), label), None, told)

        plain = guided_output(model, x, 400, 1, 1.0, None, key, 1.0)
        keyed = guided_output(model, x, 400, 1, 1.0, None, key, 3.0)
        both = guided_output(model, x, 400, 1, 2.0, None, key, 3.0)
        unkeyed = guided_output(model, x, 400, 1, 2.0, None, None, 3.0)
        styled = {"key": out(-1, key) + 2.0 * (out(1, key) - out(-1, key)),
                  "none": out(-1, none) + 2.0 * (out(1, none) - out(-1, none))}  # fmt: skip
    torch.testing.assert_close(plain, out(1, key))  # 1 = the key as told
    torch.testing.assert_close(keyed, out(1, none) + 3.0 * (out(1, key) - out(1, none)))
    torch.testing.assert_close(both, styled["none"] + 3.0 * (styled["key"] - styled["none"]))
    torch.testing.assert_close(unkeyed, styled["none"])  # no key: only the style is guided
    assert (keyed - plain).abs().mean() > 1e-4
