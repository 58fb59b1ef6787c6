"""The README's promise: install, then one command makes music, offline.

A fresh virtual environment gets midiforge installed from a wheel built from this checkout (a
real, non-editable install, so the shipped model and the C kernel's library must travel in the
wheel); the third-party dependencies come from the test environment through a ``.pth`` file,
because CI has no package index at test time. Everything then runs with no C compiler on PATH
(the kernel was built with the wheel, never at run time), and the README's main-job command
runs verbatim inside a network namespace with no network at all (``unshare -n``). A wheel built
where there is no compiler installs too, and runs on the tensor-op reference, saying so once.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import symusic

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB_MARK = "# main job"
PROBE = ROOT / "tests" / "kernels" / "probe.py"  # prints which backend attention runs on
LIBRARY = "midiforge/kernels/_relative_attention.so"


SHIPPED_MARKS = ("# shipped diffusion", "# shipped multi-head LSTM")


def readme_command(mark: str) -> str:
    """The README's code line that ends in the comment ``mark``, without it."""
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.rstrip().endswith(mark):
            return line.rsplit(mark, 1)[0].strip()
    raise AssertionError(f"README.md has no line ending in {mark!r}")


def readme_main_job() -> str:
    """The README's main-job command, the code line marked ``# main job``."""
    return readme_command(MAIN_JOB_MARK)


def run_offline(command: str, venv: Path, env: dict[str, str]) -> list[Path]:
    """Run a README command in ``venv`` with no network at all; the MIDI files it wrote, each
    checked to hold notes, as many as its ``-n`` asks."""
    done = subprocess.run(
        [shutil.which("unshare"), "-n", "/bin/sh", "-c", command],
        cwd=venv.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tensor ops" not in done.stderr
    out = re.search(r"-o\s+(\S+)", command)
    assert out, f"the command names no output folder: {command}"
    files = sorted((venv.parent / out.group(1)).glob("*.mid"))
    count = re.search(r"(?:-n|--n)\s+(\d+)", command)
    assert len(files) == int(count.group(1)) if count else len(files) > 0
    for file in files:
        score = symusic.Score(str(file))
        assert score.note_num() > 0, f"{file.name} has no notes"
    return files


# the venv's own interpreter must not see this checkout's sources (PYTHONPATH=src in a dev run)
OUTSIDE = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def printed(python: Path, code: str) -> str:
    """What ``python -c code`` prints, stripped."""
    return subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True, env=OUTSIDE
    ).stdout.strip()


def no_compiler_env(venv: Path) -> dict[str, str]:
    """The environment with only the venv's scripts on PATH and no CC: nothing can compile."""
    env = {k: v for k, v in OUTSIDE.items() if k != "CC"}
    env["PATH"] = str(venv / "bin")
    for compiler in ("cc", "gcc", "clang"):
        assert shutil.which(compiler, path=env["PATH"]) is None
    return env


def install_wheel(tmp_path: Path, name: str, build_env: dict[str, str] | None = None):
    """Build a wheel from a clean copy of the checkout (offline, this environment's setuptools,
    ``build_env`` for the build) and install it into a fresh venv; returns (venv, wheel)."""
    venv = tmp_path / name / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = printed(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(site) / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = tmp_path / name / "source"  # a clean copy: no build leftovers from the checkout
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__",
                                      "*.so"),
    )  # fmt: skip
    wheels = tmp_path / name / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-index", "--no-deps",
         "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True, env=build_env,
    )  # fmt: skip
    (wheel,) = wheels.glob("midiforge-*.whl")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True, env=OUTSIDE,
    )  # fmt: skip
    shutil.rmtree(source)  # the installed copy must stand on its own
    where = printed(python, "import midiforge; print(midiforge.__file__)")
    assert Path(where).is_relative_to(venv), f"midiforge imported from {where}, not the venv"
    return venv, wheel


def probe(venv: Path, env: dict[str, str]) -> tuple[dict, list[str]]:
    """The probe's report in ``venv`` and its stderr lines about the tensor-op fallback."""
    done = subprocess.run([str(venv / "bin" / "python"), str(PROBE)], env=env,
                          capture_output=True, text=True, timeout=300, check=True)  # fmt: skip
    return json.loads(done.stdout), [x for x in done.stderr.splitlines() if "tensor ops" in x]


def test_readme_main_job_runs_offline_in_a_fresh_venv(tmp_path: Path) -> None:
    command = readme_main_job()
    assert "midiforge generate" in command
    venv, wheel = install_wheel(tmp_path, "with-compiler")
    assert LIBRARY in zipfile.ZipFile(wheel).namelist(), "the wheel lacks the C kernel"
    env = no_compiler_env(venv)
    report, fallback = probe(venv, env)
    site = Path(report["status"][3:-1])
    assert report["status"].startswith("c (") and site.is_relative_to(venv), report
    assert report["c_forward"] and report["cache_dtype"] == "torch.float16" and not fallback
    run_offline(command, venv, env)
    for mark in SHIPPED_MARKS:  # the other shipped models, from the same fresh install
        command = readme_command(mark)
        assert "--model" in command and "midiforge generate" in command
        run_offline(command, venv, env)


def test_a_wheel_built_without_a_compiler_runs_on_tensor_ops_and_says_so_once(tmp_path):
    build_env = {**OUTSIDE, "CC": str(tmp_path / "no-such-compiler")}
    venv, wheel = install_wheel(tmp_path, "no-compiler", build_env)
    assert LIBRARY not in zipfile.ZipFile(wheel).namelist()
    report, fallback = probe(venv, no_compiler_env(venv))
    assert report["status"].startswith("tensor-ops (") and "was not built" in report["status"]
    assert not report["c_forward"] and report["cache_dtype"] == "torch.float32"
    assert len(fallback) == 1 and fallback[0].startswith("WARNING"), fallback
