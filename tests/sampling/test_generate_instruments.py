"""Asking token models for instruments, end to end: band songs with drums → prepare (Program
tokens in one stream) → a few training steps of a tiny transformer and a tiny LSTM →
``generate(instruments=...)`` and primers with two instruments → MIDI whose tracks carry only
what was asked, each with notes."""

from __future__ import annotations

from pathlib import Path

import pytest

import midiforge
from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS, instrument_name
from midiforge.io.midi import load_midi, save_midi
from midiforge.sampling.generate import generate, read_primer

from .conftest import train_tiny

TRAIN = ["train.batch_size=4", "train.seq_len=32", "train.window=32", "train.lr=3e-3",
         "train.warmup_steps=2", "train.eval_every=100", "train.eval_batches=1",
         "train.steps=60"]  # fmt: skip
TINY = {
    "transformer": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64",
                    "model.max_seq_len=64", "model.max_rel=32"],
    "lstm": ["model.d_embed=32", "model.d_hidden=32", "model.n_layers=1", "train.lr=0.02"],
}  # fmt: skip
SAMPLE = {"n": 3, "max_tokens": 160, "seed": 0, "grammar_mask": True, "device": "cpu"}
BASS, CLAVINET, GUITAR = 33, 7, 24  # what "bass", "piano" and "guitar" mean for the band songs
PRIMER_SONG = "All The Small Things.mid"  # Finger Bass (33) and drums among its tracks
SLAP_BASS_2 = 37  # not in the band songs: a primer's Slap Bass 2 continues on the Finger Bass


