#!/usr/bin/env bash
# One command for the whole comparison: builds convnet and the burn reference (release), sets
# up the Python reference environment, and runs bench/compare.py (convnet vs PyTorch vs Keras
# vs burn, medians of 3 rounds). `--no-burn` leaves burn out (its first build takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
burn=(--burn bench/reference/burn/target/release/burn-reference)
args=()
for a in "$@"; do
  if [ "$a" = "--no-burn" ]; then burn=(); else args+=("$a"); fi
done
cargo build --release -q -p convnet-cli
if [ ${#burn[@]} -gt 0 ]; then
  cargo build --release -q --manifest-path bench/reference/burn/Cargo.toml
fi
python=$(bench/reference/setup.sh)
exec "$python" bench/compare.py --python "$python" "${burn[@]}" "${args[@]}"
