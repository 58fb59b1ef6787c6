"""What a run writes about itself while it trains: ``metrics.csv``, ``loss.png``, ``train.log``.

``metrics.csv`` has one row per logged training interval and per validation, with the columns
``step, split, loss, <per-head losses>, lr, tokens_per_s, seconds``. On resume the rows after
the checkpoint's step are dropped, so the file reads as if the run had never stopped.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
from pathlib import Path

FIXED_HEAD = ["step", "split", "loss"]
FIXED_TAIL = ["lr", "tokens_per_s", "seconds"]
PLOT_SIZE_IN = (7.0, 4.0)  # inches
PLOT_DPI = 100


class Logbook:
    """Appends metric rows to ``metrics.csv``; the header is fixed by the first row's heads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), None)
            self.columns = header or None

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (work lost when a run was killed after a checkpoint),
        and a row torn by a kill or a full disk (no line end, or missing fields)."""
        if not self.path.is_file():
            return
        text = self.path.read_text(encoding="utf-8", errors="replace")
        if not text.endswith("\n"):  # the last row was cut off while being written
            text = text[: text.rfind("\n") + 1]
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        kept = [r for r in rows if _whole(r) and int(r["step"]) <= step]
        tmp = self.path.with_suffix(".csv.tmp")
        try:
            with tmp.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=self.columns or FIXED_HEAD + FIXED_TAIL)
                writer.writeheader()
                writer.writerows(kept)
            tmp.replace(self.path)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def write(self, step: int, split: str, values: dict[str, float], **extra: float) -> None:
        """One row: ``values`` holds ``loss`` and per-head losses; ``extra`` lr/tokens_per_s/…"""
        heads = [k for k in values if k != "loss"]
        if self.columns is None:
            self.columns = FIXED_HEAD + sorted(heads) + FIXED_TAIL
            with self.path.open("w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(self.columns)
        row = {"step": step, "split": split, **values, **extra}
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore")
            writer.writerow({k: _fmt(row.get(k)) for k in self.columns})

    def read(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with self.path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))


def _whole(row: dict[str, str | None]) -> bool:
    """Whether a metrics row has every column and a step number (a torn row has not)."""
    return None not in row and all(v is not None for v in row.values()) and row["step"].isdigit()


def _fmt(value: object) -> object:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return "" if value is None else value


def plot_losses(metrics_csv: Path, out_png: Path) -> None:
    """Training and validation loss against step, written atomically to ``out_png``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = Logbook(metrics_csv).read()
    fig = Figure(figsize=PLOT_SIZE_IN, dpi=PLOT_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for split, style in (("train", "-"), ("valid", "o-")):
        points = [(int(r["step"]), float(r["loss"])) for r in rows if r["split"] == split]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, style, label=split, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per target)")
    ax.grid(alpha=0.3)
    if rows:
        ax.legend()
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    try:
        fig.savefig(tmp)
        tmp.replace(out_png)
    finally:  # a full disk leaves no half-written picture behind
        with contextlib.suppress(OSError):
            tmp.unlink()


def attach_file_log(path: Path) -> logging.Handler:
    """Send the ``midiforge`` logger to ``path`` (``train.log``); detach with :func:`detach`."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("midiforge")
    logger.addHandler(handler)
    handler.previous_level = logger.level  # type: ignore[attr-defined]
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


def detach(handler: logging.Handler) -> None:
    logger = logging.getLogger("midiforge")
    logger.removeHandler(handler)
    logger.setLevel(getattr(handler, "previous_level", logging.NOTSET))
    handler.close()
