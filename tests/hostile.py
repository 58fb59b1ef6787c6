"""A hostile but fair set of inputs: broken MIDI files and damaged RUN dirs, built for real.

Used by ``tests/test_fuzz.py`` (a small set) and ``bench/fuzz.py`` (a larger one). Everything
is made from real material: MIDI files of ``../shared/datasets`` truncated or bit-flipped, raw
MIDI bytes where symusic cannot write the broken value (ticks per quarter 0, a time signature
denominator of 2**255, deltas past the 32-bit tick range), and RUN dirs copied from a tiny run
that really trained, then damaged one file or one field at a time.
"""

from __future__ import annotations

import json
import pickle
import random
import shutil
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

CONFIG = "config.yaml"
WEIGHTS = "model.safetensors"
LAST = Path("checkpoints") / "last"
STATE = LAST / "state.pt"
PWNED = "pwned"  # the pickled payload creates this file next to state.pt if it ever runs


# --------------------------------------------------------------------------- raw MIDI


def _vlq(value: int) -> bytes:
    """A MIDI variable-length quantity (at most 0x0FFFFFFF, four bytes)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def raw_midi(events: list[tuple[int, bytes]], *, division: int = 480) -> bytes:
    """A format-0 MIDI file: one track of ``(delta ticks, event bytes)`` and end of track."""
    body = b"".join(_vlq(delta) + event for delta, event in events) + b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, division)
    return header + b"MTrk" + struct.pack(">I", len(body)) + body


def _note(pitch: int, length: int, delta: int = 0) -> list[tuple[int, bytes]]:
    return [(delta, bytes([0x90, pitch, 80])), (length, bytes([0x80, pitch, 0]))]


def _tune(n: int = 40, step: int = 240) -> list[tuple[int, bytes]]:
    """``n`` notes of a scale, one every ``step`` ticks: enough to encode and to prime."""
    events: list[tuple[int, bytes]] = []
    for i in range(n):
        events += _note(60 + (i * 2) % 24, step)
    return events


def crafted_midis() -> dict[str, bytes]:
    """Named raw MIDI files with the values that once crashed a command."""
    time_sig = lambda num, den_power: (0, bytes([0xFF, 0x58, 4, num, den_power, 24, 8]))  # noqa: E731
    tempo = lambda mspq: (0, b"\xff\x51\x03" + mspq.to_bytes(3, "big"))  # noqa: E731
    far = 0x0FFFFFFF  # the largest delta a MIDI file can state
    return {
        "tpq0.mid": raw_midi(_tune(), division=0),
        "tpq1.mid": raw_midi(_tune(step=1), division=1),
        "tpq32767.mid": raw_midi(_tune(step=30000), division=0x7FFF),
        "smpte.mid": raw_midi(_tune(), division=0xE728),  # -25 fps, 40 ticks per frame
        "den255.mid": raw_midi([time_sig(4, 255), *_tune()]),
        "den0num0.mid": raw_midi([time_sig(0, 0), *_tune()]),
        "den2pow7.mid": raw_midi([time_sig(3, 7), *_tune()]),
        "tempo0.mid": raw_midi([tempo(0), *_tune()]),
        "tempo_max.mid": raw_midi([tempo(0xFFFFFF), *_tune()]),
        "huge_times.mid": raw_midi([*_note(60, 10), *[(far, b"\xb0\x07\x40")] * 9, *_tune()]),
        "huge_at_tpq1.mid": raw_midi(
            [(far, b"\xb0\x07\x40"), (far, b"\xb0\x07\x40"), *_tune(step=1)], division=1
        ),
        "huge_duration.mid": raw_midi([(0, b"\x90\x3c\x50"), *[(far, b"\xb0\x07\x40")] * 12]),
        "no_notes.mid": raw_midi([time_sig(4, 2), tempo(500_000)]),
        "one_note.mid": raw_midi(_note(60, 480)),
        "unisons.mid": raw_midi([(0, bytes([0x90, 60, 80]))] * 200 + [(480, b"\x80\x3c\x00")]),
        "header_only.mid": raw_midi([])[:14],
        "empty.mid": b"",
        "bad_length.mid": raw_midi(_tune())[:18] + b"\x7f\xff\xff\xff" + raw_midi(_tune())[22:],
        "running_status_garbage.mid": raw_midi([(0, b"\x90\x3c\x50"), (0, b"\xff\xff\xff")]),
    }


def damaged_copies(source: bytes, rng: random.Random, count: int) -> Iterator[bytes]:
    """Truncations and bit flips of a real MIDI file (``count`` of each)."""
    for _ in range(count):
        yield source[: rng.randrange(0, len(source))]
    for _ in range(count):
        data = bytearray(source)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        yield bytes(data)


def write_midis(folder: Path, real: list[Path], seed: int, per_file: int) -> list[Path]:
    """Every hostile MIDI file in ``folder``: crafted, random bytes, damaged real files."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: data for name, data in crafted_midis().items()}
    for i in range(per_file):
        files[f"random_{i:03d}.mid"] = rng.randbytes(rng.choice([1, 14, 100, 3000]))
    for n, path in enumerate(real):
        for i, data in enumerate(damaged_copies(path.read_bytes(), rng, per_file)):
            files[f"damaged_{n:02d}_{i:03d}.mid"] = data
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


