#!/usr/bin/env bash
# Rebuild one shipped model from the shared corpora, one command per model:
#   bash scripts/train_shipped.sh transformer      (the default model, docs/model-card.md)
#   bash scripts/train_shipped.sh diffusion        (docs/model-card-diffusion.md)
#   bash scripts/train_shipped.sh lstm-multihead   (docs/model-card-lstm-multihead.md)
# Environment: WORK (default build/<model>), DATASET (an already prepared dataset of this corpus
# to reuse instead of steps 1-2), RESUME=1 (continue an interrupted training run).
# 1. lay out POP909 (pop), Nottingham (folk) and the JSB chorales converted to MIDI (chorale),
#    each part written with its own GM program (data.corpora.PART_PROGRAMS),
#    with the chorales' published split; 2. prepare; 3. train with configs/<model>.yaml
#    (the transformer: configs/default.yaml, then default-continue.yaml, then
#    default-controls.yaml on the corpus prepared with --controls and --fim, then
#    default-starts.yaml, a quarter of the windows at a piece's beginning); 4. export the best weights in float16 into
#    the package (midiforge.assets.SHIPPED); 5. evaluate on held-out data.
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:?"usage: bash scripts/train_shipped.sh transformer|diffusion|lstm-multihead"}
case "$model" in
  transformer) config=configs/default.yaml; asset=default ;;
  diffusion|lstm-multihead) config=configs/$model.yaml; asset=$model ;;
  *) echo "unknown model '$model'; accepted: transformer, diffusion, lstm-multihead" >&2; exit 2 ;;
esac
work=${WORK:-build/$model}
datasets=${MIDIFORGE_DATASETS:-../shared/datasets}
py=.venv/bin/python
mkdir -p "$work"
dataset=${DATASET:-$work/dataset}

if [ -z "${DATASET:-}" ]; then
  $py -c "import sys; from pathlib import Path; from midiforge.data.corpora import build_corpus; \
print(build_corpus(Path(sys.argv[1]), Path(sys.argv[2])))" "$datasets" "$work/corpus"
  .venv/bin/midiforge prepare "$work/corpus" "$dataset" --labels-from folder \
    --split-by "$work/corpus/splits.csv" --min-tokens 256 --min-notes 32 --overwrite
fi
if [ "$model" = transformer ]; then
  # four stages (docs/model-card.md, "Training"): 1. from scratch; 2. continued at half the
  # learning rate; 3. continued on the corpus prepared with the learned controls and the
  # fill-in-the-middle markers (same split; --init grows the embedding for the added tokens);
  # 4. continued with a quarter of the windows starting at their piece's first token
  run1=$work/run-stage1 run2=$work/run-stage2 run3=$work/run-stage3
  controls=$work/dataset-controls
  [ -f "$run1/model.safetensors" ] || .venv/bin/midiforge train "$dataset" --model transformer \
    --config configs/default.yaml --run-dir "$run1" ${RESUME:+--resume "$run1"}
  [ -f "$run2/model.safetensors" ] || .venv/bin/midiforge train "$dataset" \
    --config configs/default-continue.yaml --init "$run1" --run-dir "$run2"
  .venv/bin/midiforge prepare "$work/corpus" "$controls" --labels-from folder \
    --split-by "$work/corpus/splits.csv" --min-tokens 256 --min-notes 32 --overwrite \
    --controls chords,density,polyphony --fim
  [ -f "$run3/model.safetensors" ] || .venv/bin/midiforge train "$controls" \
    --config configs/default-controls.yaml --init "$run2" --run-dir "$run3"
  .venv/bin/midiforge train "$controls" --config configs/default-starts.yaml --init "$run3" \
    --run-dir "$work/run" ${RESUME:+--resume "$work/run"}
else
  .venv/bin/midiforge train "$dataset" --model "$model" --config "$config" \
    --run-dir "$work/run" ${RESUME:+--resume "$work/run"}
fi
$py -c "import sys; from midiforge.store.run_dir import export_run; \
print(export_run(sys.argv[1], sys.argv[2], dataset=sys.argv[3]))" "$work/run" \
  "src/midiforge/assets/$asset" "POP909 + Nottingham + JSB chorales, parts as instruments (docs/)"
.venv/bin/midiforge evaluate "$work/run" --split test