@pytest.fixture(scope="module")
def runs(band: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_tiny(dict.fromkeys(TINY, band), TINY, TRAIN, tmp_path_factory.mktemp("band_runs"))


def played(path: Path) -> dict[int, int]:
    """Program (-1 = drums) → notes, for the tracks of a written file that hold notes."""
    out: dict[int, int] = {}
    for track in load_midi(path).tracks:
        if track.note_num():
            program = DRUMS if track.is_drum else track.program
            out[program] = out.get(program, 0) + track.note_num()
            assert track.name == instrument_name(program)
    return out


@pytest.mark.parametrize("family", list(TINY))
def test_every_file_plays_exactly_the_requested_instruments(runs, family, tmp_path) -> None:
    result = generate(runs[family], out_dir=tmp_path, instruments="bass,drums", **SAMPLE)
    assert len(result.paths) == 3
    for path in result.paths:
        notes = played(path)
        assert set(notes) == {BASS, DRUMS}, (path.name, notes)


def test_python_api_resolves_families_to_what_the_model_knows(runs, tmp_path) -> None:
    # "piano" is the band songs' one piano-family program, a Clavinet with 32 training notes:
    # the steer makes it play beside the bass in every file
    result = midiforge.generate(runs["transformer"], out_dir=tmp_path, instruments="Piano, 33",
                                **SAMPLE)  # fmt: skip
    for path in result.paths:
        assert set(played(path)) == {CLAVINET, BASS}


def test_an_instrument_the_model_never_saw_is_one_line_naming_what_it_knows(
    runs, tmp_path, capsys
) -> None:
    with pytest.raises(MidiforgeError) as caught:
        generate(runs["lstm"], out_dir=tmp_path, instruments="bass,violin", **SAMPLE)
    message = str(caught.value)
    assert "\n" not in message and "never learned 'violin'; it knows Drums (-1)" in message
    assert "Electric Bass (finger) (33)" in message and "Viola (41)" in message
    assert not any(tmp_path.iterdir())
    code = main(["generate", str(runs["transformer"]), "-o", str(tmp_path / "cli"), "-n", "1",
                 "--instruments", "violin", "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "never learned 'violin'" in err


def _two_instrument_primer(datasets: Path, out: Path) -> Path:
    """The song's bass (as a Slap Bass 2, which the band songs lack) and drums."""
    score = load_midi(datasets / "robustness" / "MIDIs_multitrack" / PRIMER_SONG)
    score.tracks = [t for t in score.tracks if t.is_drum or t.program == BASS]
    for track in score.tracks:
        if not track.is_drum:
            track.program = SLAP_BASS_2
    return save_midi(score, out)


@pytest.mark.parametrize("family", list(TINY))
def test_a_primers_two_instruments_are_continued(runs, family, datasets, tmp_path) -> None:
    primer = _two_instrument_primer(datasets, tmp_path / "primer.mid")
    cut = read_primer(primer, 2)
    before = {DRUMS if t.is_drum else BASS: t.note_num() for t in cut.tracks}  # 37 plays as 33
    result = generate(runs[family], out_dir=tmp_path / "out", primer=primer, primer_bars=2,
                      **SAMPLE)  # fmt: skip
    for path in result.paths:
        notes = played(path)
        assert set(notes) == {BASS, DRUMS}
        # the tokenizer never adds notes to the primer: more notes are the model's, for both
        assert all(notes[p] > before[p] for p in (BASS, DRUMS)), (path.name, notes, before)


def test_a_request_with_a_primer_adds_to_the_primers_instruments(runs, datasets, tmp_path):
    primer = _two_instrument_primer(datasets, tmp_path / "primer.mid")
    result = generate(runs["transformer"], out_dir=tmp_path / "out", primer=primer,
                      primer_bars=2, instruments="guitar", **SAMPLE)  # fmt: skip
    for path in result.paths:
        assert set(played(path)) == {GUITAR, BASS, DRUMS}


@pytest.fixture(scope="module")
def styled_run(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny transformer on two styles with their own bands: POP909 songs on flute, strings
    and piano (pop), Nottingham tunes on violin and nylon guitar (folk)."""
    from midiforge.data.corpora import with_part_programs
    from midiforge.data.prepare import prepare

    src = tmp_path_factory.mktemp("styled")
    songs = [datasets / "pop909" / f"{i:03d}" / f"{i:03d}.mid" for i in range(1, 7)]
    tunes = sorted((datasets / "nottingham").glob("*.mid"))[:12]
    for label, corpus, files in (("pop", "pop909", songs), ("folk", "nottingham", tunes)):
        (src / label).mkdir()
        for f in files:
            save_midi(with_part_programs(load_midi(f), corpus), src / label / f.name)
    data = prepare(src, src.parent / "styled_ds", labels_from="folder", jobs=1, quiet=True).path
    return train_tiny({"transformer": data}, {"transformer": TINY["transformer"]}, TRAIN,
                      tmp_path_factory.mktemp("styled_runs"))["transformer"]  # fmt: skip


def test_a_style_plays_its_own_band_unless_instruments_are_asked(styled_run, tmp_path) -> None:
    from midiforge.store.run_dir import load_run

    bands = load_run(styled_run).style_instruments
    assert bands == {"folk": [24, 40], "pop": [0, 48, 73]}
    for style in ("folk", "pop"):
        result = generate(styled_run, out_dir=tmp_path / style, style=style, **SAMPLE)
        heard = [set(played(p)) for p in result.paths]
        assert all(h and h <= set(bands[style]) for h in heard), (style, heard)
    free = generate(styled_run, out_dir=tmp_path / "any", n=6, max_tokens=160, seed=0)
    assert set().union(*(played(p) for p in free.paths)) - {24, 40}  # no style: any band
    asked = generate(styled_run, out_dir=tmp_path / "asked", style="folk", instruments="piano",
                     **SAMPLE)  # fmt: skip
    assert all(set(played(p)) == {0} for p in asked.paths)


def test_a_run_keeps_its_styles_keys_and_moves_each_sample_into_one(styled_run, tmp_path) -> None:
    from midiforge.sampling.style_key import piece_key
    from midiforge.schema import ALL_STYLES
    from midiforge.store.dataset_dir import PreparedDataset
    from midiforge.store.run_dir import load_run

    run = load_run(styled_run)
    keys = run.style_keys
    train = PreparedDataset(run.config["dataset"])
    per_style = [train.labels[i] for i in train.file_labels("train").tolist()]
    assert {s: sum(c.values()) for s, c in keys.items()} == {
        ALL_STYLES: len(per_style),
        "folk": per_style.count("folk"),
        "pop": per_style.count("pop"),
    }
    result = generate(styled_run, out_dir=tmp_path, style="folk", **SAMPLE)
    for path, what in zip(result.paths, result.keys, strict=True):
        if what is not None:  # a sample in a mode folk's training files lack keeps its key
            assert keys["folk"][what[1]] > 0 and piece_key(load_midi(path)) == what[1]
    assert any(what is not None for what in result.keys)


def test_a_trained_run_keeps_its_styles_parts(styled_run) -> None:
    """train writes its dataset's style parts into config.yaml; each style reads its own (the
    folk band is violin and guitar; these 12 tunes include one with double stops in its
    melody, so their violin is not one line, where the whole Nottingham set's is)."""
    from midiforge.store.dataset_dir import PreparedDataset
    from midiforge.store.run_dir import load_run
    from midiforge.style_parts import Parts

    run = load_run(styled_run)
    table = PreparedDataset(run.config["dataset"]).style_parts()
    assert run.style_parts("folk") == Parts.from_dict(table["folk"])
    assert run.style_parts("folk").programs == (24, 40)
    assert run.style_parts("pop").programs == (0, 48, 73)
    assert [r[0] for r in run.style_parts("pop").registers] == [0, 48, 73]
