#!/usr/bin/env bash
# Sets up a Python environment with real Keras 3 and tf_keras, ONNX and ONNX Runtime (cached in
# target/keras-venv) and runs check.py (Keras loads files convnet wrote), compat.py (files as
# notebooks write them, both directions; see its docstring), onnx_check.py (models exported
# by `convnet export` run in ONNX Runtime), conv_variants_check.py (the convolution variants:
# parameter counts and compat.py's round trips), modern_check.py (BatchNormalization, global
# pooling, padding, resizing and the preprocessing layers through Keras' files, both
# directions) and functional_check.py (functional models, both ways). Exit status 3 means the
# environment could not be installed (no network to PyPI, for example); any other failure is a
# real one.
set -uo pipefail
cd "$(dirname "$0")/../.."
venv=target/keras-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import keras, tf_keras, h5py" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" || exit 3
  "$venv/bin/pip" install -q --disable-pip-version-check \
      tensorflow-cpu==2.21.0 tf-keras==2.21.0 keras==3.15.1 h5py onnx onnxruntime || exit 3
fi
# An environment cached before the ONNX check existed gets the two packages added.
if ! "$venv/bin/python" -c "import onnx, onnxruntime" 2>/dev/null; then
  "$venv/bin/pip" install -q --disable-pip-version-check onnx onnxruntime || exit 3
fi
# Each runs whatever the others gave; the first failure's status is the whole run's.
status=0
for script in check compat onnx_check conv_variants_check modern_check functional_check; do
  "$venv/bin/python" "tests/keras_check/$script.py"
  code=$?
  if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then status=$code; fi
done
exit "$status"
