"""Loads models written by convnet in real Keras 3 (`keras`) and Keras 2 (`tf_keras`) and
compares their predictions with convnet's; also checks that the optimizer state came along
(3 steps were taken) and that Keras can keep training the loaded model.

Keras 3 cannot continue `fit` on any legacy .h5 file that holds optimizer state (its own
files included: "This optimizer can only be called for the variables it was originally built
with"), so for Keras 3 + .h5 the check trains the file saved without optimizer state
(`_noopt.h5`) instead; Keras 3 resumes exactly from `.keras`, tf_keras from `.h5`.

For lenet5 (no dropout, so training is deterministic) the check goes further: one more
training step in Keras from the saved optimizer state must give the predictions convnet got
after the same step, which holds only if the state, the gradients and the Adam update agree.

Run from the repository root (what .ci/run does):

    python3 -m venv .venv-keras && .venv-keras/bin/pip install tensorflow-cpu tf-keras h5py
    .venv-keras/bin/python tests/keras_check/check.py

It builds the files with `cargo test --release -p convnet --test keras_export -- --ignored`.
Exit status 0 when every check passes.
"""
import os, subprocess, sys, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np

out = tempfile.mkdtemp(prefix="convnet-keras-check-")
subprocess.run(
    ["cargo", "test", "--release", "-q", "-p", "convnet", "--test", "keras_export", "--", "--ignored"],
    check=True, env={**os.environ, "CONVNET_EXPORT_DIR": out})

import keras
import tf_keras

TOL = 1e-5
failures = []
print(f"keras {keras.__version__}, tf_keras {tf_keras.__version__}")
print(f"{'model':14} {'file':6} {'loader':9} {'max |diff|':>11} {'iterations':>10}  fit")
for name in ["lenet5", "mnist-cnn", "cifar10-cnn"]:
    x = np.load(f"{out}/{name}_x.npy")
    y = np.load(f"{out}/{name}_y.npy")
    want = np.load(f"{out}/{name}_pred.npy")
    cases = [("h5", keras, "keras3", "_noopt.h5"), ("keras", keras, "keras3", None),
             ("h5", tf_keras, "tf_keras", None)]
    for ext, lib, label, fit_file in cases:
        path = f"{out}/{name}.{ext}"
        try:
            m = lib.models.load_model(path)
            got = m.predict(x, verbose=0)
            diff = float(np.abs(got - want).max())
            iters = int(m.optimizer.iterations.numpy())
            if fit_file:
                m = lib.models.load_model(f"{out}/{name}{fit_file}")
            m.fit(x, y, epochs=1, batch_size=8, verbose=0, shuffle=False)
            ok = diff <= TOL and iters == 3
            note = f" ({fit_file})" if fit_file else ""
            if name == "lenet5" and not fit_file:
                step = float(np.abs(m.predict(x, verbose=0) - np.load(f"{out}/{name}_pred_after.npy")).max())
                ok = ok and step <= 1e-4
                note = f", next step matches convnet's: max |diff| {step:.2e}"
            print(f"{name:14} {ext:6} {label:9} {diff:11.2e} {iters:10d}  ok{note}")
            if not ok:
                failures.append(f"{name}.{ext} in {label}: diff {diff}, iterations {iters}")
        except Exception as e:  # report every failure, not only the first
            print(f"{name:14} {ext:6} {label:9} FAILED: {type(e).__name__}: {e}")
            failures.append(f"{name}.{ext} in {label}: {e}")
if failures:
    print("\n".join(["", "FAILED:"] + failures))
    sys.exit(1)
print("all convnet files load in Keras 3 and Keras 2 with matching predictions")