# --------------------------------------------------------------------------- damaged RUN dirs


@dataclass
class Damage:
    """One way of damaging a copy of a good RUN dir."""

    name: str
    apply: Callable[[Path], None]


class _Payload:
    """A pickle that would create a file if it were ever unpickled (weights_only must refuse)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def _edit_config(section: str | None, key: str, value: object) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        config = yaml.safe_load((run / CONFIG).read_text(encoding="utf-8"))
        node = config if section is None else config[section]
        node[key] = value
        (run / CONFIG).write_text(yaml.safe_dump(config), encoding="utf-8")

    return apply


def _write(rel: str | Path, data: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / rel
        old = path.read_bytes() if path.is_file() else b""
        path.write_bytes(data(old) if callable(data) else data)

    return apply


def _remove(rel: str | Path) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        path = run / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    return apply


def _pickled_state(run: Path) -> None:
    with (run / STATE).open("wb") as fh:
        pickle.dump({"step": 1, "payload": _Payload(str(run / PWNED))}, fh, protocol=2)


def _torch_state(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        import torch

        state = torch.load(run / STATE, weights_only=True)
        state = edit(state) or state
        torch.save(state, run / STATE)

    return apply


def _crash_between_renames(run: Path) -> None:
    """What a kill between the checkpoint's two renames leaves: the old one beside, no last."""
    (run / LAST).rename(run / "checkpoints" / ".last-old")


def _without(state: dict, key: str) -> dict:
    return {k: v for k, v in state.items() if k != key}


def _set(key, value):
    def edit(state: dict) -> None:
        state[key] = value

    return edit


def _bitflips(seed: int) -> Callable[[bytes], bytes]:
    def flip(data: bytes) -> bytes:
        rng = random.Random(seed)
        out = bytearray(data)
        for _ in range(4):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)

    return flip


