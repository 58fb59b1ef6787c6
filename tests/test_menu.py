"""The interactive menu driven through a real pseudo-terminal, as a person would use it."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pexpect
import symusic

from midiforge.cli.menu import Prompter, _generation_options
from midiforge.sampling.infill import bar_lines
from midiforge.sampling.options import GenerateOptions
from midiforge.web.catalog import RunInfo

from .conftest import interruptible

TRAIN_TIMEOUT_S = 240  # tiny LSTM, a few steps, on a shared 2-core machine
PROMPT_TIMEOUT_S = 60  # start-up imports torch on the first action
INSTRUMENTS = "Instruments (names or numbers, comma-separated; Enter = the model's choice): "


def spawn(args: list[str], cwd: Path) -> pexpect.spawn:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "midiforge", *args],
        cwd=str(cwd),
        encoding="utf-8",
        timeout=PROMPT_TIMEOUT_S,
        dimensions=(40, 200),
        preexec_fn=interruptible,
    )
    child.logfile_read = (cwd / "menu.log").open("w")
    return child


def pick(child: pexpect.spawn, option: str, prompt: str) -> None:
    """Answer a numbered list with the number shown beside ``option``."""
    child.expect(rf"(\d+)\) {re.escape(option)}\b")
    number = child.match.group(1)
    child.expect(prompt)
    child.sendline(number)


def test_menu_trains_continues_and_generates(
    nottingham_small: Path, datasets: Path, tmp_path: Path
) -> None:
    tune = datasets / "nottingham" / "ashover1.mid"
    runs = tmp_path / "runs"
    child = spawn(["menu", "--runs-dir", str(runs), "--data-dir", str(nottingham_small.parent)],
                  tmp_path)  # fmt: skip

    # 1) train a new model: the prepared dataset is listed; bad answers are asked again
    child.expect("what would you like to do")
    child.expect("Choice: ")
    child.sendline("1")
    child.expect(r"1\) dataset  \(\d+ files, REMI\)")
    child.expect(r"Dataset \[1\]: ")
    child.sendline("9")
    child.expect("'9' is not a choice; type a number 1..2")
    child.sendline("2")  # another folder, typed
    child.expect("Folder of MIDI files or prepared dataset: ")
    child.sendline("no/such/folder")
    child.expect("'no/such/folder' is not a folder")
    child.sendline(str(nottingham_small))
    pick(child, "lstm", r"Model family \[\d+\]: ")
    pick(child, "tiny", r"Model size \[\d+\]: ")
    child.expect(r"Training steps \[1000\]: ")
    child.sendline("lots")
    child.expect("'lots' is not a whole number")
    child.sendline("3")
    child.expect(r"Run folder \[(.+)\]: ")
    run_dir = tmp_path / child.match.group(1).strip()
    child.sendline("")  # the default
    child.expect("Done: the run is in", timeout=TRAIN_TIMEOUT_S)
    assert (run_dir / "model.safetensors").is_file()

    # 2) continue training it, up to step 5
    child.expect("Choice: ")
    child.sendline("2")
    child.expect(r"1\) lstm-tiny-\S+  \(lstm, 3 steps\)")
    child.expect(r"Run to continue \[1\]: ")
    child.sendline("")
    child.expect(r"Train up to step \[503\]: ")
    child.sendline("2")
    child.expect("2 is out of range; use 4..")
    child.sendline("5")
    child.expect("Done: the run is in", timeout=TRAIN_TIMEOUT_S)
    assert "steps: 5" in (run_dir / "config.yaml").read_text()

    # Ctrl-C inside a choice goes back to the menu
    child.expect("Choice: ")
    child.sendline("3")
    child.expect(r"Model \[1\]: ")
    child.sendintr()
    child.expect(r"cancelled; back to the menu")
    child.expect("what would you like to do")

    # 3) generate two pieces
    child.expect("Choice: ")
    child.sendline("3")
    child.expect(r"Model \[1\]: ")
    child.sendline("1")
    pick(child, "new pieces", r"Write \[1\]: ")
    child.expect(r"Number of pieces \[1\]: ")
    child.sendline("2")
    child.expect(r"Length in tokens \[512\]: ")
    child.sendline("48")
    child.expect(r"Temperature \[1.0\]: ")
    child.sendline("9")
    child.expect("9.0 is out of range")
    child.sendline("0.9")
    child.expect(r"knows: Acoustic Grand Piano \(0\)")  # a run of one merged piano stream
    child.expect(r"Instruments \(names or numbers, comma-separated; Enter = the model's choice\): ")
    child.sendline("violin")
    child.expect("never learned 'violin'; it knows Acoustic Grand Piano")
    child.sendline("Piano")
    child.expect(r"Key \(e\.g\. D minor; Enter = none\): ")
    child.sendline("H minor")
    child.expect("key: 'H minor'")  # a key it cannot read is named, and asked again
    child.sendline("D minor")
    child.expect(r"Chords \(e\.g\. Am F C G; Enter = none\): ")
    child.sendline("")
    child.expect(r"Range \(e\.g\. C3-C6; Enter = none\): ")
    child.sendline("C3-C6")
    child.expect(r"Max polyphony \(0 = none\) \[0\]: ")
    child.sendline("")
    child.expect(r"Bars \(0 = free\) \[0\]: ")
    child.sendline("")
    child.expect(r"Seed \[0\]: ")
    child.sendline("")
    child.expect(r"Output folder \[generated\]: ")
    child.sendline("")
    child.expect(r"sample_001\.mid", timeout=TRAIN_TIMEOUT_S)

    # 4) rewrite bars 2-3 of a real tune: a bad path and a bare bar count are asked again
    child.expect("Choice: ")
    child.sendline("3")
    child.expect(r"Model \[1\]: ")
    child.sendline("1")
    pick(child, "rewrite bars of a MIDI file, keeping every other note", r"Write \[1\]: ")
    child.expect("MIDI file: ")
    child.sendline("no/such.mid")
    child.expect("no such file")
    child.sendline(str(tune))
    child.expect(r"Bars to rewrite \(A-B, e\.g\. 5-8\): ")
    child.sendline("5")
    child.expect("give the bars to rewrite as A-B")
    child.sendline("2-3")
    answers = [
        (r"Number of pieces \[1\]: ", ""),
        (r"Length in tokens \[512\]: ", "200"),
        (r"Temperature \[1.0\]: ", ""),
        (r"Instruments .*: ", ""),
        (r"Key .*: ", ""),
        (r"Chords .*: ", ""),
        (r"Range .*: ", ""),
        (r"Max polyphony .*: ", ""),  # and no length question: the range is the length
        (r"Seed \[0\]: ", ""),
        (r"Output folder \[generated\]: ", "infilled"),
    ]
    for prompt, answer in answers:
        child.expect(prompt)
        child.sendline(answer)
    child.expect(r"sample_000\.mid", timeout=TRAIN_TIMEOUT_S)
    child.expect("Choice: ")
    child.sendline("4")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    written = sorted((tmp_path / "generated").glob("*.mid"))
    assert [p.name for p in written] == ["sample_000.mid", "sample_001.mid"]
    for path in written:
        assert symusic.Score(str(path)).tpq > 0
    song, out = (
        symusic.Score(str(tune)),
        symusic.Score(str(tmp_path / "infilled" / "sample_000.mid")),
    )
    lines = bar_lines(song)
    start, end = int(lines[1]), int(lines[3])

    def outside(score: symusic.Score) -> list[tuple[int, int, int]]:
        return sorted((n.time, n.duration, n.pitch) for t in score.tracks for n in t.notes
                      if not start <= n.time < end)  # fmt: skip

    assert out.tpq == song.tpq and outside(out) == outside(song)


def test_no_arguments_on_a_terminal_opens_the_menu(tmp_path: Path) -> None:
    child = spawn([], tmp_path)
    child.expect("what would you like to do")
    child.expect("Choice: ")
    child.sendline("2")  # continue training, with no runs yet: says so, back to the menu
    child.expect(r"no run with a checkpoint in runs/")
    child.expect("Choice: ")
    child.sendline("exit")
    child.expect("'exit' is not a choice")
    child.sendeof()  # Ctrl-D at the menu itself leaves
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def _questions(monkeypatch, run: RunInfo, answers: list[str]) -> tuple[list[str], dict]:
    """The questions the generate choice asks for ``run``, answered in turn with ``answers``."""
    asked: list[str] = []

    def answer(prompt: str) -> str:
        asked.append(prompt)
        return answers[len(asked) - 1]

    monkeypatch.setattr("builtins.input", answer)
    values = _generation_options(Prompter(write=lambda text: None), run)
    return asked, values


TEXT_QUESTIONS = ["Key (e.g. D minor; Enter = none): ", "Chords (e.g. Am F C G; Enter = none): ",
                  "Range (e.g. C3-C6; Enter = none): "]  # fmt: skip
LENGTH_QUESTIONS = ["Max polyphony (0 = none) [0]: ", "Bars (0 = free) [0]: "]


def test_generate_asks_what_the_models_sampler_reads(monkeypatch, tmp_path: Path) -> None:
    notes = RunInfo(id="n", path=tmp_path, model="lstm-multihead", sampler="notes")
    answers = ["2", "", "0.8", "", "f# dorian", "Am | F", "", "3", "8", "0.3", "5"]
    asked, values = _questions(monkeypatch, notes, answers)
    assert asked == ["Number of pieces [1]: ", "Length in notes [512]: ", "Temperature [1.0]: ",
                     INSTRUMENTS, *TEXT_QUESTIONS, *LENGTH_QUESTIONS, "Noise [0.0]: ",
                     "Seed [0]: "]  # fmt: skip
    assert values == {"n": 2, "max_tokens": 512, "temperature": 0.8, "instruments": None,
                      "key": "F# dorian", "chords": "Am F", "range": None, "max_polyphony": 3,
                      "bars": 8, "noise": 0.3, "seed": 5}  # fmt: skip
    diffusion = RunInfo(id="d", path=tmp_path, model="diffusion", sampler="diffusion",
                        labels=["jig", "reel"], instruments=[-1, 0, 33])  # fmt: skip
    answers = [
        "1",
        "3",
        "bass, Violin",
        "Drums, BASS",
        "",
        "",
        "48-900",
        "C3-C6",
        "",
        "",
        "",
        "4.5",
        "2",
        "",
    ]  # violin and a range past MIDI's pitches: asked again
    asked, values = _questions(monkeypatch, diffusion, answers)
    assert asked == ["Number of pieces [1]: ", "Style [1]: ", INSTRUMENTS, INSTRUMENTS,
                     *TEXT_QUESTIONS, TEXT_QUESTIONS[-1], *LENGTH_QUESTIONS,
                     "Denoising steps [50]: ", "Guidance [2.0]: ", "Key guidance [4.0]: ",
                     "Seed [0]: "]  # fmt: skip
    assert values == {"n": 1, "style": "reel", "instruments": "drums,bass", "key": None,
                      "chords": None, "range": "C3-C6", "max_polyphony": None, "bars": None,
                      "steps": 50, "guidance": 4.5, "key_guidance": 2.0, "seed": 0}  # fmt: skip
    assert GenerateOptions(**values).steps == 50
    tokens = RunInfo(id="t", path=tmp_path, model="transformer", sampler="tokens",
                     controls=["density"])  # fmt: skip
    answers = ["1", "", "", "", "", "", "8 16", "", "", "", ""]
    asked, values = _questions(monkeypatch, tokens, answers)
    assert "Notes per bar (e.g. 8, or 4 8 16 8; Enter = none): " in asked
    assert not any(q.startswith("Notes per onset") for q in asked)  # no polyphony tokens
    assert values["density"] == "8 16"
