"""``--device``: one reading for every command, with a clear error where CUDA is missing."""

from __future__ import annotations

import pytest
import torch

from midiforge.device import resolve_device
from midiforge.errors import MidiforgeError


def test_names_resolve_to_devices() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("gpu", "cuda:x", "CPU", ""):
        with pytest.raises(MidiforgeError, match=r"expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    if torch.cuda.is_available():  # a GPU machine: cuda works, a GPU number too high does not
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(MidiforgeError, match="CUDA GPU"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
        return
    for name in ("cuda", "cuda:0"):
        with pytest.raises(MidiforgeError, match=r"cuda is not available here: .*use --device cpu"):
            resolve_device(name)


def test_commands_report_a_missing_gpu_on_one_line(tmp_path, capsys) -> None:
    from midiforge.cli import main

    name = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    for argv in (["generate", "-o", str(tmp_path), "-n", "1"], ["evaluate", str(tmp_path)]):
        assert main([*argv, "--device", name]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"device: {name!r}" in err, err
    assert not any(tmp_path.iterdir())  # refused before anything was written
