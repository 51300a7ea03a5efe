#!/usr/bin/env bash
# Creates the Python environment of the reference benchmarks (PyTorch, TensorFlow/Keras) in
# target/bench-venv, from PyPI. Prints the environment's python on success.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=target/bench-venv
if ! "$venv/bin/python" -c "import torch, keras, tensorflow" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check torch tensorflow-cpu keras >&2
fi
echo "$PWD/$venv/bin/python"
