"""Infilling end to end: a tiny transformer (Program tokens), multi-head LSTM and diffusion run
trained a few steps on the band songs, asked to regenerate bars of real songs (a band song
with drums, a Nottingham tune whose meter changes from 3/4 to 2/4); every note of the written
files checked against the song, re-parsed with symusic at the song's ticks per quarter."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from symusic import Score

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.instruments import DRUMS
from midiforge.sampling.generate import generate
from midiforge.sampling.infill import bar_lines

from .conftest import BAND_FOLDER, train_tiny

TRAIN = ["train.batch_size=4", "train.seq_len=32", "train.window=32", "train.lr=3e-3",
         "train.warmup_steps=2", "train.eval_every=100", "train.eval_batches=1",
         "train.steps=8"]  # fmt: skip
TINY = {
    "transformer": ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64",
                    "model.max_seq_len=64", "model.max_rel=32"],
    "lstm-multihead": ["model.d_pitch=16", "model.d_hidden=32", "model.n_layers=1"],
    "diffusion": ["model.length=32", "model.channels=16", "model.attention_layers=1",
                  "model.attention_heads=2", "model.time_dim=32"],
}  # fmt: skip
FAMILY_OPTIONS = {"diffusion": {"steps": 4}, "transformer": {"max_tokens": 400}}
BAND_SONG = "All The Small Things.mid"  # 4/4, ten tracks with drums and a bass
FOLK_TUNE = "ashover1.mid"  # 3/4, then 2/4 from its 8th bar on: 33 bars


@pytest.fixture(scope="module")
def runs(band: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return train_tiny(dict.fromkeys(TINY, band), TINY, TRAIN, tmp_path_factory.mktemp("runs"))


def notes(path: Path, tpq: int) -> list[tuple[int, int, int, int, int, bool]]:
    """(time, duration, pitch, velocity, program, is_drum) of every note, at ``tpq``."""
    score = Score(str(path))
    assert score.ticks_per_quarter == tpq  # the song's own ticks: nothing was resampled
    return [
        (n.time, n.duration, n.pitch, n.velocity, DRUMS if t.is_drum else t.program, t.is_drum)
        for t in score.tracks
        for n in t.notes
    ]


def check_infilled(song: Path, out: Path, first: int, last: int) -> list[tuple]:
    """Assert the notes outside bars first..last are the song's exactly; the new notes."""
    tpq = Score(str(song)).ticks_per_quarter
    lines = bar_lines(Score(str(song)))
    start, end = int(lines[first - 1]), int(lines[last])
    inside = lambda n: start <= n[0] < end  # noqa: E731
    original, written = notes(song, tpq), notes(out, tpq)
    assert Counter(n for n in written if not inside(n)) == Counter(
        n for n in original if not inside(n)
    )
    new = [n for n in written if inside(n)]
    assert all(n[0] + n[1] <= end and n[1] >= 1 for n in new), new
    assert {n[4] for n in new} <= {n[4] for n in original if inside(n)}  # the range's instruments
    return new


@pytest.mark.parametrize("family", sorted(TINY))
def test_outside_notes_stay_exact_and_new_ones_fill_the_range(runs, family, datasets, tmp_path):
    song = datasets / BAND_FOLDER / BAND_SONG
    result = generate(runs[family], out_dir=tmp_path, infill=song, bars="5-6", n=2, seed=0,
                      device="cpu", **FAMILY_OPTIONS.get(family, {}))  # fmt: skip
    assert len(result.paths) == 2
    new = [check_infilled(song, path, 5, 6) for path in result.paths]
    assert all(len(n) > 0 for n in new), [len(n) for n in new]


def test_the_command_line_infills_a_tune_whose_meter_changes(runs, datasets, tmp_path):
    song = datasets / "nottingham" / FOLK_TUNE
    lines = bar_lines(Score(str(song)))
    assert len(lines) == 34 and {int(b) for b in lines[1:8] - lines[:7]} == {3 * 1024}
    assert int(lines[8] - lines[7]) == 2 * 1024  # bar 8 is in 2/4
    code = main(["generate", str(runs["transformer"]), "-o", str(tmp_path), "--infill",
                 str(song), "--bars", "5-8", "-n", "1", "--seed", "1", "--device", "cpu",
                 "--max-tokens", "300"])  # fmt: skip
    assert code == 0
    assert check_infilled(song, tmp_path / "sample_000.mid", 5, 8)


