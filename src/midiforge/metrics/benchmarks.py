"""The published polyphonic-music likelihood protocols, reproduced on the standard splits.

``jsb16``
    ``jsb_chorales/Jsb16thSeparated.json``: Bach chorales on a 16th-note grid with exactly four
    voices; each step is serialized soprano, alto, tenor, bass, a silent voice as ``REST``.
    Scored: NLL per token on valid and test (Coconet, Music Transformer report validation).
``polyphonic``
    ``polyphonic_benchmark/{set}.mat`` piano rolls (Boulanger-Lewandowski et al., 2012). A step
    is its sounding pitches in ascending order then ``END_STEP``; since this encoding is a
    bijection, the probability the model gives a step's tokens is the probability of that roll
    frame. Scored: NLL per frame on test = the summed NLL of all tokens of every step except
    each piece's first, divided by the number of scored steps.

Both encodings write an ordinary DATASET dir through the store's one dataset writer
(``docs/architecture.md``, no ``tokenizer.json``; the manifest names the vocabulary), so the one
trainer trains on them; every piece starts with ``BOS`` so its first real token is a scored
target. The manifest also names the pitch ids (``tokenizer.pitch_ids``), so ``train.augment``
transposes the training windows (train split only; valid and test are never touched).
Training a model for a protocol and scoring it is
:func:`midiforge.training.benchmark.benchmark`; this module encodes and scores.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midiforge.data.augment import PITCH_IDS_KEY
from midiforge.errors import MidiforgeError, choice_error
from midiforge.schema import NOTE_FIELDS
from midiforge.store.dataset_writer import DatasetWriter
from midiforge.store.names import SPLITS

PAD, BOS, SEP = 0, 1, 2  # SEP is REST in jsb16 and END_STEP in polyphonic
FIRST_PITCH_ID = 3
N_MIDI_PITCHES = 128
JSB16_VOCAB = FIRST_PITCH_ID + N_MIDI_PITCHES  # 131
JSB16_VOICES = 4  # soprano, alto, tenor, bass
JSB16_SILENT = -1  # how the JSON marks a silent voice
ROLL_LOWEST_PITCH = 21  # column 0 of the .mat rolls is A0
ROLL_PITCHES = 88
POLY_VOCAB = FIRST_PITCH_ID + ROLL_PITCHES  # 91
POLY_SETS = {
    "jsb": "JSB_Chorales.mat",
    "nottingham": "Nottingham.mat",
    "musedata": "MuseData.mat",
    "piano": "Piano_midi.mat",
}
MAT_KEYS = {"train": "traindata", "valid": "validdata", "test": "testdata"}
RESULT_FILE = "result.json"
DATASETS_ENV = "MIDIFORGE_DATASETS"
DEFAULT_DATASETS = Path("..") / "shared" / "datasets"  # relative to the repository root

# Published rows: (model, nats, split); jsb16 per token, polyphonic per frame.
PUBLISHED = {
    "jsb16": [
        ("Coconet (left-to-right)", 0.436, "valid"),
        ("Transformer", 0.417, "valid"),
        ("Music Transformer", 0.335, "valid"),
    ],
    "polyphonic/jsb": [("LSTM", 8.45, "test"), ("TCN", 8.10, "test"), ("RNN-NADE", 5.19, "test")],
    "polyphonic/nottingham": [
        ("LSTM", 3.29, "test"),
        ("TCN", 3.07, "test"),
        ("RNN-NADE", 2.31, "test"),
    ],
    # Bai et al. (2018) report LSTM and TCN on JSB and Nottingham only
    "polyphonic/musedata": [("RNN-NADE", 5.60, "test")],
    "polyphonic/piano": [("RNN-NADE", 7.05, "test")],
}

# ----------------------------------------------------------------------------- encodings


def encode_jsb16(piece: list[list[int]]) -> np.ndarray:
    """Steps ``[[s, a, t, b], ...]`` (−1 = silent) → ids ``[BOS, s, a, t, b, s, ...]``."""
    steps = np.asarray(piece, dtype=np.int64).reshape(-1, JSB16_VOICES)  # (T, 4)
    body = np.where(steps == JSB16_SILENT, SEP, steps + FIRST_PITCH_ID)
    return np.concatenate([[BOS], body.ravel()]).astype(np.int32)


def decode_jsb16(ids: np.ndarray) -> list[list[int]]:
    """Inverse of :func:`encode_jsb16`."""
    body = np.asarray(ids, dtype=np.int64)[1:].reshape(-1, JSB16_VOICES)
    return np.where(body == SEP, JSB16_SILENT, body - FIRST_PITCH_ID).tolist()


def encode_roll(roll: np.ndarray) -> np.ndarray:
    """Piano roll ``(T, 88)`` → ids ``[BOS, pitches of step 0 ascending, END_STEP, ...]``."""
    out = [BOS]
    for frame in np.asarray(roll) > 0:
        out.extend((np.flatnonzero(frame) + FIRST_PITCH_ID).tolist())
        out.append(SEP)
    return np.asarray(out, dtype=np.int32)


def decode_roll(ids: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_roll`: a binary ``(T, 88)`` uint8 roll."""
    ids = np.asarray(ids, dtype=np.int64)[1:]
    ends = np.flatnonzero(ids == SEP)
    roll = np.zeros((len(ends), ROLL_PITCHES), dtype=np.uint8)
    start = 0
    for t, end in enumerate(ends):
        roll[t, ids[start:end] - FIRST_PITCH_ID] = 1
        start = end + 1
    return roll


