"""Rewriting bars and harmonizing a melody from the page: real Nottingham tunes uploaded, the
checks and words of the command line, and the written files compared note for note with the
uploads by the comparisons the command line's own tests use."""

from __future__ import annotations

from pathlib import Path

import pytest
from symusic import Note, Score, Track

from midiforge.cli import main
from midiforge.errors import MidiforgeError
from midiforge.web.catalog import RunInfo
from midiforge.web.params import parse_request
from tests.sampling.test_harmonize import check_harmonized, write_melody
from tests.sampling.test_infill import check_infilled
from tests.web.conftest import RUN_NAME
from tests.web.rawhttp import Session
from tests.web.test_web_page import GENERATE_TIMEOUT_MS

FOLK_TUNE = "nottingham/ashover1.mid"  # 33 bars: 3/4, then 2/4 from its 8th bar on
MELODY_BARS = 4
RANGE_FORM = r"use N \(the length in bars, N >= 1\) or, with --infill, A-B \(the bars to regenerate"


@pytest.fixture(scope="module")
def song(datasets: Path) -> Path:
    return datasets / FOLK_TUNE


@pytest.fixture(scope="module")
def melody(song: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tune's melody track alone, its first bars (a real melody, kept short)."""
    return write_melody(song, MELODY_BARS, tmp_path_factory.mktemp("melody"))


def _models(tmp_path: Path) -> dict[str, RunInfo]:
    return {
        "folk": RunInfo(id="folk", path=tmp_path / "folk", model="lstm", sampler="tokens"),
        "heads": RunInfo(id="heads", path=tmp_path / "heads", model="lstm-multihead",
                         sampler="notes"),
    }  # fmt: skip


def _cli_error(args: list[str], capsys) -> str:
    """The one-line message ``midiforge generate ARGS`` stops with, its prefix cut."""
    assert main(["generate", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err.removeprefix("midiforge generate: error: ")


def test_rewrite_and_harmonize_clash_as_on_the_command_line(
    song, melody, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)  # relative names: the CLI quotes what the page quotes
    for path in (song, melody):
        (tmp_path / path.name).write_bytes(path.read_bytes())
    tune, tune_name, tuned = song.read_bytes(), song.name, melody.name
    files = {"infill": (tune, tune_name), "primer": (melody.read_bytes(), tuned)}
    clashes = [
        (["--infill", tune_name, "--primer", tuned, "--bars", "5-8"], files,
         {"infill_bars": "5-8"}),
        (["--harmonize", tuned, "--infill", tune_name, "--bars", "5-8"],
         {"harmonize": files["primer"], "infill": files["infill"]}, {"infill_bars": "5-8"}),
        (["--harmonize", tuned, "--primer", tune_name], {"harmonize": files["primer"],
         "primer": files["infill"]}, {}),
        (["--harmonize", tuned, "--bars", "8"], {"harmonize": files["primer"]}, {"bars": "8"}),
        (["--infill", tune_name], {"infill": files["infill"]}, {}),
        (["--bars", "5-8"], {}, {"infill_bars": "5-8"}),
    ]  # fmt: skip
    for args, uploads, form in clashes:
        expected = _cli_error([*args, "-o", "out"], capsys)
        with pytest.raises(MidiforgeError) as err:
            parse_request({"model": "folk", **form}, _models(tmp_path), uploads)
        assert str(err.value) == expected, args
    request = parse_request({"model": "folk", "infill_bars": " 5 - 8 "}, _models(tmp_path),
                            {"infill": files["infill"]})  # fmt: skip
    assert (request.options.infill, request.options.bars) == (tune_name, "5-8")
    assert request.uploads == {"infill": tune}


def test_bad_ranges_and_files_are_one_line_errors(song, melody, tmp_path) -> None:
    models, tune = _models(tmp_path), (song.read_bytes(), "../../etc/tune.mid")
    drums = Score(480)
    drums.tracks.append(Track(program=0, is_drum=True))
    drums.tracks[0].notes.append(Note(0, 240, 36, 100))
    dense = Score(480)
    dense.tracks.append(Track(program=0))
    for i in range(4000):  # 250 bars of sixteenths
        dense.tracks[0].notes.append(Note(i * 120, 120, 60 + i % 12, 90))
    cases = [
        ({"infill_bars": "8-5"}, {"infill": tune}, rf"^bars: '8-5' is not accepted; {RANGE_FORM}"),
        ({"infill_bars": "x"}, {"infill": tune}, rf"^bars: 'x' is not accepted; {RANGE_FORM}"),
        ({"infill_bars": "34-35"}, {"infill": tune},
         r"^bars: 34-35 is past the end of tune\.mid, which has 33 bars; use A-B within 1-33$"),
        ({"infill_bars": "5-8", "bars": "8"}, {"infill": tune},
         r"^bars: 8 and infill_bars: '5-8': give one"),
        ({"infill_bars": "200-201"}, {"infill": (dense.dumps_midi(), "dense.mid")},
         r"^infill: dense\.mid holds 3184 notes before bar 200, which the model reads as its "
         r"primer; at most 2000"),
        ({"infill_bars": "5-8"}, {"infill": (b"not music", "a.txt")}, r"^infill: a\.txt is not a"),
        ({}, {"harmonize": (drums.dumps_midi(), "drums.mid")},
         r"^harmonize: drums\.mid holds no pitched notes \(drums are not a melody\)"),
        ({"n": "2"}, {"harmonize": tune},
         r"^harmonize: an accompaniment of the melody's 33 bars takes 128 tokens a bar, 2 × "
         r"4224 = 8448 tokens, over the page's per-job budget of 8192"),
        ({}, {"melody": tune},
         r"^melody: not a file input of the form; the file inputs are primer, infill, harmonize$"),
    ]  # fmt: skip
    for form, uploads, message in cases:
        with pytest.raises(MidiforgeError, match=message) as err:
            parse_request({"model": "folk", **form}, models, uploads)
        assert "\n" not in str(err.value)
    assert parse_request({"model": "folk", "infill_bars": "2-3"}, models,
                         {"infill": (dense.dumps_midi(), "dense.mid")})  # fmt: skip
    notes = parse_request({"model": "heads", "n": "2"}, models, {"harmonize": tune}).options
    assert notes.harmonize == "tune.mid"  # a note model: 16 notes a bar, within the budget


def test_the_server_reads_every_file_input_and_refuses_others(server, song, melody) -> None:
    tune, tuned = (song.name, song.read_bytes()), (melody.name, melody.read_bytes())
    session = Session(server["url"])
    ok = {"model": RUN_NAME, "n": "1", "seed": "1"}
    cases = [
        ({**ok, "infill_bars": "5-8"}, {"infill": tune, "primer": tuned},
         "infill and primer: give one; --infill keeps the song's own bars before the range as "
         "the primer (drop --primer 'melody.mid')"),
        (ok, {"harmonize": tuned, "infill": tune}, "harmonize and infill='ashover1.mid'"),
        (ok, {"melody": tuned}, "melody: not a file input of the form; the file inputs are primer, "
         "infill, harmonize"),
        ({**ok, "infill_bars": "40-41"}, {"infill": tune}, "bars: 40-41 is past the end of"),
    ]  # fmt: skip
    for fields, files, message in cases:
        status, body = session.post_form(fields, files=files)
        assert (status, body.get("error", "")[: len(message)]) == (400, message), body


def _download(page, tmp_path: Path) -> Path:
    with page.expect_download() as download:
        page.click("a.download >> nth=0")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    return saved


def _run_job(page) -> None:
    page.click("#generate")
    page.wait_for_selector(".job[data-status='done'], .job[data-status='error']",
                           timeout=GENERATE_TIMEOUT_MS)  # fmt: skip
    assert page.get_attribute(".job", "data-status") == "done", page.inner_text(".job")
    assert not page.is_visible("#error")
    assert page.eval_on_selector("img.pianoroll", "img => img.naturalWidth") > 0


def test_the_page_rewrites_bars_and_keeps_every_other_note(server, browser, song, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.goto(server["url"] + "/")
    page.wait_for_selector("#generate:enabled")
    assert page.input_value("#model") == RUN_NAME
    assert page.is_visible("#rewrite") and page.is_visible("#harmonize")
    page.set_input_files("#infill", str(song))
    page.fill("#infill_bars", "5-8")
    page.fill("#seed", "1")
    _run_job(page)
    new = check_infilled(song, _download(page, tmp_path), 5, 8)  # the CLI tests' comparison
    assert new, "no notes were written in bars 5-8"

    for bad in ("8-5", "x"):  # refused by the parser --bars uses, in its words, on one line
        page.fill("#infill_bars", bad)
        page.click("#generate")
        page.wait_for_function(
            f"() => document.querySelector('#error').textContent.includes({bad!r})"
        )
        shown = page.inner_text("#error")
        assert shown.startswith(f"bars: '{bad}' is not accepted; use N (the length in bars")
        assert "with --infill, A-B" in shown and "\n" not in shown
    assert page.locator(".job").count() == 1  # neither started a job
    page.close()


def test_the_page_harmonizes_a_melody_on_other_instruments(server, browser, melody, tmp_path):
    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.goto(server["url"] + "/")
    page.wait_for_selector("#generate:enabled")
    page.select_option("#model", "default:diffusion")  # knows piano, guitar and strings
    page.fill("#steps", "4")
    page.fill("#seed", "2")
    page.set_input_files("#harmonize", str(melody))
    _run_job(page)
    saved = _download(page, tmp_path)
    new = check_harmonized(melody, saved)  # the melody note for note, in its own tracks
    mine = {t.program for t in Score(str(melody)).tracks}
    added = {program for program, *_ in new}
    assert new and added and not added & mine, (added, mine)
    assert len(Score(str(saved)).tracks) == 1 + len(added)
    page.close()
