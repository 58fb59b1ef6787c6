"""The note-feature families generate instruments: real band MIDI with drums → prepare (every
track, drums kept) → a few training steps → generate → MIDI whose tracks carry the programs the
sampler chose, restricted by ``instruments=``, with one-line errors for instruments never seen."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from midiforge.errors import MidiforgeError
from midiforge.io.midi import load_midi
from midiforge.sampling.autoregressive import sample_notes
from midiforge.sampling.diffusion import generate_notes
from midiforge.sampling.generate import generate
from midiforge.sampling.note_rules import end_on_last_bar_line
from midiforge.schema import FIELD
from midiforge.store.dataset_dir import PreparedDataset
from midiforge.store.run_dir import load_run

from .conftest import train_tiny

L = 32  # notes per training window (and the diffusion model's window)
TRAIN = [f"train.window={L}", "train.seq_len=32", "train.batch_size=4", "train.lr=3e-3",
         "train.warmup_steps=1", "train.eval_every=6", "train.eval_batches=1",
         "train.steps=6"]  # fmt: skip
TINY = {
    "lstm-multihead": ["model.d_pitch=16", "model.d_hidden=32", "model.n_layers=1"],
    "diffusion": [f"model.length={L}", "model.channels=16", "model.channel_mults=[1, 2]",
                  "model.kernel_sizes=[5, 3]", "model.attention_layers=1",
                  "model.attention_heads=2", "model.time_dim=32",
                  "model.schedule.num_train_timesteps=20"],
}  # fmt: skip
SAMPLE = {
    "lstm-multihead": {"max_tokens": 40},
    "diffusion": {"steps": 4, "number": 2, "context": 8},
}


@pytest.fixture(scope="module")
def runs(band: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_tiny(dict.fromkeys(TINY, band), TINY, TRAIN, tmp_path_factory.mktemp("band_runs"))


def _train_programs(band: Path) -> list[int]:
    data = PreparedDataset(band)
    fields = data.manifest["note_fields"]
    flat = np.asarray(data.notes("train").flat).reshape(-1, len(fields))
    return sorted({int(p) for p in flat[:, fields.index("program")]})


def _file_programs(path: Path) -> Counter:
    """Notes per program in a written MIDI file (drums as -1)."""
    counts: Counter = Counter()
    for track in load_midi(path).tracks:
        counts[-1 if track.is_drum else int(track.program)] += len(track.notes)
    return +counts


def _sampled(run: Path, name: str, seed: int, instruments: list[int] | None = None):
    model = load_run(run, device="cpu").model
    if name == "lstm-multihead":  # the files end on the last bar line the notes reach
        drawn = sample_notes(model, n=2, max_notes=40, seed=seed, instruments=instruments)
        return [end_on_last_bar_line(notes, 0)[0] for notes in drawn]
    return generate_notes(model, n=2, steps=4, number=2, context=8, seed=seed,
                          instruments=instruments)  # fmt: skip


@pytest.mark.parametrize("name", list(TINY))
def test_the_run_learns_the_datasets_instruments(runs, band, name):
    config = load_run(runs[name], device="cpu").model.config.programs
    programs = _train_programs(band)
    assert config == programs and -1 in programs and len(programs) > 10


@pytest.mark.parametrize("name", list(TINY))
def test_files_carry_the_programs_the_sampler_chose(runs, band, name, tmp_path):
    # a note run's piece as drawn, not moved onto its style's pickup (which moves its bar lines)
    drawn = {"style_parts": False} if name == "lstm-multihead" else {}
    result = generate(runs[name], out_dir=tmp_path, n=2, seed=5, device="cpu", **SAMPLE[name],
                      **drawn)  # fmt: skip
    known = set(_train_programs(band))
    for path, notes in zip(result.paths, _sampled(runs[name], name, seed=5)):
        chosen = Counter(int(p) for p in notes[:, FIELD["program"]])
        assert _file_programs(path) == chosen
        assert set(chosen) <= known and len(chosen) >= 2  # an untrained head spreads its notes


@pytest.mark.parametrize("name", list(TINY))
def test_instruments_restrict_the_programs(runs, name, tmp_path):
    result = generate(runs[name], out_dir=tmp_path, n=2, seed=1, device="cpu",
                      instruments="bass,drums", **SAMPLE[name])  # fmt: skip
    for path in result.paths:
        played = _file_programs(path)
        assert set(played) == {33, -1}  # bass → Electric Bass (finger), the first bass it knows
        assert min(played.values()) > 0
    # the sampler itself, asked for the same programs directly
    for notes in _sampled(runs[name], name, seed=1, instruments=[33, -1]):
        assert set(notes[:, FIELD["program"]].tolist()) == {33, -1}


@pytest.mark.parametrize("name", list(TINY))
def test_an_instrument_never_seen_names_the_known_ones(runs, name, tmp_path):
    with pytest.raises(MidiforgeError) as err:
        generate(runs[name], out_dir=tmp_path, seed=0, device="cpu", instruments="bagpipe",
                 **SAMPLE[name])  # fmt: skip
    message = str(err.value)
    assert "\n" not in message and "'bagpipe'" in message
    assert "Drums (-1)" in message and "Electric Bass (finger) (33)" in message
    assert not list(tmp_path.glob("*.mid"))


def test_lstm_primer_notes_keep_their_programs(runs, datasets, tmp_path):
    primer = datasets / "robustness" / "MIDIs_multitrack" / "Funkytown.mid"
    result = generate(runs["lstm-multihead"], out_dir=tmp_path, n=1, seed=2, device="cpu",
                      primer=primer, primer_bars=2, max_tokens=20)  # fmt: skip
    from midiforge.data.encode import notes_from_score
    from midiforge.sampling.generate import read_primer

    primer_notes = notes_from_score(read_primer(primer, 2))
    primer_programs = Counter(int(p) for p in primer_notes[:, FIELD["program"]])
    assert len(primer_programs) >= 2 and -1 in primer_programs  # drums are not merged away
    written = _file_programs(result.paths[0])
    assert all(written[p] >= n for p, n in primer_programs.items())
    assert 0 < result.generated[0] <= 20  # cut at the last bar line the 20 notes reach
    assert sum(written.values()) == len(primer_notes) + result.generated[0]


def test_diffusion_continues_a_band_primer_with_its_programs(runs, datasets, tmp_path):
    from midiforge.data.encode import notes_from_score
    from midiforge.sampling.generate import read_primer

    primer = datasets / "robustness" / "MIDIs_multitrack" / "Funkytown.mid"
    result = generate(runs["diffusion"], out_dir=tmp_path, n=1, seed=2, device="cpu",
                      primer=primer, primer_bars=2, steps=4, number=2, context=8,
                      resample=2)  # fmt: skip
    primer_notes = notes_from_score(read_primer(primer, 2))
    assert result.generated == [(L - 8) * 2]
    written = notes_from_score(load_midi(result.paths[0]))
    assert len(written) == len(primer_notes) + (L - 8) * 2
    key = [FIELD[f] for f in ("program", "pitch", "onset")]  # durations: rounded to ticks
    have = Counter(map(tuple, np.round(written[:, key], 2).tolist()))
    want = Counter(map(tuple, np.round(primer_notes[:, key], 2).tolist()))
    assert not want - have  # every primer note is in the file, on its own program's track
    assert -1 in {p for p, *_ in want}
