"""The listening guide (docs/samples/README.md) works for a reader who installs nothing.

Every file it links is there, every audio file decodes, lasts a listenable while and is not
silence, every shipped model and style has its samples beside a real reference, the README
links the guide, the model cards' older piano rolls are still there, and the folder stays small
enough to keep in the repository. Files come from ``scripts/render_samples.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile

from midiforge.assets import SHIPPED

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "docs" / "samples"
GUIDE = SAMPLES / "README.md"
STYLES = ("pop", "folk", "chorale")
AUDIO_SECONDS = (5.0, 40.0)  # shorter is no listening; longer is not a "short sample"
MIN_RMS = 0.005  # about -46 dBFS; the quietest file here (a violin alone) has 0.026
MAX_FOLDER_BYTES = 8_500_000  # the guide's budget (~8 MB) plus the model cards' older 0.46 MB
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def _targets(markdown: Path) -> list[str]:
    """Relative link targets of a Markdown file (web links and #anchors left out)."""
    links = LINK.findall(markdown.read_text(encoding="utf-8"))
    return [t.split("#")[0] for t in links if "://" not in t and not t.startswith("#")]


def test_every_file_the_guide_links_exists() -> None:
    targets = _targets(GUIDE)
    assert targets, "the listening guide links no files"
    missing = [t for t in targets if not (SAMPLES / t).exists()]
    assert missing == []


def test_the_guide_has_each_model_and_style_beside_a_real_reference() -> None:
    linked = set(_targets(GUIDE))
    for style in STYLES:
        for kind in ("ogg", "png"):
            assert f"{style}-reference.{kind}" in linked
            for model in SHIPPED:
                assert f"{style}-{model}-1.{kind}" in linked, (style, model, kind)


def test_every_audio_file_decodes_lasts_a_while_and_is_not_silent() -> None:
    audio = sorted(SAMPLES.glob("*.ogg"))
    linked = {t for t in _targets(GUIDE) if t.endswith(".ogg")}
    assert {a.name for a in audio} == linked  # none unlinked, none missing
    low, high = AUDIO_SECONDS
    for path in audio:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        seconds = len(samples) / rate
        rms = float(np.sqrt(np.mean(np.square(samples))))
        assert low <= seconds <= high, f"{path.name}: {seconds:.1f} s"
        assert rms > MIN_RMS, f"{path.name}: RMS {rms:.4f}, silent"


def test_the_readme_links_the_guide() -> None:
    assert "docs/samples/README.md" in _targets(ROOT / "README.md")


def test_the_model_cards_piano_rolls_are_still_there() -> None:
    for card in sorted((ROOT / "docs").glob("model-card*.md")):
        for target in _targets(card):
            if target.startswith("samples/"):
                assert (ROOT / "docs" / target).exists(), f"{card.name} links {target}"


def test_the_samples_folder_stays_small() -> None:
    total = sum(f.stat().st_size for f in SAMPLES.iterdir() if f.is_file())
    assert total < MAX_FOLDER_BYTES, f"docs/samples holds {total / 1e6:.1f} MB"


def test_the_guide_has_each_models_accompaniment_of_a_held_out_melody() -> None:
    linked = set(_targets(GUIDE))
    for kind in ("ogg", "png", "mid"):
        assert f"harmonize-melody.{kind}" in linked
        for model in SHIPPED:
            assert f"harmonize-{model}.{kind}" in linked, (model, kind)
