"""The options of ``midiforge web``, kept apart from the server so the CLI parses without it."""

from __future__ import annotations

from dataclasses import dataclass

HOST = "127.0.0.1"  # never another interface: the page runs generation on this machine
JOB_SECONDS = 180.0  # wall-clock budget of one job (the page's caps keep most far below it)


@dataclass
class WebConfig:
    """What ``midiforge web`` serves; the fields are its options."""

    runs_dir: str = "runs"  # folder scanned for runs (dirs with config.yaml)
    run: str | None = None  # a run to offer and preselect; may lie outside runs_dir
    port: int = 7860  # TCP port on 127.0.0.1
    out_dir: str = "generated/web"  # where each job's MIDI, WAV and PNG files are written
    soundfont: str | None = None  # .sf2 for the audio; None = render_wav's default
    job_seconds: float = JOB_SECONDS  # a job still running after this is stopped
    head_seconds: float = 10.0  # a request's line and headers must arrive within this
    body_seconds: float = 30.0  # a request's body must arrive within this
