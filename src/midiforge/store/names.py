"""The names of the on-disk formats: files, folders, format ids and versions, and where each lies.

Only the store's modules spell these; everything else asks the store (``is_dataset``,
``is_run``, ``load_run``, ...). The layouts are documented in ``docs/architecture.md``.
"""

from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "valid", "test")

# ---- DATASET dir (written by prepare and by the published-benchmark encoders)
DATASET_FORMAT = "midiforge-dataset"
DATASET_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
TOKENS_DIR = "tokens"  # tokens/{split}.bin + tokens/{split}.offsets.npy
NOTES_DIR = "notes"  # notes/{split}.bin + notes/{split}.offsets.npy
LABELS_DIR = "labels"  # labels/{split}.npy
ARRAYS_SUFFIX = ".bin"
OFFSETS_SUFFIX = ".offsets.npy"
LABELS_SUFFIX = ".npy"

# ---- RUN dir (written by train)
RUN_FORMAT = "midiforge-run"
RUN_FORMAT_VERSION = 1
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.pt"
DATA_STATE_FILE = "data_state.json"
LAST_DIR = Path("checkpoints") / "last"
# the previous checkpoint while a new one is renamed into place: a process killed between the
# two renames leaves only this one, and resuming picks it up (store.checkpoint.last_checkpoint)
LAST_OLD_DIR = Path("checkpoints") / ".last-old"
PREPARED_SUBDIR = "dataset"  # where train prepares a raw MIDI folder inside the RUN dir
TRAIN_LOG_FILE = "train.log"
METRICS_FILE = "metrics.csv"  # written by training.logbook.Logbook
LOSS_PLOT_FILE = "loss.png"
RESULT_FILE = "result.json"  # why the last session stopped (training.logbook.write_result)

# ---- both
TOKENIZER_FILE = "tokenizer.json"


# --------------------------------------------------------------------------- where files lie
# Plain path arithmetic (no torch, no numpy), so listing folders stays cheap.


def manifest_path(dataset_dir: str | Path) -> Path:
    return Path(dataset_dir) / MANIFEST_FILE


def is_dataset(folder: str | Path) -> bool:
    """Whether ``folder`` is a DATASET dir (holds a manifest; opening it checks the rest)."""
    return manifest_path(folder).is_file()


def arrays_path(dataset_dir: Path, kind: str, split: str) -> Path:
    """``tokens/{split}.bin`` or ``notes/{split}.bin``."""
    return Path(dataset_dir) / kind / f"{split}{ARRAYS_SUFFIX}"


def offsets_path(dataset_dir: Path, kind: str, split: str) -> Path:
    """``tokens/{split}.offsets.npy`` or ``notes/{split}.offsets.npy``."""
    return Path(dataset_dir) / kind / f"{split}{OFFSETS_SUFFIX}"


def labels_path(dataset_dir: Path, split: str) -> Path:
    """``labels/{split}.npy``."""
    return Path(dataset_dir) / LABELS_DIR / f"{split}{LABELS_SUFFIX}"


def tokenizer_path(folder: str | Path) -> Path:
    """``folder/tokenizer.json`` (a DATASET dir or a RUN dir)."""
    return Path(folder) / TOKENIZER_FILE


def has_tokenizer(folder: str | Path) -> bool:
    """Whether ``folder`` holds a ``tokenizer.json`` (benchmark datasets have none)."""
    return tokenizer_path(folder).is_file()


def config_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONFIG_FILE


def is_run(folder: str | Path) -> bool:
    """Whether ``folder`` is a RUN dir (holds a ``config.yaml``; reading it checks the rest)."""
    return config_path(folder).is_file()


def data_state_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / DATA_STATE_FILE


def weights_path(run_dir: str | Path, which: str = "best") -> Path:
    """``RUN/model.safetensors`` (``best``) or ``RUN/checkpoints/last/model.safetensors``."""
    run_dir = Path(run_dir)
    return run_dir / WEIGHTS_FILE if which == "best" else run_dir / LAST_DIR / WEIGHTS_FILE


def has_weights(run_dir: str | Path) -> bool:
    """Whether the run has best weights yet (what ``generate`` loads)."""
    return weights_path(run_dir).is_file()


def state_path(run_dir: str | Path) -> Path:
    """``RUN/checkpoints/last/state.pt``."""
    return Path(run_dir) / LAST_DIR / STATE_FILE


def can_resume(run_dir: str | Path) -> bool:
    """Whether the run has ``checkpoints/last`` (renamed into place only whole), so it resumes.

    Also true when only the previous checkpoint is there (a crash between the two renames of
    a checkpoint write); resuming renames it back into place.
    """
    return (Path(run_dir) / LAST_DIR).is_dir() or (Path(run_dir) / LAST_OLD_DIR).is_dir()
