#!/usr/bin/env bash
# Sets up a Python environment with real Keras 3 and tf_keras (cached in target/keras-venv)
# and runs check.py (Keras loads files convnet wrote) then compat.py (files as notebooks
# write them, both directions; see its docstring). Exit status 3 means the environment could
# not be installed (no network to PyPI, for example); any other failure is a real one.
set -uo pipefail
cd "$(dirname "$0")/../.."
venv=target/keras-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import keras, tf_keras, h5py" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv" || exit 3
  "$venv/bin/pip" install -q --disable-pip-version-check \
      tensorflow-cpu==2.21.0 tf-keras==2.21.0 keras==3.15.1 h5py || exit 3
fi
"$venv/bin/python" tests/keras_check/check.py
check=$?
"$venv/bin/python" tests/keras_check/compat.py
compat=$?
# Both run whatever the first one gave; a failure of either fails the whole.
if [ "$check" -ne 0 ]; then exit "$check"; fi
exit "$compat"