def step_index(ids: np.ndarray) -> np.ndarray:
    """The step each target ``ids[1:]`` belongs to (``END_STEP`` closes its step), ``(n-1,)``."""
    body = np.asarray(ids)[1:]
    return np.concatenate([[0], np.cumsum(body == SEP)[:-1]])


# ----------------------------------------------------------------------------- sources


def datasets_root(path: str | Path | None = None) -> Path:
    """The shared datasets folder: ``path``, else $MIDIFORGE_DATASETS, else ../shared/datasets."""
    root = Path(path or os.environ.get(DATASETS_ENV) or DEFAULT_DATASETS)
    if not root.is_dir():
        raise MidiforgeError(
            f"--datasets {root}: folder not found; give the folder holding jsb_chorales/ and "
            f"polyphonic_benchmark/ (or set {DATASETS_ENV})"
        )
    return root


def load_jsb16(root: Path) -> dict[str, list[list[list[int]]]]:
    """``split -> pieces -> steps -> [s, a, t, b]`` from ``jsb_chorales/Jsb16thSeparated.json``."""
    path = root / "jsb_chorales" / "Jsb16thSeparated.json"
    if not path.is_file():
        raise MidiforgeError(f"{path} is missing; --datasets must hold jsb_chorales/")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {split: data[split] for split in SPLITS}


def load_rolls(root: Path, name: str) -> dict[str, list[np.ndarray]]:
    """``split -> pieces`` of binary ``(T, 88)`` rolls from ``polyphonic_benchmark/*.mat``."""
    import scipy.io

    if name not in POLY_SETS:
        raise choice_error("--set", name, POLY_SETS)
    path = root / "polyphonic_benchmark" / POLY_SETS[name]
    if not path.is_file():
        raise MidiforgeError(f"{path} is missing; --datasets must hold polyphonic_benchmark/")
    mat = scipy.io.loadmat(path)
    return {s: [np.asarray(p, dtype=np.uint8) for p in mat[MAT_KEYS[s]][0]] for s in SPLITS}


# ----------------------------------------------------------------------------- DATASET dir


def write_token_dataset(
    out: Path,
    pieces: dict[str, list[np.ndarray]],
    name: str,
    vocab_size: int,
    pitch_ids: dict[str, int] | None = None,
) -> Path:
    """Write ``pieces`` (split → id arrays) as a DATASET dir the trainer reads.

    The pieces have no note rows (the encodings are not MIDI) and no labels; ``out`` is
    replaced whole. ``pitch_ids`` (:func:`pitch_ids`) lets ``train.augment`` transpose them.
    """
    tokenizer: dict[str, Any] = {
        "name": name,
        "vocab_size": vocab_size,
        "bpe": False,
        "special_ids": {"PAD": PAD, "BOS": BOS},
    }
    if pitch_ids is not None:
        tokenizer[PITCH_IDS_KEY] = dict(pitch_ids)
    no_notes = np.zeros((0, len(NOTE_FIELDS)), np.float32)
    files = []
    with DatasetWriter(out) as writer:
        for split in SPLITS:
            for seq in pieces.get(split, []):
                index = writer.add(split, seq, no_notes, None)
                files.append(
                    {
                        "path": f"{name}/{split}/{index:04d}",
                        "hash": None,
                        "split": split,
                        "index": index,
                        "label": None,
                        "status": "kept",
                        "reason": None,
                        "notes": 0,
                        "tokens": len(seq),
                        "tracks": 0,
                        "beats": 0.0,
                    }
                )
        writer.commit(
            {
                "options": {"benchmark": name},
                "tokenizer": tokenizer,
                "labels": [],
                "files": files,
                "summary": {"kept": len(files), "skipped": {}, "seconds": 0.0},
            }
        )
    return Path(out)


