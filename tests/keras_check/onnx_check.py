"""Runs models exported by `convnet export` in ONNX Runtime and compares their outputs with
convnet's own predictions: every preset (trained a few steps) and a small model that uses every
exportable layer class and activation. Each `.onnx` file must pass `onnx.checker.check_model`
(full check) and give convnet's outputs on 64 images within 1e-5 (relative to the value
where it exceeds 1: the exponential model's outputs reach 1e5; probabilities are within 1e-5).

Run from the repository root (what run.sh does):

    python3 -m venv .venv-onnx && .venv-onnx/bin/pip install numpy onnx onnxruntime
    .venv-onnx/bin/python tests/keras_check/onnx_check.py

It writes the models and convnet's predictions with
`cargo test --release -p convnet --test onnx_export -- --ignored`, then exports each `.keras`
file with the `convnet export` command. Exit status 0 when every check passes.
"""
import json, os, subprocess, sys, tempfile, time
import numpy as np
import onnx
import onnxruntime as ort

TOL = 1e-5
out = tempfile.mkdtemp(prefix="convnet-onnx-check-")
subprocess.run(
    ["cargo", "test", "--release", "-q", "-p", "convnet", "--test", "onnx_export", "--", "--ignored"],
    check=True, env={**os.environ, "CONVNET_ONNX_DIR": out})
subprocess.run(["cargo", "build", "--release", "-q", "-p", "convnet-cli"], check=True)
target = os.environ.get("CARGO_TARGET_DIR", "target")
convnet = os.path.join(target, "release", "convnet")

print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
print(f"{'model':18} {'opset':>5} {'nodes':>5} {'max |diff|':>11} {'max error':>10}  outputs")
failures = []
for entry in json.load(open(f"{out}/models.json")):
    name = entry["name"]
    path = f"{out}/{name}.onnx"
    try:
        subprocess.run([convnet, "export", f"{out}/{name}.keras", path], check=True)
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        x = np.fromfile(f"{out}/{name}_x.f32", dtype="<f4").reshape(entry["x_shape"])
        want = np.fromfile(f"{out}/{name}_pred.f32", dtype="<f4").reshape(entry["pred_shape"])

        # Serving the file: what the README shows.
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name
        probabilities = session.run(None, {input_name: x})[0]

        def error(got, want):
            return float((np.abs(got - want) / np.maximum(1.0, np.abs(want))).max())
        diff = float(np.abs(probabilities - want).max())
        err = error(probabilities, want)
        batch_ok = session.get_inputs()[0].shape[0] == "N" and input_name == "input_layer"
        # The batch dimension is dynamic: one image at a time gives the same.
        one = session.run(None, {input_name: x[:1]})[0]
        err = max(err, error(one, want[:1]))
        opset = model.opset_import[0].version
        span = f"{float(want.min()):.3g} to {float(want.max()):.3g}"
        print(f"{name:18} {opset:5d} {len(model.graph.node):5d} {diff:11.2e} {err:10.2e}  {span}")
        if not (err <= TOL and batch_ok and probabilities.shape == want.shape):
            failures.append(f"{name}: max |diff| {diff}, input {input_name} {session.get_inputs()[0].shape}")
    except Exception as e:  # report every failure, not only the first
        print(f"{name:18} FAILED: {type(e).__name__}: {e}")
        failures.append(f"{name}: {e}")
if failures:
    print("\n".join(["", "FAILED:"] + failures))
    sys.exit(1)
print("every exported model passes onnx.checker and gives convnet's predictions in ONNX Runtime")
