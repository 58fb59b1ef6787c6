"""The memorization audit finds copied runs in any key, against a brute-force search."""

from __future__ import annotations

import numpy as np

from midiforge.metrics import memorization


def _melody(pitches, onsets) -> np.ndarray:
    return np.array([[p, o, 0.5] for p, o in zip(pitches, onsets)], dtype=np.float64)


def test_transposed_copy_is_found_by_hand():
    # training: C D E F G, one per beat. generated: a random note, then the same 5 notes a
    # fifth higher (G A B C D) one beat apart, then a leap: 4 shared moves -> 5 notes.
    train = [_melody([60, 62, 64, 65, 67], [0, 1, 2, 3, 4])]
    gen = _melody([50, 67, 69, 71, 72, 74, 90], [0, 2, 3, 4, 5, 6, 7])
    assert memorization.TrainingIndex(train).longest_shared_run(gen) == 5
    # same pitches but a different rhythm shares fewer moves: only the 3rd -> 4th onset gap of 1
    slow = _melody([67, 69, 71, 72, 74], [0, 2, 4, 5, 7])
    assert memorization.TrainingIndex(train).longest_shared_run(slow) == 2  # 71 -> 72 (+1, 1 beat)
    # nothing in common at all
    assert memorization.TrainingIndex(train).longest_shared_run(_melody([60, 48], [0, 3])) == 0


def test_audit_matches_brute_force_on_random_pieces():
    rng = np.random.default_rng(0)
    train = [
        _melody(rng.integers(55, 67, 40), np.cumsum(rng.integers(0, 3, 40)) / 2) for _ in range(6)
    ]
    generated = []
    for i in range(8):
        piece = _melody(rng.integers(55, 67, 30), np.cumsum(rng.integers(0, 3, 30)) / 2)
        if i % 2 == 0:  # plant a transposed copy of a training passage
            src = train[i % 6][5 : 5 + 4 * i + 3].copy()
            src[:, 0] += 3
            src[:, 1] += piece[-1, 1] + 1
            piece = np.concatenate([piece, src])
        generated.append(piece)
    audit = memorization.memorization_audit(generated, train, threshold_notes=10)
    expected = [memorization.longest_shared_run_exhaustive(g, train) for g in generated]
    assert audit["longest_runs"] == expected
    assert audit["flagged"] == [r >= 10 for r in expected]
    assert audit["share_flagged"] == sum(r >= 10 for r in expected) / 8
    assert max(expected) >= 4 * 6 + 3  # the largest planted copy is found whole
