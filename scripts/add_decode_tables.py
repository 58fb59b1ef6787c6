"""Add the decoding tables to a diffusion run saved before they were stored.

    python scripts/add_decode_tables.py RUN DATASET

A run's ``data_state.json`` gained ``duration_values`` and ``onset_grids`` (stop 36: the note
durations and the onset grid of each style's training notes, which decoding puts notes on,
``midiforge.models.note_features.Rhythm``) and ``style_parts`` (stop 37: each style's band and
the instruments of it that play one line, ``midiforge.style_parts``). They are
statistics of the training split, not weights, so a run trained before them gets them from the
dataset it was trained on, by the same fit its ``prepare_data`` does now; the tables are
refitted (a later stop may fit them better: stop 38 counts a slurred melody as a line), every
other entry the file already has must come out identical (checked), and the weights are not
touched. Used for the shipped diffusion model.
"""

from __future__ import annotations

import argparse
import json

from midiforge.store import atomic
from midiforge.store import run_dir as runs
from midiforge.store.dataset_dir import PreparedDataset

DECODE_TABLES = ("duration_values", "onset_grids", "style_parts", "style_accidentals", "pickups")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("dataset")
    args = parser.parse_args()
    model = runs.load_run(args.run, device="cpu").model
    old = runs.read_data_state(args.run)
    new = model.prepare_data(PreparedDataset(args.dataset))
    changed = [
        key
        for key in old
        if key not in DECODE_TABLES and json.dumps(old[key]) != json.dumps(new.get(key))
    ]
    if changed:
        raise SystemExit(f"{args.dataset} is not the dataset {args.run} was trained on: {changed}")
    refitted = [key for key in DECODE_TABLES if json.dumps(old.get(key)) != json.dumps(new[key])]
    atomic.write_text(runs.data_state_path(args.run), json.dumps(new, indent=1))
    print(f"{args.run}: refitted {refitted or 'nothing'}")
    print(
        f"{args.run}: onset grids {new['onset_grids']}; durations per style "
        f"{ {k: len(v) for k, v in new['duration_values'].items()} }; parts "
        f"{new['style_parts']}"
    )


if __name__ == "__main__":
    main()
