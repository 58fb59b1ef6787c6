"""Writing files so that a crash or a full disk never leaves half of one behind.

Every file of a DATASET or RUN dir is written to a hidden temporary name in the same folder and
renamed over its final name only once complete (a rename within one file system is atomic):
readers see the old file or the new one, never a mix. When the write fails (``ENOSPC``,
``EROFS``, Ctrl-C) the temporary file is removed and the old file is untouched. A process
killed with SIGKILL cannot clean up after itself; :func:`remove_stale` removes what such a
process left, by the process id in the name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from midiforge.errors import MidiforgeError, naming

TEMP_SUFFIX = ".tmp"  # .{name}.{pid}.tmp
_OS_ERROR_TEXT = re.compile(r"os error (\d+)")  # how Rust libraries (safetensors) report errno


def temp_name(path: Path) -> Path:
    """The temporary sibling a write of ``path`` by this process goes to."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block ends normally.

    On any exception the temporary file is deleted and the exception (an ``OSError`` now naming
    ``path`` when it named no file) propagates; ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, f".{path.name}.")
    tmp = temp_name(path)
    try:
        with naming(path):
            yield tmp
            os.replace(tmp, path)
    except OSError as exc:
        name_destination(exc, tmp, path)
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def name_destination(exc: OSError, tmp: Path, final: Path) -> None:
    """Say ``final`` in an error about the temporary ``tmp`` (or a file inside it): the
    person wrote to ``final`` and never heard of the temporary name."""
    for attr in ("filename", "filename2"):
        name = getattr(exc, attr)
        if name is not None and str(name).startswith(str(tmp)):
            setattr(exc, attr, str(final) + str(name)[len(str(tmp)) :])


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def read_json_object(path: Path, fix: str) -> dict[str, Any]:
    """A JSON object read back from ``path``; unreadable text or another JSON value is one
    error naming the file and ``fix`` (what to do about it)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MidiforgeError(f"{path}: cannot read it ({exc}); {fix}") from None
    if not isinstance(value, dict):
        raise MidiforgeError(f"{path}: expected a JSON object, got {type(value).__name__}; {fix}")
    return value


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


def remove_stale(folder: Path, prefix: str) -> None:
    """Delete ``folder/{prefix}*.{pid}.tmp`` (files or folders) whose process is gone."""
    if not folder.is_dir():
        return
    for old in folder.glob(f"{prefix}*{TEMP_SUFFIX}"):
        pid = old.name[: -len(TEMP_SUFFIX)].rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    old.unlink()


class _RecordingFile(io.FileIO):
    """A file that remembers the OSError of a failed write (torch.save turns it into a
    RuntimeError "unexpected pos", which says nothing about a full disk)."""

    error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            self.error = exc
            raise


def write_with(path: Path, writer: Callable[[Any], None]) -> None:
    """``writer(file)`` into ``path`` (an open binary file); the OS's error is the one raised."""
    fh = _RecordingFile(path, "wb")
    try:
        with fh:
            writer(fh)
            if fh.error is not None:  # the library swallowed it
                raise fh.error
    except Exception as exc:
        error = exc if isinstance(exc, OSError) else fh.error
        if error is None:
            raise
        if error.filename is None:
            error.filename = str(path)
        raise error from None


def os_error_of(exc: BaseException, path: Path) -> OSError | None:
    """The OSError behind a library's own exception text ("... (os error 28)"), if any."""
    found = _OS_ERROR_TEXT.search(str(exc))
    if found is None:
        return None
    number = int(found.group(1))
    return OSError(number, os.strerror(number), str(path))