def test_the_first_bar_and_the_last_can_be_regenerated(runs, datasets, tmp_path):
    song = datasets / "nottingham" / FOLK_TUNE
    cases = (("1-2", "transformer"), ("1-1", "lstm-multihead"), ("33-33", "diffusion"))
    for bars, family in cases:
        result = generate(runs[family], out_dir=tmp_path / bars, infill=song, bars=bars, n=1,
                          seed=0, device="cpu", **FAMILY_OPTIONS.get(family, {}))  # fmt: skip
        first, last = (int(b) for b in bars.split("-"))
        check_infilled(song, result.paths[0], first, last)


def test_wrong_requests_are_one_line_errors_naming_the_accepted_forms(
    runs, datasets, tmp_path, capsys
):
    song = datasets / "nottingham" / FOLK_TUNE
    cases = [({"bars": "5-8"}, r"bars: '5-8' is a bar range, which needs --infill FILE"),
             ({"infill": song, "bars": 4}, r"needs --bars A-B, the bars to regenerate"),
             ({"infill": song, "bars": "5-8", "primer": song}, "infill and primer: give one"),
             ({"infill": song, "bars": "8-5"}, r"use N .* or, with --infill, A-B"),
             ({"infill": song, "bars": "34-35"},
              rf"bars: 34-35 is past the end of .*{FOLK_TUNE}, which has 33 bars; use A-B "
              "within 1-33")]  # fmt: skip
    for ask, message in cases:
        with pytest.raises(MidiforgeError, match=message) as err:
            generate(runs["transformer"], out_dir=tmp_path, n=1, device="cpu", **ask)
        assert "\n" not in str(err.value)
    assert not list(tmp_path.glob("*.mid"))
    code = main(["generate", str(runs["transformer"]), "-o", str(tmp_path), "--bars", "5-8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "needs --infill FILE" in err and "\n" not in err


FIM_FAMILIES = {"transformer": TINY["transformer"],
                "lstm": ["model.d_embed=32", "model.d_hidden=32", "model.n_layers=1"]}  # fmt: skip


@pytest.fixture(scope="module")
def fim_runs(datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny transformer and a tiny LSTM on the band songs prepared with the markers, half
    their windows in fill-in-the-middle order."""
    from .conftest import prepare_band

    data = prepare_band(datasets, tmp_path_factory.mktemp("band_fim") / "ds", fim=True)
    return train_tiny(dict.fromkeys(FIM_FAMILIES, data), FIM_FAMILIES, [*TRAIN, "train.fim=0.5"],
                      tmp_path_factory.mktemp("fim_runs"))  # fmt: skip


@pytest.mark.parametrize("family", sorted(FIM_FAMILIES))
def test_a_fim_run_reads_the_bars_after_the_range_and_keeps_every_other_note(
    fim_runs, family, runs, datasets, tmp_path, caplog
):
    from midiforge.sampling.infill import reads_suffix
    from midiforge.store.run_dir import load_run

    fim_run = fim_runs[family]
    assert reads_suffix(load_run(fim_run, "best")) and not reads_suffix(
        load_run(runs["transformer"], "best")
    )
    song = datasets / BAND_FOLDER / BAND_SONG
    with caplog.at_level("INFO", logger="midiforge.sampling.infill"):
        result = generate(fim_run, out_dir=tmp_path, infill=song, bars="5-6", n=2, seed=0,
                          device="cpu", max_tokens=400)  # fmt: skip
    assert "reads the bars after the range" in caplog.text
    new = [check_infilled(song, path, 5, 6) for path in result.paths]
    assert all(len(n) > 0 for n in new), [len(n) for n in new]
