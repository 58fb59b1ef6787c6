"""Request checks: ranges, primer uploads and model choice, each refused with its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from midiforge.errors import MidiforgeError
from midiforge.sampling.options import (
    DIFFUSION_STEPS,
    GenerateOptions,
    fields_by_sampler,
    option_fields,
)
from midiforge.web.catalog import RunInfo, find_runs, resolve_run
from midiforge.web.midi_uploads import MAX_UPLOAD_BYTES, check_primer
from midiforge.web.params import (
    FIELDS,
    fields_json,
    parse_number,
    parse_request,
)

NOTTINGHAM_FILE = "nottingham/ashover1.mid"


def _models(tmp_path: Path) -> dict[str, RunInfo]:
    return {
        "folk": RunInfo(id="folk", path=tmp_path / "folk", model="lstm", sampler="tokens",
                        labels=["jig", "reel"]),
        "notes": RunInfo(id="notes", path=tmp_path / "notes", model="diffusion",
                         sampler="diffusion"),
        "heads": RunInfo(id="heads", path=tmp_path / "heads", model="lstm-multihead",
                         sampler="notes"),
        "empty": RunInfo(id="empty", path=tmp_path / "empty", model="gru", sampler="tokens",
                         has_weights=False),
    }  # fmt: skip


def test_numbers_take_defaults_and_refuse_out_of_range() -> None:
    assert parse_number("temperature", "") == FIELDS["temperature"].default
    assert parse_number("n", "3") == 3
    assert parse_number("top_p", "0.5") == 0.5
    with pytest.raises(MidiforgeError, match=r"temperature: 9 is out of range; use 0.05..3.0"):
        parse_number("temperature", "9")
    with pytest.raises(MidiforgeError, match=r"n: '2\.5' is not a whole number"):
        parse_number("n", "2.5")
    with pytest.raises(MidiforgeError, match="length: 'long' is not a number"):
        parse_number("length", "long")
    assert parse_number("seed", "17") == 17
    assert parse_number("seed", "") is None  # parse_request draws one
    with pytest.raises(MidiforgeError, match=r"seed: -1 is out of range; use 0..2147483647"):
        parse_number("seed", "-1")
    for raw in ("nan", "inf"):
        with pytest.raises(MidiforgeError, match=f"top_p: {raw} is out of range"):
            parse_number("top_p", raw)


def test_primer_must_be_a_midi_file_within_the_limit(datasets: Path) -> None:
    real = (datasets / NOTTINGHAM_FILE).read_bytes()
    assert check_primer(real, "tune.mid") == real
    assert check_primer(None) is None
    with pytest.raises(MidiforgeError, match=r"primer: notes\.txt is not a MIDI file"):
        check_primer(b"just some text", "notes.txt")
    with pytest.raises(MidiforgeError, match="the limit is"):
        check_primer(b"MThd" + bytes(MAX_UPLOAD_BYTES), "huge.mid")
    with pytest.raises(MidiforgeError, match="not a readable MIDI file"):
        check_primer(real[:40], "cut.mid")


def test_request_checks_model_style_and_fields(tmp_path: Path, datasets: Path) -> None:
    models = _models(tmp_path)
    request = parse_request({"model": "folk", "style": "reel", "n": "2", "seed": "5"}, models)
    assert (request.run, request.kind) == (tmp_path / "folk", "tokens")
    assert isinstance(request.options, GenerateOptions) and request.uploads == {}
    opts = request.options
    assert (opts.style, opts.n, opts.seed) == ("reel", 2, 5)
    assert (opts.max_tokens, opts.top_p, opts.primer_bars) == (256, 0.95, 8)  # the page's own
    assert (opts.steps, opts.guidance) == (DIFFUSION_STEPS, 1.0)  # the defaults, not the page's
    assert 0 <= parse_request({"model": "folk"}, models).options.seed < 2**31
    primer = (datasets / NOTTINGHAM_FILE).read_bytes()
    diffusion = parse_request({"model": "notes", "steps": "8"}, models)
    assert (diffusion.kind, diffusion.options.steps, diffusion.options.guidance) == (
        "diffusion",
        8,
        FIELDS["guidance"].default,
    )
    assert diffusion.options.max_tokens == GenerateOptions().max_tokens  # diffusion: no length
    heads = parse_request({"model": "heads", "temperature": "0.5", "noise": "0.2",
                           "primer_bars": "0"}, models, {"primer": (primer, "p.mid")})  # fmt: skip
    assert (heads.kind, heads.uploads, heads.options.primer) == (
        "notes",
        {"primer": primer},
        "p.mid",
    )
    assert (heads.options.temperature, heads.options.noise) == (0.5, 0.2)
    assert heads.options.primer_bars is None  # 0 on the page = the whole primer
    with pytest.raises(MidiforgeError, match="style: 'waltz' is not a label of 'folk'"):
        parse_request({"model": "folk", "style": "waltz"}, models)
    with pytest.raises(MidiforgeError, match="not one of the listed models"):
        parse_request({"model": "nope"}, models)
    with pytest.raises(MidiforgeError, match="model: missing; pick one of the listed models"):
        parse_request({"model": "  ", "n": "2"}, models)
    with pytest.raises(MidiforgeError, match=r"no model\.safetensors"):
        parse_request({"model": "empty"}, models)


def test_fields_a_models_sampler_does_not_read_are_refused(tmp_path: Path, datasets) -> None:
    models = _models(tmp_path)
    with pytest.raises(MidiforgeError, match="steps: 'folk' is a tokens model, which does not"):
        parse_request({"model": "folk", "steps": "8"}, models)
    with pytest.raises(MidiforgeError, match="temperature: 'notes' is a diffusion model"):
        parse_request({"model": "notes", "temperature": "0.5"}, models)
    with pytest.raises(MidiforgeError, match="noise: 'folk' is a tokens model"):
        parse_request({"model": "folk", "noise": "0.5"}, models)
    assert parse_request({"model": "folk", "steps": ""}, models).options.steps == DIFFUSION_STEPS
    primer = ((datasets / NOTTINGHAM_FILE).read_bytes(), "p.mid")
    # every family continues a primer (diffusion by inpainting its last notes)
    assert parse_request({"model": "notes"}, models, {"primer": primer}).uploads == {
        "primer": primer[0]
    }
    with pytest.raises(MidiforgeError, match="tempo: not a field of the form; accepted: model"):
        parse_request({"model": "folk", "tempo": "120"}, models)


def test_page_inputs_come_from_the_options_and_stay_inside_them() -> None:
    sent = {f["name"]: f for f in fields_json()}
    assert {"n", "length", "temperature", "top_k", "top_p", "noise", "steps", "guidance",
            "seed", "primer_bars"} <= set(sent)  # fmt: skip
    assert sent["length"]["option"] == "max_tokens"
    assert sent["length"]["labels"] == {"tokens": "Length in tokens", "notes": "Length in notes"}
    assert (sent["n"]["max"], sent["length"]["max"]) == (8, 4096)  # the page's tighter caps
    by_sampler = fields_by_sampler()
    assert {"temperature", "top_k", "top_p", "noise"} <= set(by_sampler["notes"])
    assert not {"steps", "guidance"} & set(by_sampler["notes"])
    assert not {"temperature", "top_k", "top_p", "noise"} & set(by_sampler["diffusion"])
    for info in option_fields():  # every page (and menu) bound is one the option accepts
        for ask in (info.spec.web, info.spec.menu):
            if ask is None or info.kind not in (int, float):
                continue
            lo, hi, default = info.offered(ask)
            assert lo is not None and hi is not None and lo < hi, info.name
            for value in (lo, hi, default):
                if value is not None and value != ask.none_at:
                    assert info.check(value) == value, (info.name, value)


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


def test_odd_numbers_and_strings_are_refused_naming_the_field(tmp_path: Path) -> None:
    for raw, message in [
        ("²", r"seed: '²' is not a number"),
        ("١٢٣", r"seed: '١٢٣' is not a number"),  # Arabic-Indic digits: float() reads them
        ("1" * 5000, r"seed: '1111.*\.\.\.' \(5000 characters\) is too long for a number"),
        ("1\x00", r"seed: '1\\x00' is not a number"),
        ("0x10", r"seed: '0x10' is not a number"),
        ("1_000", r"seed: '1_000' is not a number"),
        ("1e400", r"seed: 1e400 is out of range"),
    ]:
        with pytest.raises(MidiforgeError, match=message):
            parse_number("seed", raw)
    assert parse_number("seed", " 42 ") == 42
    assert parse_number("temperature", "1e-1") == 0.1
    models = _models(tmp_path)
    with pytest.raises(MidiforgeError, match=r"model: 'fo\\x00lk' holds the control character"):
        parse_request({"model": "fo\x00lk"}, models)
    with pytest.raises(MidiforgeError, match=r"model: 'a{40}\.\.\.' is 5000 characters long"):
        parse_request({"model": "a" * 5000}, models)
    with pytest.raises(MidiforgeError, match=r"style: 'reel\\x00' holds the control character"):
        parse_request({"model": "folk", "style": "reel\x00"}, models)
    with pytest.raises(MidiforgeError, match=r"^x{40}\.\.\.: not a field of the form"):
        parse_request({"model": "folk", "x" * 300: "1"}, models)


def test_one_job_is_capped_in_pieces_times_length(tmp_path: Path) -> None:
    models = _models(tmp_path)
    assert parse_request({"model": "folk", "n": "2", "length": "4096"}, models).options.n == 2
    with pytest.raises(MidiforgeError, match=r"n × length: 8 × 4096 = 32768 tokens is over"):
        parse_request({"model": "folk", "n": "8", "length": "4096"}, models)
    with pytest.raises(MidiforgeError, match=r"n × length: 3 × 4096 = 12288 notes is over"):
        parse_request({"model": "heads", "n": "3", "length": "4096"}, models)
    with pytest.raises(MidiforgeError, match=r"n × steps: 8 × 1000 = 8000 denoising steps"):
        parse_request({"model": "notes", "n": "8", "steps": "1000"}, models)


def test_broken_runs_are_refused_with_their_problem(tmp_path: Path) -> None:
    models = _models(tmp_path)
    problem = "run 'bad': train.steps is 'many'"
    models["bad"] = RunInfo(id="bad", path=tmp_path / "bad", model="?", sampler="",
                            has_weights=False, problem=problem)  # fmt: skip
    with pytest.raises(MidiforgeError, match=r"model: 'bad' is broken \(run 'bad': train") as info:
        parse_request({"model": "bad"}, models)
    assert "pick another: folk, notes, heads" in str(info.value)  # usable ones only


def _stacked_primer(copies: int) -> bytes:
    """A tiny MIDI file whose notes all start together on middle C: a 'unison bomb'."""
    import symusic

    score = symusic.Score(480)
    track = symusic.Track("bomb")
    for _ in range(copies):
        track.notes.append(symusic.Note(0, 480, 60, 90))
    score.tracks.append(track)
    return score.dumps_midi()


def test_primer_bombs_are_refused() -> None:
    bomb = _stacked_primer(5000)
    assert len(bomb) < 64 * 1024
    with pytest.raises(MidiforgeError, match=r"stacks 5000 notes on one key at one time "
                       r"\(pitch 60 at tick 0\); at most 16"):  # fmt: skip
        check_primer(bomb, "bomb.mid")
    assert check_primer(_stacked_primer(2), "doubled.mid")  # a doubled note is music


def test_a_primer_is_capped_in_the_notes_it_continues(datasets: Path) -> None:
    dense = _dense_primer(4000)  # 4000 sixteenth notes: 250 bars of 4/4
    with pytest.raises(MidiforgeError, match=r"holds 4000 notes in all its bars; a primer may "
                       r"hold at most 2000 \(lower the primer bars"):  # fmt: skip
        check_primer(dense, "dense.mid")
    assert check_primer(dense, "dense.mid", bars=8) == dense  # 8 bars: 128 notes


def _dense_primer(notes: int) -> bytes:
    import symusic

    score = symusic.Score(480)
    track = symusic.Track("dense")
    for i in range(notes):
        track.notes.append(symusic.Note(i * 120, 120, 60 + i % 12, 90))
    score.tracks.append(track)
    return score.dumps_midi()


def test_instruments_are_text_checked_against_the_models_instruments(tmp_path: Path) -> None:
    band = RunInfo(id="band", path=tmp_path / "band", model="transformer", sampler="tokens",
                   instruments=[-1, 7, 33])  # fmt: skip
    models = {"band": band, **_models(tmp_path)}
    request = parse_request({"model": "band", "instruments": " Bass, DRUMS "}, models)
    assert request.options.instruments == "bass,drums"  # the option's parser normalises it
    assert parse_request({"model": "band", "instruments": ""}, models).options.instruments is None
    knows = r"it knows Drums \(-1\), Clavinet \(7\), Electric Bass \(finger\) \(33\)$"
    with pytest.raises(MidiforgeError, match=r"^instruments: this model never learned 'violin'; "
                       + knows):  # fmt: skip
        parse_request({"model": "band", "instruments": "bass,violin"}, models)
    with pytest.raises(MidiforgeError, match=r"never learned 'bass'; it knows Acoustic Grand"):
        parse_request({"model": "folk", "instruments": "bass"}, models)  # a run from before
    with pytest.raises(MidiforgeError, match=r"'banjoo' is not a General MIDI instrument \(did"):
        parse_request({"model": "band", "instruments": "banjoo"}, models)
    with pytest.raises(MidiforgeError, match=r"instruments: .* is 300 characters long; at most"):
        parse_request({"model": "band", "instruments": "piano," * 50}, models)
    with pytest.raises(MidiforgeError, match=r"instruments: .* holds the control character"):
        parse_request({"model": "band", "instruments": "bass\x00"}, models)
    sent = {f["name"]: f for f in fields_json()}
    assert (sent["instruments"]["type"], sent["instruments"]["choices_from"]) == (
        "text",
        "instruments",
    )
    assert sent["instruments"]["placeholder"] == "the model's choice"
    texts = {name for name, f in sent.items() if f["type"] == "text"}
    # the string options the page offers
    assert texts == {"instruments", "key", "range", "chords", "density", "polyphony"}
    assert {f["type"] for name, f in sent.items() if name not in texts} == {"number"}


def test_density_and_polyphony_controls_come_from_the_page_checked_as_the_cli_checks_them(
    tmp_path: Path,
) -> None:
    models = _models(tmp_path)
    options = parse_request({"model": "folk", "density": " 4 8 ", "polyphony": "1 2"}, models)
    assert (options.options.density, options.options.polyphony) == ("4 8", "1 2")
    unset = parse_request({"model": "folk", "density": "", "polyphony": ""}, models).options
    assert (unset.density, unset.polyphony) == (None, None)
    with pytest.raises(MidiforgeError, match=r"density") as err:
        parse_request({"model": "folk", "density": "many"}, models)
    assert "\n" not in str(err.value)
    with pytest.raises(MidiforgeError, match=r"polyphony"):
        parse_request({"model": "folk", "polyphony": "0"}, models)
    sent = {f["name"]: f for f in fields_json()}
    assert set(sent["density"]["labels"]) == {"tokens"}  # shown for token runs only


def test_key_range_and_polyphony_come_from_the_page_checked_as_the_cli_checks_them(
    tmp_path: Path,
) -> None:
    models = _models(tmp_path)
    form = {"model": "folk", "key": " d MINOR ", "range": "C3-C6", "max_polyphony": "3"}
    options = parse_request(form, models).options
    assert (options.key, options.max_polyphony) == ("D minor", 3)
    assert options.range == "C3-C6"
    unset = parse_request({"model": "folk", "key": "", "max_polyphony": "0"}, models).options
    assert (unset.key, unset.range, unset.max_polyphony) == (None, None, None)
    with pytest.raises(MidiforgeError, match="key: 'H major'") as err:
        parse_request({"model": "folk", "key": "H major"}, models)
    assert "\n" not in str(err.value)
    with pytest.raises(MidiforgeError, match="range"):
        parse_request({"model": "folk", "range": "C6-C3"}, models)
