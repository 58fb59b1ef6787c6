"""``tokenizer.json``: the MidiTok tokenizer a DATASET dir was encoded with (and its RUN copy).

The file is MidiTok's own (``tokenizer.save``); its ``"tokenization"`` key names the class,
which must be one of :data:`TOKENIZATIONS`, the single-stream tokenizations the dataset's
one-id-per-position arrays can hold. ``midiforge.data.encode`` builds fresh tokenizers from the
same table, so what ``prepare`` can write and what the store can read are one list. MidiTok is
imported on first use, so listing folders does not pay for it.

MidiTok saves an untrained tokenizer as its config alone and rebuilds the vocabulary from it on
load, so tokens added with ``add_to_vocab`` (the learned controls, ``prepare --controls``) would
be lost: :func:`save_tokenizer` lists them under :data:`ADDED_TOKENS` (in id order, after the
config's own) and :func:`load_tokenizer` adds them back, checking each lands on its saved id.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from midiforge.errors import MidiforgeError, choice_error
from midiforge.store.names import tokenizer_path

# lower-case name (``prepare --tokenizer``) -> MidiTok class name (tokenizer.json "tokenization")
TOKENIZATIONS = {"remi": "REMI", "tsd": "TSD", "midilike": "MIDILike", "structured": "Structured"}
ADDED_TOKENS = "midiforge_added_tokens"  # the file's key: [[token, id], ...] beyond the config's


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
            params = json.load(fh)
        cls_name, added = params.get("tokenization", ""), params.get(ADDED_TOKENS) or []
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
    _add_back(tokenizer, added, path)
    return tokenizer


def _add_back(tokenizer: Any, added: list, path: Path) -> None:
    """The saved added tokens, each back on its id (else the file is damaged: say so)."""
    for entry in added:
        fits = isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
        if fits and entry[0] not in tokenizer.vocab:
            tokenizer.add_to_vocab(entry[0])
        if not fits or tokenizer.vocab.get(entry[0]) != entry[1]:
            raise MidiforgeError(
                f"{path}: added token {entry!r} does not fit the vocabulary (expected "
                f"[token, id] with the id after the config's {len(tokenizer)} tokens); the file "
                "is damaged"
            )


def added_tokens(tokenizer: Any) -> list[list]:
    """``[token, id]`` of the tokens beyond the vocabulary the tokenizer's config builds (what
    ``add_to_vocab`` added), in id order; none for a BPE tokenizer (MidiTok saves its vocab)."""
    if getattr(tokenizer, "is_trained", False):
        return []
    base = len(type(tokenizer)(tokenizer_config=copy.deepcopy(tokenizer.config)))
    by_id = sorted(tokenizer.vocab.items(), key=lambda kv: kv[1])
    return [[token, i] for token, i in by_id if i >= base]


def save_tokenizer(tokenizer: Any, folder: str | Path) -> Path:
    """Write ``folder/tokenizer.json`` (MidiTok's format) and return its path."""
    path = tokenizer_path(folder)
    added = added_tokens(tokenizer)
    extra = {ADDED_TOKENS: added} if added else None
    tokenizer.save(path.parent, additional_attributes=extra, filename=path.name)
    return path
