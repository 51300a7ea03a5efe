"""The convolution variants between Keras and convnet: a Sequential with a dilated Conv2D, a
grouped Conv2D, DepthwiseConv2D (depth_multiplier 2, stride 2), SeparableConv2D and
Conv2DTranspose (stride 2, output_padding), then Flatten and Dense; and one with the variants'
own weight options (depthwise_/pointwise_ initializers, regularizers, constraints).

1. Parameter counts: Keras builds each model and saves it as `.keras`, Keras 3 `.h5` and
   tf_keras `.h5`; `convnet summary` of each file must print Keras' total, trainable and
   non-trainable counts.
2. Everything else runs through compat.py's machinery (its cases `conv_variants*`): convnet
   loads each file and predicts within 1e-5 of Keras, trains one step within 1e-4 of Keras'
   own step from that file's state; convnet's `.keras` and `.h5` saves load in Keras 3 and
   tf_keras with the original configs and predict what convnet predicts, and one more Keras
   step from them matches convnet's.

Run from the repository root (tests/keras_check/run.sh does):

    target/keras-venv/bin/python tests/keras_check/conv_variants_check.py
"""
import os, re, subprocess, sys, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import warnings
warnings.filterwarnings("ignore")
import numpy as np
import keras
import tf_keras

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
out = tempfile.mkdtemp(prefix="convnet-conv-variants-")
subprocess.run(["cargo", "build", "--release", "-q", "-p", "convnet-cli"], check=True)
convnet = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "release", "convnet")

# The models are compat.py's, read from its source (running it would run every case).
src = open(os.path.join(HERE, "compat.py")).read()
start = src.index("def conv_variants(L):")
end = src.index('case("conv_variants"')
models = {}
exec(src[start:end], models)
shapes = {"conv_variants": (10, 10, 2), "conv_variants_options": (7, 7, 3)}

failures = []
print(f"{'model':24} {'file':10} {'Keras total/trainable/non':>26} {'convnet':>18}  verdict")
for name, shape in shapes.items():
    for L, tag, exts in [(keras, "k3", ["keras", "h5"]), (tf_keras, "tfk", ["h5"])]:
        m = L.Sequential([L.Input(shape), *models[name](L)])
        trainable = sum(int(np.prod(w.shape)) for w in m.trainable_weights)
        want = (m.count_params(), trainable, m.count_params() - trainable)
        for ext in exts:
            path = os.path.join(out, f"{name}.{tag}.{ext}")
            m.save(path)
            r = subprocess.run([convnet, "summary", path], capture_output=True, text=True)
            text = r.stdout + r.stderr
            got = tuple(int(re.search(rf"{k} params: ([\d,]+)", text).group(1).replace(",", ""))
                        if re.search(rf"{k} params: ([\d,]+)", text) else -1
                        for k in ["Total", "Trainable", "Non-trainable"])
            ok = r.returncode == 0 and got == want
            if not ok:
                failures.append(f"{name} {tag}.{ext}: Keras {want}, convnet {got}: {text.strip()[-300:]}")
            print(f"{name:24} {tag + '.' + ext:10} {str(want):>26} {str(got):>18}  {'ok' if ok else 'FAILED'}")

env = {**os.environ, "COMPAT_ONLY": "conv_variants"}
compat = subprocess.run([sys.executable, os.path.join(HERE, "compat.py")], env=env)
if compat.returncode != 0:
    failures.append("compat.py's conv_variants cases failed (rows above)")
if failures:
    print("\n".join(["FAILED:"] + failures))
    sys.exit(1)
print("the convolution variants load, predict, train and save as Keras does")
