"""Request checks: ranges, primer uploads and model choice, each refused with its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from midiforge.errors import MidiforgeError
from midiforge.web.catalog import RunInfo, find_runs, resolve_run
from midiforge.web.params import (
    FIELDS,
    MAX_PRIMER_BYTES,
    check_primer,
    parse_number,
    parse_request,
    parse_seed,
)

NOTTINGHAM_FILE = "nottingham/ashover1.mid"


def _models(tmp_path: Path) -> dict[str, RunInfo]:
    return {
        "folk": RunInfo(id="folk", path=tmp_path / "folk", model="lstm", sampler="tokens",
                        labels=["jig", "reel"]),
        "notes": RunInfo(id="notes", path=tmp_path / "notes", model="diffusion",
                         sampler="diffusion"),
        "empty": RunInfo(id="empty", path=tmp_path / "empty", model="gru", sampler="tokens",
                         has_weights=False),
    }  # fmt: skip


def test_numbers_take_defaults_and_refuse_out_of_range() -> None:
    assert parse_number("temperature", "") == FIELDS["temperature"][3]
    assert parse_number("n", "3") == 3
    assert parse_number("top_p", "0.5") == 0.5
    with pytest.raises(MidiforgeError, match=r"temperature: 9 is out of range; use 0.05..3.0"):
        parse_number("temperature", "9")
    with pytest.raises(MidiforgeError, match=r"n: '2\.5' is not a whole number"):
        parse_number("n", "2.5")
    with pytest.raises(MidiforgeError, match="length: 'long' is not a number"):
        parse_number("length", "long")
    assert parse_seed("17") == 17
    assert 0 <= parse_seed("") < 2**31
    with pytest.raises(MidiforgeError, match="seed"):
        parse_seed("-1")


def test_primer_must_be_a_midi_file_within_the_limit(datasets: Path) -> None:
    real = (datasets / NOTTINGHAM_FILE).read_bytes()
    assert check_primer(real, "tune.mid") == real
    assert check_primer(None) is None
    with pytest.raises(MidiforgeError, match=r"primer: notes\.txt is not a MIDI file"):
        check_primer(b"just some text", "notes.txt")
    with pytest.raises(MidiforgeError, match="the limit is"):
        check_primer(b"MThd" + bytes(MAX_PRIMER_BYTES), "huge.mid")
    with pytest.raises(MidiforgeError, match="not a readable MIDI file"):
        check_primer(real[:40], "cut.mid")


def test_request_checks_model_style_and_fields(tmp_path: Path, datasets: Path) -> None:
    models = _models(tmp_path)
    request = parse_request({"model": "folk", "style": "reel", "n": "2", "seed": "5"}, models)
    assert (request.run, request.kind, request.style, request.n) == (
        tmp_path / "folk",
        "tokens",
        "reel",
        2,
    )
    assert request.seed == 5 and request.primer is None
    primer = (datasets / NOTTINGHAM_FILE).read_bytes()
    diffusion = parse_request({"model": "notes", "steps": "8"}, models, (primer, "p.mid"))
    assert (diffusion.kind, diffusion.steps, diffusion.primer) == ("diffusion", 8, primer)
    assert diffusion.primer_bars == FIELDS["primer_bars"][3]
    with pytest.raises(MidiforgeError, match="style: 'waltz' is not a label of 'folk'"):
        parse_request({"model": "folk", "style": "waltz"}, models)
    with pytest.raises(MidiforgeError, match="not one of the listed models"):
        parse_request({"model": "nope"}, models)
    with pytest.raises(MidiforgeError, match=r"no model\.safetensors"):
        parse_request({"model": "empty"}, models)


def test_run_names_cannot_leave_the_runs_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    (runs / "group" / "a").mkdir(parents=True)
    (runs / "group" / "a" / "config.yaml").write_text("model: gru\nlabels: [x]\n")
    (runs / "group" / "a" / "checkpoints" / "last").mkdir(parents=True)
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "config.yaml").write_text("model: gru\n")
    found = find_runs(runs)
    assert [(r.id, r.model, r.labels, r.can_resume, r.has_weights) for r in found] == [
        ("group/a", "gru", ["x"], True, False)
    ]
    assert resolve_run("group/a", runs) == (runs / "group" / "a").resolve()
    with pytest.raises(MidiforgeError, match="outside the runs folder"):
        resolve_run("../secret", runs)
    with pytest.raises(MidiforgeError, match="outside the runs folder"):
        resolve_run(str(outside), runs)
    with pytest.raises(MidiforgeError, match="no run"):
        resolve_run("group", runs)
