"""The array conventions every layer shares: the columns of a note row and "no label".

They sit at the bottom of the package because the encoder writes note rows (``data``), the
dataset format stores them (``store``), and note models read them (``models``); each imports
them from here rather than declaring its own copy.
"""

from __future__ import annotations

NOTE_FIELDS: tuple[str, ...] = (
    "pitch",  # MIDI number 0..127
    "frequency",  # Hz, 440 * 2 ** ((pitch - 69) / 12)
    "onset",  # beats from the start
    "duration",  # beats
    "delta",  # beats since the previous note's onset; 0 within a chord
    "velocity",  # 1..127
    "program",  # General MIDI program 0..127, -1 for drums
)
FIELD = {name: i for i, name in enumerate(NOTE_FIELDS)}  # column index of each field

# The label index of a file without a label (a DATASET's labels/{split}.npy) and of a request
# for unconditional sampling (label-conditioned models keep an extra embedding row for it).
NO_LABEL = -1

# The token types of the learned per-bar controls (``prepare --controls``), in the order they
# follow a bar's Bar (and TimeSig) token: ``midiforge.data.controls`` writes them, the decoders
# drop them like specials, the token sampler's grammar and rules place and force them.
CONTROL_TYPES: tuple[str, ...] = ("Chord", "Density", "Polyphony")
CONTROL_NAMES: tuple[str, ...] = ("chords", "density", "polyphony")  # their option names
# The token type of the fill-in-the-middle markers (``prepare --fim``, ``midiforge.data.fim``):
# never sampled (the grammar gives them no place) and dropped by the decoders like a control.
FIM_TYPE = "Infill"

# The entry of a run's ``style_keys`` (train files per key and style label) that counts every
# train file, labelled or not: the keys an unconditional sample is moved toward.
ALL_STYLES = "*"
