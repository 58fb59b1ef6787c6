"""Nothing a user can hand midiforge crashes it: every command on a hostile set of inputs.

The set (:mod:`tests.hostile`) is random bytes, truncated and bit-flipped real MIDI files,
crafted MIDI with ticks per quarter 0, times past the 32-bit range, a time signature
denominator of 2**255 and a tempo of 0, and RUN dirs copied from two tiny runs that really
trained, each damaged in one way (bad YAML, wrong types, out-of-range values, truncated
safetensors, a pickled state.pt, a crash between a checkpoint's renames, ...). Every command
(prepare, render, generate with and without --primer, train --resume, evaluate --generated)
must end with status 0 or 2, print no traceback, and write nothing outside its output folder
(:mod:`tests.fuzzing`). ``bench/fuzz.py`` runs a larger set of the same kind.
"""

from __future__ import annotations

import pytest
import torch

from . import fuzzing, hostile

REAL_FILES = ("nottingham/ashover1.mid", "pop909/001/001.mid")
PER_FILE = 2  # random files, truncations and bit flips per real file
# evaluated one by one too (the whole hostile folder is evaluated at once as well)
EVALUATE_EACH = ("tpq0", "den255", "huge_at_tpq1", "huge_times", "no_notes", "one_note", "tempo0")


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_no_input_crashes_any_command(datasets, pop909_small, tmp_path, one_thread):
    root = tmp_path / "fuzz"
    midis = hostile.write_midis(root / "midi", [datasets / f for f in REAL_FILES], 0, PER_FILE)
    runs = fuzzing.train_tiny_runs(pop909_small, root / "runs")
    cwd = root / "cwd"
    cwd.mkdir()
    attempts = fuzzing.plan(root, pop909_small, runs, midis, evaluate_each=EVALUATE_EACH)
    fuzzing.run_all(attempts, root, cwd)
    failed = [f"{a.what}: {'; '.join(a.problems)}: {a.stderr[-300:]}" for a in attempts
              if a.problems]  # fmt: skip
    assert not failed, f"{len(failed)} of {len(attempts)} failed:\n" + "\n".join(failed)
    by_what = {a.what: a for a in attempts}
    # the refusals that matter say so, in one line, with status 2
    for what, message in (
        ("train --resume: state: pickled object", "unsafe or damaged file, not loaded"),
        ("generate --primer tpq0.mid (good-lstm)", "ticks per quarter note is 0"),
        ("generate --primer den255.mid (good-lstm)", "time signature 4/0"),
        ("generate --primer huge_at_tpq1.mid (good-lstm)", "the notes end at beat"),
        ("generate: config: dropout 2.0", "model_config.dropout: 2.0 is not accepted"),
        ("generate: weights: truncated", "damaged weights file, not loaded"),
        ("prepare --programs 999", "programs: [999] is not accepted"),
    ):
        assert by_what[what].status == 2 and message in by_what[what].stderr, what
    # the checkpoint beside the interrupted one is found: no "start a new run"
    assert by_what["train --resume: checkpoint: crash between renames"].status == 0
    assert sum(a.subprocess for a in attempts) >= 3
    assert len(attempts) > 200
