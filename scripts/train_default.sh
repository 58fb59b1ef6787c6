#!/usr/bin/env bash
# Rebuild the shipped default model (a Music Transformer; docs/model-card.md):
#   bash scripts/train_default.sh [WORK_DIR]      (default WORK_DIR: build/default)
# The same as `WORK=WORK_DIR bash scripts/train_shipped.sh transformer`.
set -euo pipefail
WORK=${1:-build/default} exec bash "$(dirname "$0")/train_shipped.sh" transformer
