#!/usr/bin/env bash
# The community-checkpoint path (spandrel: SwinIR, HAT, SPAN ...) in a venv of its own:
# spandrel imports torchvision, which needs torch 2.14.1 + torchvision 0.29.1 (a CUDA build
# that also runs on the CPU), while the main test environment uses the CPU build of 2.13.0.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv-community
# shellcheck disable=SC1091
. .venv-community/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q torch==2.14.1 torchvision==0.29.1 -e ".[test,community]"
python -c "import spandrel" # fail loudly here rather than skip below
pytest -q tests/test_checkpoint.py tests/test_processors.py
