#!/usr/bin/env bash
# `make lab`: JupyterLab on the notebooks, with the project's kernel (`zero1to3`, hub offline), after `make setup`.
# JupyterLab prints the URL to open (with its token). Extra arguments go to `jupyter lab`, e.g. --port=8899.
# Notebooks opened after `make study` (or `make quick`, with its params) reuse that run's renders, checkpoints and
# reconstructions, so stepping through takes minutes; stage 02 alone trains for a long time otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
root=()
[ "$(id -u)" = 0 ] && root=(--allow-root)  # containers often run as root; JupyterLab refuses that unless told
exec .venv/bin/jupyter lab "${root[@]}" --no-browser --ServerApp.root_dir="$PWD" --ServerApp.default_url=/lab/tree/notebooks "$@"
