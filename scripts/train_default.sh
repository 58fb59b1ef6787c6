#!/usr/bin/env bash
# Rebuild the shipped default model from the shared corpora (see docs/model-card.md).
#   bash scripts/train_default.sh [WORK_DIR]      (default WORK_DIR: build/default)
# 1. lay out POP909 (pop), Nottingham (folk) and the JSB chorales converted to MIDI (chorale),
#    each part written with its own GM program (data.corpora.PART_PROGRAMS),
#    with the chorales' published split; 2. prepare; 3. train with configs/default.yaml;
# 4. export the best weights in float16 into the package; 5. evaluate on held-out data.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/default}
datasets=${MIDIFORGE_DATASETS:-../shared/datasets}
py=.venv/bin/python
mkdir -p "$work"

$py -c "import sys; from pathlib import Path; from midiforge.data.corpora import build_corpus; \
print(build_corpus(Path(sys.argv[1]), Path(sys.argv[2])))" "$datasets" "$work/corpus"
.venv/bin/midiforge prepare "$work/corpus" "$work/dataset" --labels-from folder \
  --split-by "$work/corpus/splits.csv" --min-tokens 256 --min-notes 32 --overwrite
.venv/bin/midiforge train "$work/dataset" --model transformer --config configs/default.yaml \
  --run-dir "$work/run" ${RESUME:+--resume "$work/run"}
$py -c "import sys; from midiforge.store.run_dir import export_run; \
print(export_run(sys.argv[1], sys.argv[2], dataset=sys.argv[3]))" "$work/run" \
  src/midiforge/assets/default "POP909 + Nottingham + JSB chorales, parts as instruments (docs/model-card.md)"
.venv/bin/midiforge evaluate "$work/run" --split test
