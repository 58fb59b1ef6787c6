"""The learned controls at sampling time: each bar's requested control tokens, forced in order.

A token run prepared with ``prepare --controls`` (:mod:`midiforge.data.controls`) learned to
read ``Chord_*``, ``Density_*`` and ``Polyphony_*`` tokens right after each bar's ``Bar`` and
``TimeSig`` as what that bar will hold. When the user asks for a control (``--chords``,
``--density``, ``--polyphony``), :class:`ControlRule` makes the sampler write the bar's token
for it there: after the bar's head (its ``TimeSig``, or ``Bar`` without time signatures) and
after each control token, the next requested control's id is the only one allowed. Bar ``k``
(0-based, primer bars counted, as the chord steer counts) takes value ``k % len(values)`` of
each request, so a list shorter than the piece repeats. Controls not requested stay the model's
to write or leave out (the grammar, :func:`midiforge.sampling.grammar.control_rows`, keeps
their order), as the dropout it was trained with taught it.

The rule is the last of the musician's masks (:mod:`midiforge.sampling.token_rules`); the
length rule leaves room for the forced tokens of every bar it still has to close.
"""

from __future__ import annotations

from midiforge.data.controls import CONTROLS, request_values, vocab_controls
from midiforge.errors import MidiforgeError
from midiforge.sampling.musical import Musical
from midiforge.sampling.remi_state import CONTROL, RemiState, RemiVocab

TRAIN_WITH = "prepare --controls {name} and train on that dataset"


def requests(musical: Musical) -> dict[str, str]:
    """The controls a :class:`~midiforge.sampling.musical.Musical` asks for, by name → text."""
    asked = {"chords": musical.chords, "density": musical.density, "polyphony": musical.polyphony}
    return {name: text for name, text in asked.items() if text}


class ControlRule:
    """After each bar's head and each control token, only the next requested control's id.

    ``plan`` holds, per requested control in the stream's order, its family index (into
    :data:`midiforge.schema.CONTROL_TYPES`) and one id per bar of its cycle.
    """

    def __init__(self, vocab: RemiVocab, plan: list[tuple[int, list[int]]]) -> None:
        self.vocab, self.plan = vocab, plan
        self.bits = 0  # every forced id: the length rule lets these through when it closes
        for _, ids in plan:
            for i in ids:
                self.bits |= 1 << i

    @classmethod
    def build(cls, vocab: RemiVocab, tokenizer, musical: Musical) -> ControlRule | None:
        """The rule for ``musical``'s requests (None when the run learned none of them).

        A request for density or polyphony that the run has no tokens for is a one-line
        error; ``chords`` without chord tokens is the steer alone (every run takes it).
        """
        learned = vocab_controls(tokenizer.vocab)
        plan = []
        for name, text in requests(musical).items():
            if name not in learned:
                if name == "chords":
                    continue
                raise MidiforgeError(
                    f"{name}: {text!r} was given, but this model was not trained with {name} "
                    f"tokens; drop --{name}, or {TRAIN_WITH.format(name=name)}"
                )
            ids = [learned[name][value] for value in request_values(name, text)]
            plan.append((list(CONTROLS).index(name), ids))
        if musical.chords and not musical.chord_steer and "chords" not in learned:
            raise MidiforgeError(
                f"chord_steer: off, but this model has no chord tokens, so --chords "
                f"{musical.chords!r} would do nothing; keep the steer, or "
                f"{TRAIN_WITH.format(name='chords')}"
            )
        return cls(vocab, plan) if plan else None

    def forced(self, s: RemiState, r: int) -> int | None:
        """The id row ``r`` must write next, or None."""
        kind = s.last_kind[r]
        if kind == self.vocab.head:
            after = -1
        elif kind == CONTROL:
            after = self.vocab.families[s.token[r]]
        else:
            return None
        for family, ids in self.plan:
            if family > after:
                return ids[max(s.bars[r] - 1, 0) % len(ids)]
        return None

    def apply(self, s: RemiState, r: int, m: int) -> int:
        i = self.forced(s, r)
        return m if i is None else m & (1 << i)
