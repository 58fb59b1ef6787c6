"""Which torch device a stage runs on: the one reading of ``--device`` for every command.

``auto`` picks CUDA when a GPU is visible, else the CPU. An explicit ``cuda`` on a machine
without one is refused here with the reason and the fix, instead of torch's ``AssertionError``
("Torch not compiled with CUDA enabled") from deep inside the first ``.to()``.
"""

from __future__ import annotations

import torch

from midiforge.errors import MidiforgeError

ACCEPTED = "auto, cpu, cuda or cuda:N"


def _cuda_missing_reason() -> str:
    if torch.version.cuda is None:
        return f"torch {torch.__version__} was built without CUDA"
    return "no CUDA GPU is visible (check the driver and CUDA_VISIBLE_DEVICES)"


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device for ``device`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``).

    Raises
    ------
    MidiforgeError
        For any other name, and for ``cuda`` (or ``cuda:N``) when torch cannot use a GPU here
        or GPU ``N`` does not exist.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    index = device.partition(":")[2]
    if device not in ("cpu", "cuda") and not (device.startswith("cuda:") and index.isdigit()):
        raise MidiforgeError(f"device: {device!r} is not accepted; expected {ACCEPTED}")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise MidiforgeError(
                f"device: {device!r}: cuda is not available here: {_cuda_missing_reason()}; "
                "use --device cpu or auto"
            )
        if index and int(index) >= torch.cuda.device_count():
            raise MidiforgeError(
                f"device: {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                f"numbered 0..{torch.cuda.device_count() - 1}; use one of those, cpu or auto"
            )
    return torch.device(device)
