"""The README's promise: install, then one command makes music, offline.

A fresh virtual environment gets midiforge installed from a wheel built from this checkout (a
real, non-editable install, so the shipped model must travel as package data); the third-party
dependencies come from the test environment through a ``.pth`` file, because CI has no package
index at test time. The README's main-job command then runs verbatim inside a network namespace
with no network at all (``unshare -n``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import symusic

ROOT = Path(__file__).resolve().parents[1]
MAIN_JOB_MARK = "# main job"


def readme_main_job() -> str:
    """The README's main-job command, the code line marked ``# main job``."""
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if line.rstrip().endswith(MAIN_JOB_MARK):
            return line.rsplit(MAIN_JOB_MARK, 1)[0].strip()
    raise AssertionError(f"README.md has no line ending in {MAIN_JOB_MARK!r}")


def printed(python: Path, code: str) -> str:
    """What ``python -c code`` prints, stripped."""
    return subprocess.run(
        [str(python), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def test_readme_main_job_runs_offline_in_a_fresh_venv(tmp_path: Path) -> None:
    command = readme_main_job()
    assert "midiforge generate" in command
    venv = tmp_path / ".venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = printed(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    (Path(site) / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = tmp_path / "source"  # a clean copy: no build leftovers from the checkout
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "__pycache__"),
    )
    wheels = tmp_path / "wheels"  # built with this environment's setuptools, offline
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-index", "--no-deps",
         "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
    )  # fmt: skip
    (wheel,) = wheels.glob("midiforge-*.whl")
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--no-deps", str(wheel)],
        check=True,
    )
    shutil.rmtree(source)  # the installed copy must stand on its own
    where = printed(python, "import midiforge; print(midiforge.__file__)")
    assert Path(where).is_relative_to(venv), f"midiforge imported from {where}, not the venv"
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = re.search(r"-o\s+(\S+)", command)
    assert out, f"the main-job command names no output folder: {command}"
    files = sorted((tmp_path / out.group(1)).glob("*.mid"))
    count = re.search(r"(?:-n|--n)\s+(\d+)", command)
    assert len(files) == int(count.group(1)) if count else len(files) > 0
    for file in files:
        score = symusic.Score(str(file))
        assert score.note_num() > 0, f"{file.name} has no notes"
