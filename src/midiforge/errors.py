"""The one exception type a user sees, and the words for the operating system's refusals.

Library code raises :class:`MidiforgeError` for anything a person can fix (a missing folder, a
bad option value, a file that does not match what was expected). The command line prints its
message on one line and exits with status 2. An :class:`OSError` (a full disk, a read-only or
forbidden folder, a path that is a file) is just as fixable: :func:`os_error_message` says it in
one line naming the path and what to do. Everything else is a bug (exit status 1).
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path


class MidiforgeError(Exception):
    """A problem with the user's input or environment, stated so that it names the fix."""


def choice_error(name: str, value: object, accepted: object) -> MidiforgeError:
    """Build the standard message for an option value outside its accepted set."""
    if isinstance(accepted, (list, tuple, set, frozenset)):
        accepted = ", ".join(sorted(map(str, accepted)))
    return MidiforgeError(f"{name}: {value!r} is not accepted; expected one of: {accepted}")


# errno -> (what happened, what to do); the path is put in front
_OS_ERRORS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device", "free some space or write somewhere else"),
    errno.EDQUOT: ("disk quota exceeded", "free some space or write somewhere else"),
    errno.EFBIG: ("file too large for this file system or limit", "write somewhere else"),
    errno.EROFS: ("the file system is read-only", "write to a folder on a writable disk"),
    errno.EACCES: ("permission denied", "choose a path you may use, or change its permissions"),
    errno.EPERM: ("operation not permitted", "choose a path you may use"),
    errno.ENOENT: ("no such file or folder", "check the path"),
    errno.EEXIST: ("already exists, and is not what is needed here", "choose another path"),
    errno.ENOTDIR: ("a part of this path is a file, not a folder", "choose another path"),
    errno.EISDIR: ("is a folder where a file is needed", "give a file"),
    errno.ENAMETOOLONG: ("the name is too long", "choose a shorter path"),
    errno.EMFILE: ("too many open files", "raise the limit (ulimit -n) or use fewer jobs"),
    errno.EIO: ("input/output error", "check the disk"),
}


def os_error_message(exc: OSError) -> str:
    """One line for an :class:`OSError`: the path(s), what happened, what to do."""
    what, fix = _OS_ERRORS.get(exc.errno or -1, (exc.strerror or str(exc) or "failed", ""))
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    where = " -> ".join(paths) or "a file operation"
    return f"{where}: {what}" + (f"; {fix}" if fix else "")


@contextlib.contextmanager
def naming(path: str | Path) -> Iterator[None]:
    """Let an :class:`OSError` raised inside name ``path`` when it names no file itself.

    A write that fails on a full disk raises ``ENOSPC`` without a file name (it is the
    ``write`` call, not the ``open``); the person reading the message needs to know which one.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise
