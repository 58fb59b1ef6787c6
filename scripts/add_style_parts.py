"""Add the style parts table to a token run saved before it was stored.

    python scripts/add_style_parts.py RUN DATASET

A token run's ``config.yaml`` gained ``style_parts`` (stop 37: each style's band, its parts'
registers and which parts play one line, ``midiforge.style_parts``), which ``generate`` plays a
sample of a style as. It is a statistic of the training split, written by ``train`` from the
dataset; a run trained before it gets it from DATASET, which must hold the run's styles (the
shipped transformer and lstm-multihead got theirs from the diffusion model's dataset, the same
corpus and split: POP909, Nottingham and the JSB chorales, parts as instruments). Nothing else
in the file changes, and the weights are not touched. It also writes ``style_pickups`` (stop 38:
where in its bar each style's train files begin, where a note run's samples begin).
"""

from __future__ import annotations

import argparse

from midiforge.store import run_dir as runs
from midiforge.store.dataset_dir import PreparedDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("dataset")
    args = parser.parse_args()
    config = runs.read_config_yaml(args.run)
    data = PreparedDataset(args.dataset)
    if list(data.labels) != list(config.get("labels") or []):
        raise SystemExit(
            f"{args.dataset} has styles {data.labels}, {args.run} {config.get('labels')}"
        )
    config["style_parts"] = data.style_parts()
    config["style_pickups"] = data.style_pickups()
    runs.save_config(args.run, config)
    print(f"{args.run}: style parts {config['style_parts']}")


if __name__ == "__main__":
    main()
