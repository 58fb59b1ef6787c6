#!/usr/bin/env bash
# One set-up command for a fresh machine: system packages (FluidSynth, a General MIDI soundfont,
# Chromium for the web tests), then a virtual environment in .venv with the CPU build of torch
# installed first (an unpinned torch would pull gigabytes of CUDA packages), then midiforge.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  need=()
  for pkg in gcc fluidsynth fluid-soundfont-gm chromium chromium-driver libsndfile1 tmux; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
  fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
# builds the C relative-attention kernel too (setup.py; gcc from the packages above): nothing
# is compiled later, at run time
.venv/bin/python -m pip install -q -e '.[test]'
# The audio transcription model ships inside Spotify's basic-pitch package; its own code needs
# TensorFlow and numpy < 2, so it is installed without dependencies, only for the model file.
.venv/bin/python -m pip install -q --no-deps 'basic-pitch==0.4.0'
.venv/bin/python -c "import midiforge.kernels as k; print('relative attention:', k.status())"
echo "midiforge is installed in .venv; activate it with: . .venv/bin/activate"
