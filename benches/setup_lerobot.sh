#!/usr/bin/env bash
# Builds the LeRobot 0.4.4 reference virtualenv that bench_loader.py compares against (CPU only).
#   bash benches/setup_lerobot.sh [VENV_DIR]          default: ../.lerobot-ref-venv (beside the repo)
#   V21=1 bash benches/setup_lerobot.sh VENV_DIR      LeRobot 0.3.3 instead, for the v2.1 datasets
# It uses the team's recipe in ../shared/tools/lerobot-reference/setup.sh (lerobot installed --no-deps
# with the few packages its dataset module imports, torch 2.13.0 CPU, torchcodec 0.13.0), plus psutil.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
VENV=${1:-$here/../../.lerobot-ref-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import lerobot" 2>/dev/null; then
  bash "$here/../../shared/tools/lerobot-reference/setup.sh" "$VENV"
fi
"$VENV/bin/python" -m pip install -q psutil
echo "LeRobot reference: $VENV/bin/python"
