"""The one exception type a user sees.

Library code raises :class:`MidiforgeError` for anything a person can fix (a missing folder, a
bad option value, a file that does not match what was expected). The command line prints its
message on one line and exits with status 2; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class MidiforgeError(Exception):
    """A problem with the user's input or environment, stated so that it names the fix."""


def choice_error(name: str, value: object, accepted: object) -> MidiforgeError:
    """Build the standard message for an option value outside its accepted set."""
    if isinstance(accepted, (list, tuple, set, frozenset)):
        accepted = ", ".join(sorted(map(str, accepted)))
    return MidiforgeError(f"{name}: {value!r} is not accepted; expected one of: {accepted}")