def benchmark_key(name: str, corpus: str | None) -> str:
    """``"jsb16"`` or ``"polyphonic/<corpus>"`` (default corpus ``jsb``), checked."""
    if name not in ("jsb16", "polyphonic"):
        raise choice_error("benchmark", name, ["jsb16", "polyphonic"])
    if name == "jsb16":
        return name
    corpus = corpus or "jsb"
    if corpus not in POLY_SETS:
        raise choice_error("--set", corpus, POLY_SETS)
    return f"{name}/{corpus}"


def vocab_size(key: str) -> int:
    """The vocabulary of a benchmark's encoding."""
    return JSB16_VOCAB if key == "jsb16" else POLY_VOCAB


def pitch_ids(key: str) -> dict[str, int]:
    """The MIDI pitches ``low..high`` of a benchmark's encoding and the id of ``low``."""
    if key == "jsb16":
        return {"first_id": FIRST_PITCH_ID, "low": 0, "high": N_MIDI_PITCHES - 1}
    high = ROLL_LOWEST_PITCH + ROLL_PITCHES - 1
    return {"first_id": FIRST_PITCH_ID, "low": ROLL_LOWEST_PITCH, "high": high}


def encode_benchmark(name: str, corpus: str | None, root: Path) -> dict[str, list[np.ndarray]]:
    """The chosen benchmark's three splits as token id arrays (split → pieces)."""
    if name == "jsb16":
        return {s: [encode_jsb16(p) for p in ps] for s, ps in load_jsb16(root).items()}
    rolls = load_rolls(root, corpus or "jsb")
    return {s: [encode_roll(r) for r in rs] for s, rs in rolls.items()}


# ----------------------------------------------------------------------------- scoring


def score_split(model: Any, pieces: list[np.ndarray], context: int | None, per: str) -> dict:
    """NLL of a split per token (``per="token"``) or per frame, first frame unscored."""
    from midiforge.metrics.likelihood import sequence_nll

    total, count = 0.0, 0
    for ids in pieces:
        nll = sequence_nll(model, ids, context)
        if per == "token":
            total, count = total + float(nll.sum()), count + len(nll)
        else:
            steps = step_index(ids)  # (n-1,)
            total += float(nll[steps > 0].sum())
            count += int(steps.max())  # steps 1..T-1 are scored
    return {"nats": total / count if count else math.nan, "count": count}


@dataclass
class BenchmarkResult:
    """Our figures, where they came from, and the published rows to compare against."""

    name: str
    model: str
    run_dir: str
    unit: str
    scores: dict[str, dict[str, float]]
    published: list[tuple[str, float, str]]
    seconds: float

    def table(self) -> str:
        """Markdown rows: the published results, then ours."""
        lines = [f"| model | split | nats/{self.unit} |", "| --- | --- | --- |"]
        lines += [f"| {m} (published) | {s} | {v:.3f} |" for m, v, s in self.published]
        lines += [
            f"| midiforge {self.model} | {split} | {v['nats']:.3f} |"
            for split, v in self.scores.items()
        ]
        return "\n".join(lines)


def score_run(
    key: str, loaded: Any, pieces: dict[str, list[np.ndarray]], run_dir: str
) -> BenchmarkResult:
    """Score a loaded run (:class:`midiforge.store.run_dir.LoadedRun`) as the papers report.

    ``jsb16``: NLL per token on valid and test; polyphonic: NLL per frame on test. The run must
    have been trained on this benchmark's encoding (its vocabulary says so).
    """
    vocab = vocab_size(key)
    if int((loaded.config.get("tokenizer") or {}).get("vocab_size", -1)) != vocab:
        raise MidiforgeError(
            f"--run {run_dir}: it was not trained on the {key} encoding (vocabulary of "
            f"{vocab}); train it with `midiforge benchmark {key.split('/')[0]}` instead"
        )
    net = loaded.model
    context = int(loaded.config["train"]["seq_len"]) if hasattr(net.config, "max_seq_len") else None
    per = "token" if key == "jsb16" else "frame"
    scored = ("valid", "test") if key == "jsb16" else ("test",)  # what the papers report
    return BenchmarkResult(
        name=key,
        model=loaded.config["model"],
        run_dir=str(run_dir),
        unit=per,
        scores={split: score_split(net, pieces[split], context, per) for split in scored},
        published=PUBLISHED[key],
        seconds=0.0,
    )


def write_result(result: BenchmarkResult, folder: Path) -> Path:
    """``folder/result.json``: the figures, their source and the published rows."""
    path = Path(folder) / RESULT_FILE
    path.write_text(json.dumps(result.__dict__, indent=1), encoding="utf-8")
    return path
