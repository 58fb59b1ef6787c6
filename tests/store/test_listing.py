"""Listing runs and datasets: what a front end offers, and broken folders that do not break it."""

from __future__ import annotations

import logging
import os

import pytest

from midiforge.assets import DEFAULT_MODEL, SHIPPED
from midiforge.errors import MidiforgeError
from midiforge.store import names
from midiforge.store.listing import (
    DEFAULT_ID,
    find_datasets,
    find_runs,
    read_run,
    shipped_run_info,
    shipped_run_infos,
)

from .test_dataset_dir import write


def config(folder, text: str) -> None:
    folder.mkdir(parents=True)
    names.config_path(folder).write_text(text, encoding="utf-8")


def test_runs_are_found_newest_first_and_broken_ones_are_reported(tmp_path, caplog):
    runs = tmp_path / "runs"
    config(runs / "old", "model: lstm\nlabels: [jig]\ntrain: {steps: 40}\n")
    config(runs / "group" / "notes", "model: diffusion\n")
    names.weights_path(runs / "group" / "notes").write_bytes(b"")
    config(runs / "broken", "model: [unclosed\n")
    config(runs / "unknown", "model: wavenet\n")
    config(runs / "a" / "b" / "too-deep", "model: gru\n")  # below SCAN_DEPTH
    os.utime(names.config_path(runs / "old"), (1, 1))
    with caplog.at_level(logging.WARNING):
        found = find_runs(runs)
    assert [(r.id, r.model, r.sampler, r.has_weights) for r in found] == [
        ("group/notes", "diffusion", "diffusion", True),
        ("old", "lstm", "tokens", False),
    ]
    assert found[1].labels == ["jig"] and found[1].steps == 40 and not found[1].can_resume
    assert "broken" in caplog.text and "cannot read it" in caplog.text
    assert "wavenet" in caplog.text  # an unknown model family names the accepted ones
    listed = {r.id: r for r in find_runs(runs, include_broken=True)}
    assert set(listed) == {"group/notes", "old", "broken", "unknown"}
    assert "cannot read it" in listed["broken"].problem and not listed["broken"].has_weights
    assert listed["old"].problem == ""
    shown = {"id": "old", "model": "lstm", "kind": "tokens", "labels": ["jig"], "dataset": ""}
    piano = [{"program": 0, "name": "Acoustic Grand Piano"}]  # a run from before instruments
    expected = {**shown, "has_weights": False, "instruments": piano, "shipped": ""}
    assert listed["old"].to_json() == expected
    with pytest.raises(MidiforgeError, match=r"no config\.yaml there"):
        read_run(tmp_path)
    assert find_runs(tmp_path / "nowhere") == []


def test_datasets_are_listed_with_files_and_labels(encoded_tunes, tmp_path, caplog):
    write(tmp_path / "data" / "folk", encoded_tunes)
    (tmp_path / "data" / "bad").mkdir()
    names.manifest_path(tmp_path / "data" / "bad").write_text("[1, 2]")
    with caplog.at_level(logging.WARNING):
        found = find_datasets(tmp_path / "data")
    assert [(d.id, d.files, d.labels, d.tokenizer) for d in found] == [
        ("folk", len(encoded_tunes["pieces"]), ["jig", "reel"], "REMI")
    ]
    assert "bad" in caplog.text


def test_the_shipped_model_is_listed_without_its_path():
    info = shipped_run_info()
    assert info.id == DEFAULT_ID and info.path is None
    assert info.model == "transformer" and info.sampler == "tokens" and info.has_weights


def test_every_shipped_model_is_listed_by_its_family_default_first():
    infos = shipped_run_infos()
    assert [i.shipped for i in infos] == sorted(SHIPPED, key=lambda m: (m != DEFAULT_MODEL, m))
    assert infos[0].id == DEFAULT_ID and len({i.id for i in infos}) == len(infos)
    for info in infos:
        assert info.model == info.shipped and info.path is None and info.has_weights
        assert len(info.instruments) >= 2, f"{info.id} knows one instrument: {info.instruments}"
        assert info.to_json()["shipped"] == info.shipped
