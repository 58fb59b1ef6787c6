"""tokenizer.json: every tokenization prepare can write is read back; others are named."""

from __future__ import annotations

import json

import pytest

from midiforge.data.encode import build_tokenizer
from midiforge.errors import MidiforgeError
from midiforge.store.names import tokenizer_path
from midiforge.store.tokenizer_file import TOKENIZATIONS, load_tokenizer, save_tokenizer


@pytest.mark.parametrize("name", sorted(TOKENIZATIONS))
def test_saved_tokenizers_load_back_the_same(name, tmp_path):
    tokenizer = build_tokenizer(name)
    path = save_tokenizer(tokenizer, tmp_path)
    assert path == tokenizer_path(tmp_path)
    for where in (path, tmp_path):  # the file or the folder holding it
        again = load_tokenizer(where)
        assert type(again) is type(tokenizer) and again.vocab == tokenizer.vocab


def test_unknown_or_broken_files_are_named(tmp_path):
    with pytest.raises(MidiforgeError, match="tokenizer file not found"):
        load_tokenizer(tmp_path)
    tokenizer_path(tmp_path).write_text(json.dumps({"tokenization": "Octuple"}))
    with pytest.raises(MidiforgeError, match="'Octuple' is not supported; expected one of"):
        load_tokenizer(tmp_path)
    tokenizer_path(tmp_path).write_text("{")
    with pytest.raises(MidiforgeError, match="not a readable tokenizer file"):
        load_tokenizer(tmp_path)
