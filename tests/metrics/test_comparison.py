"""The scores of ``compare``: copying found exactly, the ceiling's own ratio, the ranking order."""

from __future__ import annotations

import math
import shutil

import pytest

from midiforge.metrics import comparison
from midiforge.metrics.evaluate import load_midi_folder


@pytest.fixture(scope="module")
def tunes(datasets, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tunes")
    for path in sorted((datasets / "nottingham").glob("jigs*.mid"))[:10]:
        shutil.copy(path, folder / path.name)
    return load_midi_folder(folder, "tunes")[1]


def test_training_pieces_played_back_are_flagged_whole(tunes):
    training, reference = tunes[:6], tunes[6:]
    ceiling = comparison.ceiling(reference)
    scores = comparison.music_scores(training[:2], reference, [p.notes for p in training], ceiling)
    mem = scores["memorization"]
    assert mem["longest_run_max"] == max(len(p.notes) for p in training[:2])  # every note
    assert mem["share_flagged"] == 1.0
    assert 0.0 < scores["mean_overlap"] <= 1.5
    assert scores["overlap_ratio"] == pytest.approx(scores["mean_overlap"] / scores["ceiling_mean"])


def test_ranking_puts_higher_ratios_first_and_missing_ones_last():
    def family(ratio, kind="notes", nll=None):
        likelihood = {"kind": kind, "nll_per_note": nll}
        return {
            "music": None if ratio is None else {"overlap_ratio": ratio},
            "likelihood": likelihood,
        }

    families = {
        "gru": family(0.5, "tokens", 3.0),
        "lstm": family(0.9, "tokens", 2.0),
        "transformer": family(None, "tokens", 1.0),
        "diffusion": family(math.nan, "diffusion"),
        "lstm-multihead": family(0.9),
    }
    ranked = comparison.rank(families)
    assert ranked["ranking"]["order"] == [
        "lstm",
        "lstm-multihead",
        "gru",
        "diffusion",
        "transformer",
    ]
    assert ranked["likelihood_ranking"]["order"] == ["transformer", "lstm", "gru"]
