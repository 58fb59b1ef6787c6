"""What a run says about itself while it trains: ``metrics.csv``, ``loss.png``, ``train.log``,
the progress bar and, at the end, ``result.json`` with the sentence saying why it stopped.

``metrics.csv`` has one row per logged training interval and per validation, with the columns
``step, split, loss, <per-head losses>, lr, tokens_per_s, seconds``. On resume the rows after
the checkpoint's step are dropped, so the file reads as if the run had never stopped.

``result.json`` is rewritten at the end of every session (a ``train`` call or a ``--resume``):
``reason`` (``steps``, ``time`` or ``patience``: what ended it), ``step``, ``best_valid_loss``,
``best_step``, ``wall_seconds`` of the session's loop and ``message``, the line ``midiforge
train`` prints last.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
from pathlib import Path
from typing import Any

from midiforge.store.names import RESULT_FILE
from midiforge.training.settings import format_duration

FIXED_HEAD = ["step", "split", "loss"]
FIXED_TAIL = ["lr", "tokens_per_s", "seconds"]
PLOT_SIZE_IN = (7.0, 4.0)  # inches
PLOT_DPI = 100
PROGRESS_MIN_INTERVAL_S = 0.5  # seconds between progress-bar refreshes
# tqdm's own "<remaining" counts steps only; the ETA in the postfix knows the time budget
PROGRESS_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


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


# --------------------------------------------------------------------------- progress


def eta(
    step: int, steps: int, start_step: int, used_s: float, budget_s: float | None
) -> tuple[float, str]:
    """``(seconds left, which limit)`` of a run: the sooner of its steps and its time budget.

    The step estimate extrapolates this session's pace (validations and checkpoints
    included); early stopping cannot be foreseen and is not part of it.
    """
    done = step - start_step
    by_steps = (steps - step) * used_s / done if done > 0 else math.inf
    by_time = max(0.0, budget_s - used_s) if budget_s is not None else math.inf
    return (by_time, "time budget") if by_time < by_steps else (by_steps, "steps")


class Progress:
    """The progress bar: step of ``steps``, loss, tokens/s and the ETA from :func:`eta`."""

    def __init__(self, steps: int, start_step: int, budget_s: float | None) -> None:
        from tqdm.auto import tqdm

        self.steps, self.start_step, self.budget_s = steps, start_step, budget_s
        self.loss: float | None = None
        self.rate: float | None = None
        self.bar = tqdm(
            total=steps,
            initial=start_step,
            desc="train",
            unit="step",
            mininterval=PROGRESS_MIN_INTERVAL_S,
            dynamic_ncols=True,
            bar_format=PROGRESS_FORMAT,
        )

    def update(self, step: int, used_s: float, loss: float, rate: float | None = None) -> None:
        self.loss, self.rate = loss, rate if rate is not None else self.rate
        left, limit = eta(step, self.steps, self.start_step, used_s, self.budget_s)
        parts = [f"loss {self.loss:.3f}"]
        if self.rate is not None:
            parts.append(f"{self.rate:.0f} tok/s")
        if math.isfinite(left):
            parts.append(f"ETA {format_duration(left)} ({limit})")
        self.bar.set_postfix_str(", ".join(parts), refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        self.bar.close()


# --------------------------------------------------------------------------- result


def stop_message(
    *,
    reason: str,
    step: int,
    start_step: int,
    wall_s: float,
    steps: int,
    budget_s: float | None,
    patience: int,
    best: float | None,
    best_step: int | None,
    last_train_loss: float | None,
    per_token: bool,
) -> str:
    """What the run reached and why it stopped, in one line (without the run dir).

    ``per_token``: the loss is a token NLL in nats, so its perplexity ``exp(loss)`` is shown.
    """
    why = {
        "steps": f"train.steps {steps}",
        "time": f"time budget {format_duration(budget_s or 0.0)}",
        "patience": f"early stopping: no better validation loss in {patience} evaluations",
    }[reason]
    if start_step:
        why = f"resumed at step {start_step}; {why}"
    verb = "finished" if reason == "steps" else "stopped"
    head = f"{verb} after {format_duration(wall_s)} at step {step} ({why})"
    if best is None:
        train = "" if last_train_loss is None else f"; last training loss {last_train_loss:.3f}"
        return f"{head}: no validation split{train}"
    where = "" if best_step is None else f" at step {best_step}"
    ppl = f" (perplexity {math.exp(best):.2f})" if per_token and best < 50 else ""
    return f"{head}: best validation loss {best:.3f}{where}{ppl}"


def write_result(run_dir: Path, result: dict[str, Any]) -> None:
    """``RUN/result.json``, atomically."""
    tmp = Path(run_dir) / f".{RESULT_FILE}.tmp"
    tmp.write_text(json.dumps(result, indent=1), encoding="utf-8")
    tmp.replace(Path(run_dir) / RESULT_FILE)


def read_result(run_dir: Path) -> dict[str, Any]:
    """``RUN/result.json`` as written by the last session ({} before any session ended)."""
    path = Path(run_dir) / RESULT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# --------------------------------------------------------------------------- files


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
