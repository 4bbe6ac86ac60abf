#!/usr/bin/env bash
# One-time (and idempotent) set-up: Debian packages, the venv, the package, the Jupyter kernel,
# the notebook-output filter. Fast when already done: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
VENV=.venv
STAMP=$VENV/.installed

# 1. Debian packages. open3d needs libusb-1.0 at import time; Blender (bpy) loads X11/EGL/Mesa
#    libraries when it renders. Installed here when we are root on Debian/Ubuntu; elsewhere we
#    say what to install.
APT_PACKAGES="libusb-1.0-0 libx11-6 libxi6 libxkbcommon0 libsm6 libxrender1 libxext6 libxfixes3 libegl1 libgl1"
missing=""
if command -v dpkg-query >/dev/null 2>&1; then
  for pkg in $APT_PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
fi
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  else
    echo "setup: please install these Debian packages (as root):$missing" >&2
    exit 1
  fi
fi

# 2. The venv and the package (editable, with the test tools).
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 is required (bpy 5.0.1 wheels), found {sys.version}"'
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  echo "setup: installing the package and its dependencies into $VENV (a few minutes the first time)"
  "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -m pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
  "$VENV/bin/python" -c "import zero1to3, bpy, torch, diffusers, open3d" # fail here, not mid-study
  # 3. A named Jupyter kernel inside the venv, with the hub switched off in its environment.
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name zero1to3 --display-name "Python (zero1to3)" \
    --env HF_HUB_OFFLINE 1 --env TRANSFORMERS_OFFLINE 1 --env DVC_NO_ANALYTICS 1 >/dev/null
  touch "$STAMP"
fi

# 4. Keep notebook outputs out of git, but keep cell tags (the `parameters` cell).
#    .gitattributes applies the filter to notebooks/ only: the executed copies in results/ keep outputs.
if [ -d .git ] && ! git config --get filter.nbstripout.clean >/dev/null 2>&1; then
  git config filter.nbstripout.clean "$VENV/bin/nbstripout --keep-id"
  git config filter.nbstripout.smudge cat
  git config diff.ipynb.textconv "$VENV/bin/nbstripout -t"
fi
