"""``tokenizer.json``: the MidiTok tokenizer a DATASET dir was encoded with (and its RUN copy).

The file is MidiTok's own (``tokenizer.save``); its ``"tokenization"`` key names the class,
which must be one of :data:`TOKENIZATIONS`, the single-stream tokenizations the dataset's
one-id-per-position arrays can hold. ``midiforge.data.encode`` builds fresh tokenizers from the
same table, so what ``prepare`` can write and what the store can read are one list. MidiTok is
imported on first use, so listing folders does not pay for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from midiforge.errors import MidiforgeError, choice_error
from midiforge.store.names import tokenizer_path

# lower-case name (``prepare --tokenizer``) -> MidiTok class name (tokenizer.json "tokenization")
TOKENIZATIONS = {"remi": "REMI", "tsd": "TSD", "midilike": "MIDILike", "structured": "Structured"}


def tokenizer_class(name: str) -> type:
    """The MidiTok class of tokenization ``name`` (a key of :data:`TOKENIZATIONS`)."""
    import miditok

    key = name.lower()
    if key not in TOKENIZATIONS:
        raise choice_error("tokenizer", name, sorted(TOKENIZATIONS))
    return getattr(miditok, TOKENIZATIONS[key])


def load_tokenizer(path: str | Path) -> Any:
    """Reload a saved tokenizer: ``path`` is the ``tokenizer.json`` or the folder holding it."""
    path = Path(path)
    if path.is_dir():
        path = tokenizer_path(path)
    if not path.is_file():
        raise MidiforgeError(f"tokenizer file not found: {path}")
    try:
        with path.open(encoding="utf-8") as fh:
            cls_name = json.load(fh).get("tokenization", "")
    except (OSError, ValueError, AttributeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MidiforgeError(f"{path}: not a readable tokenizer file ({reason})") from None
    by_class = {cls: key for key, cls in TOKENIZATIONS.items()}
    if not isinstance(cls_name, str) or cls_name not in by_class:
        raise MidiforgeError(
            f"{path}: tokenization {cls_name!r} is not supported; expected one of "
            + ", ".join(sorted(by_class))
        )
    try:
        tokenizer = tokenizer_class(by_class[cls_name])(params=path)
    except Exception as exc:  # MidiTok reads the rest of the file with no checks of its own
        raise MidiforgeError(
            f"{path}: damaged tokenizer file, not loaded ({type(exc).__name__}: {exc}); copy "
            "the tokenizer.json of the dataset the run was trained on"
        ) from None
    if len(tokenizer) == 0:
        raise MidiforgeError(f"{path}: the tokenizer has no vocabulary; the file is damaged")
    return tokenizer


def save_tokenizer(tokenizer: Any, folder: str | Path) -> Path:
    """Write ``folder/tokenizer.json`` (MidiTok's format) and return its path."""
    path = tokenizer_path(folder)
    tokenizer.save(path.parent, filename=path.name)
    return path