def run_damages(model_section: dict, extra: int = 0) -> list[Damage]:
    """Every damage to try on a good run; ``extra`` adds that many bit-flip variants per file."""
    cfg = lambda key, value: _edit_config("model_config", key, value)  # noqa: E731
    width = next(k for k in ("d_hidden", "d_model", "channels") if k in model_section)
    damages = [
        Damage("config: invalid YAML", _write(CONFIG, b"model: [unclosed\n  - {")),
        Damage("config: a list", _write(CONFIG, b"- 1\n- 2\n")),
        Damage("config: empty", _write(CONFIG, b"")),
        Damage("config: binary", _write(CONFIG, bytes(range(256)))),
        Damage("config: model unknown", _edit_config(None, "model", "mystery")),
        Damage("config: model a list", _edit_config(None, "model", ["lstm"])),
        Damage("config: model_config a string", _edit_config(None, "model_config", "big")),
        Damage("config: train a list", _edit_config(None, "train", [1, 2])),
        Damage("config: labels a number", _edit_config(None, "labels", 7)),
        Damage("config: format_version text", _edit_config(None, "format_version", "one")),
        Damage("config: width text", cfg(width, "wide")),
        Damage("config: width a list", cfg(width, [1, 2])),
        Damage("config: width negative", cfg(width, -16)),
        Damage("config: width zero", cfg(width, 0)),
        Damage("config: width enormous", cfg(width, 2**40)),
        Damage("config: width float", cfg(width, 16.5)),
        Damage("config: width bool", cfg(width, True)),
        Damage("config: layers enormous", cfg("n_layers", 10**7)),
        Damage("config: dropout 2.0", cfg("dropout", 2.0)),
        Damage("config: dropout NaN", cfg("dropout", float("nan"))),
        Damage("config: dropout text", cfg("dropout", "lots")),
        Damage("config: unknown key", cfg("wings", 2)),
        Damage("config: train.lr NaN", _edit_config("train", "lr", float("nan"))),
        Damage("config: train.lr text", _edit_config("train", "lr", "fast")),
        Damage("config: train.steps text", _edit_config("train", "steps", "many")),
        Damage("config: train.steps negative", _edit_config("train", "steps", -3)),
        Damage("config: train.batch_size enormous", _edit_config("train", "batch_size", 10**9)),
        Damage("config: train.seq_len enormous", _edit_config("train", "seq_len", 10**9)),
        Damage("config: train.seed negative", _edit_config("train", "seed", -1)),
        Damage("config: train.seed 2**70", _edit_config("train", "seed", 2**70)),
        Damage("weights: truncated", _write(WEIGHTS, lambda b: b[: len(b) // 2])),
        Damage("weights: header only", _write(WEIGHTS, lambda b: b[:200])),
        Damage("weights: garbage", _write(WEIGHTS, bytes(range(256)) * 40)),
        Damage("weights: empty", _write(WEIGHTS, b"")),
        Damage("weights: huge header length", _write(WEIGHTS, struct.pack("<Q", 2**62) + b"{}")),
        Damage("weights: header not JSON", _write(WEIGHTS, struct.pack("<Q", 8) + b"notjson!")),
        Damage("weights: missing", _remove(WEIGHTS)),
        Damage("last weights: truncated", _write(LAST / WEIGHTS, lambda b: b[: len(b) // 3])),
        Damage("state: truncated", _write(STATE, lambda b: b[: len(b) // 2])),
        Damage("state: garbage", _write(STATE, bytes(range(256)) * 10)),
        Damage("state: empty", _write(STATE, b"")),
        Damage("state: pickled object", _pickled_state),
        Damage("state: step text", _torch_state(_set("step", "three"))),
        Damage("state: step negative", _torch_state(_set("step", -5))),
        Damage("state: optimizer missing", _torch_state(lambda s: _without(s, "optimizer"))),
        Damage("state: optimizer a list", _torch_state(_set("optimizer", [1, 2]))),
        Damage("state: rng garbage", _torch_state(_set("rng", {"python": [1, 2, 3]}))),
        Damage("state: a list", _torch_state(lambda s: [1, 2, 3])),
        Damage("state: missing", _remove(STATE)),
        Damage("checkpoint: crash between renames", _crash_between_renames),
        Damage("metrics: torn last row", _write("metrics.csv", lambda b: b + b"99,tra")),
        Damage("tokenizer: garbage", _write("tokenizer.json", b"\x00\x01{not json")),
        Damage("tokenizer: truncated", _write("tokenizer.json", lambda b: b[: len(b) // 2])),
        Damage("tokenizer: wrong kind", _write("tokenizer.json", b'{"tokenization": "MuMIDI"}')),
        Damage("tokenizer: no vocabulary", _write("tokenizer.json", b'{"tokenization": "REMI"}')),
        Damage("tokenizer: a list", _write("tokenizer.json", b"[1, 2, 3]")),
        Damage("data_state: garbage", _write("data_state.json", b"{oops")),
        Damage("data_state: a list", _write("data_state.json", b"[1, 2]")),
        Damage("data_state: wrong fields", _write("data_state.json", b'{"mean": "x"}')),
    ]
    for i in range(extra):
        for rel in (WEIGHTS, STATE, CONFIG, "tokenizer.json"):
            damages.append(Damage(f"{rel}: bit flips {i}", _write(rel, _bitflips(i))))
    return damages


def damaged_runs(good: Path, folder: Path, extra: int = 0) -> list[tuple[str, Path]]:
    """One copy of ``good`` per damage, under ``folder``: ``[(what, run dir)]``."""
    model_section = yaml.safe_load((good / CONFIG).read_text(encoding="utf-8"))["model_config"]
    runs = []
    for i, damage in enumerate(run_damages(model_section, extra)):
        run = folder / f"run_{i:03d}"
        shutil.copytree(good, run, ignore=shutil.ignore_patterns("dataset", "loss.png"))
        damage.apply(run)
        runs.append((damage.name, run))
    return runs


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """``{relative path: (size, mtime_ns)}`` of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
        if p.is_file() or p.is_symlink()
    }


def changed_outside(before: dict, after: dict, allowed: list[Path], root: Path) -> list[str]:
    """Files under ``root`` created, changed or removed outside the ``allowed`` folders."""
    keys = set(before) | set(after)
    prefixes = [str(p.relative_to(root)) for p in allowed]
    return sorted(
        k
        for k in keys
        if before.get(k) != after.get(k)
        and not any(k == p or k.startswith(p + "/") for p in prefixes)
    )


def json_dump(data: object) -> bytes:
    return json.dumps(data).encode()


# --------------------------------------------------------------------------- small disks


def mount_tmpfs(folder: Path, size: int, *, read_only: bool = False) -> bool:
    """Mount a tmpfs of ``size`` bytes on ``folder`` (created); False when not allowed (not
    root): the caller then uses a file size limit or permissions instead."""
    import os
    import subprocess

    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    options = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                          capture_output=True)  # fmt: skip
    return done.returncode == 0


def unmount(folder: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill the file system of ``folder`` until only ``leave`` bytes are free."""
    import os

    stat = os.statvfs(folder)
    filler = folder / "filler"
    with filler.open("wb") as fh:
        fh.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler
