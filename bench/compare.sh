#!/usr/bin/env bash
# One command for the whole comparison: builds convnet (release), sets up the reference
# environment, and runs bench/compare.py (convnet vs PyTorch vs Keras, medians of 3 rounds).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p convnet-cli
python=$(bench/reference/setup.sh)
exec "$python" bench/compare.py --python "$python" "$@"
