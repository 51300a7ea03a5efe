"""Modern layers and networks through Keras' files, both directions.

The networks: a functional ResNet-20 (as `bench/reference/models.py` builds it for Keras),
`applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3), classes=10)` and a
Sequential with Rescaling, a dilated Conv2D, SeparableConv2D, BatchNormalization and global
pooling; their BatchNormalization layers start from the batch statistics of a calibration batch
(so every one of them is non-trivial and the networks' outputs depend on their inputs) before
the training steps below, at a rate that keeps their softmax from saturating. MobileNetV2's
training step is not compared (see CASES: Keras 3 and tf_keras disagree with each other there).

Builds with Keras 3 and with tf_keras Sequential models using Rescaling, Normalization (given
and adapted), Conv2D, BatchNormalization (default and custom momentum, center/scale off),
ZeroPadding2D, Cropping2D, UpSampling2D (nearest and bilinear), SpatialDropout2D, Reshape,
GlobalAveragePooling2D and GlobalMaxPooling2D; trains each a few SGD steps on pixel-valued
data so BatchNormalization's moving statistics move well away from their start, and saves it as
`.keras` and `.h5` (Keras 3) and `.h5` (tf_keras). Then for each file:

- convnet loads it (through the harness of compat.py, `tests/keras_compat.rs`) with Keras'
  trainable and non-trainable parameter counts and predicts within 1e-4 of Keras in inference
  mode; for the models without dropout, its next SGD step matches Keras' next step from the
  same file (Keras 3 from `.keras`, tf_keras from its `.h5`) within 1e-4;
- a frozen BatchNormalization (`trainable=False`) counts as non-trainable and trains in
  inference mode, as in Keras 3;
- convnet's own saves (`.keras`, `.h5`, after its step) load in Keras 3 (both) and tf_keras
  (`.h5`), with the same parameter counts, and predict what convnet predicts within 1e-4; one
  more step in Keras 3 (from `.keras`) and tf_keras (from `.h5`) matches convnet's next step
  within 1e-4, which holds only if the optimizer's slots (SGD with momentum) were written for
  the trainable weights alone, as Keras does. (tf_keras' steps land about 1e-5 away: its fused
  BatchNormalization moves the moving variance towards the unbiased batch variance, Keras 3
  and convnet towards the biased one.)

Run from the repository root (tests/keras_check/run.sh does):

    target/keras-venv/bin/python tests/keras_check/modern_check.py

Exit status 1 when any row fails.
"""
import json, os, subprocess, sys, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import warnings
warnings.filterwarnings("ignore")
import numpy as np
import keras
import tf_keras

keras.utils.set_random_seed(5)
tf_keras.utils.set_random_seed(5)
OUT = os.environ.get("CONVNET_MODERN_DIR") or tempfile.mkdtemp(prefix="convnet-modern-")
os.makedirs(OUT, exist_ok=True)
TOL = 1e-4
N, STEPS = 16, 6
rng = np.random.default_rng(3)
ADAPT = (rng.uniform(0, 255, (64, 12, 12, 3)) * [1.0, 0.5, 0.8]).astype(np.float32)


def pixels(L):
    return [L.Rescaling(1 / 255.0), L.Conv2D(6, 3, padding="same"), L.BatchNormalization(),
            L.Activation("relu"), L.ZeroPadding2D(((1, 0), (0, 1))), L.Conv2D(8, 3, strides=2),
            L.BatchNormalization(momentum=0.9, epsilon=1e-2), L.ReLU(), L.UpSampling2D(2, interpolation="bilinear"),
            L.Cropping2D(1), L.Conv2D(4, 3), L.BatchNormalization(center=False),
            L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")]


def normalized(L):
    return [L.Normalization(mean=[120.0, 60.0, 100.0], variance=[4800.0, 1200.0, 3000.0]),
            L.Conv2D(5, 3), L.BatchNormalization(scale=False, momentum=0.8), L.UpSampling2D((1, 2)),
            L.GlobalMaxPooling2D(keepdims=True), L.Reshape((-1,)), L.Dense(3, activation="softmax")]


def adapted(L):
    n = L.Normalization()
    n.adapt(ADAPT)
    return [n, L.Conv2D(6, 3, activation="relu"), L.SpatialDropout2D(0.2), L.BatchNormalization(),
            L.GlobalAveragePooling2D(keepdims=True), L.Flatten(), L.Dense(3, activation="softmax")]


def frozen(L):
    # A frozen BatchNormalization runs in inference mode in Keras 3 and keeps its statistics.
    return [L.Rescaling(1 / 127.5, offset=-1), L.Conv2D(4, 3),
            L.BatchNormalization(trainable=False, moving_mean_initializer="random_normal",
                                 moving_variance_initializer="ones"),
            L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")]


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "reference"))
from models import keras_resnet20  # noqa: E402  (the same ResNet-20 the speed comparison runs)


def stack(make, shape=(12, 12, 3)):
    """A Sequential of `make`'s layers on `shape`."""
    return lambda L: L.Sequential([L.Input(shape), *make(L.layers)])


def mixed(L):
    return [L.Rescaling(1 / 255.0), L.Conv2D(8, 3, dilation_rate=2, padding="same"), L.BatchNormalization(),
            L.ReLU(), L.SeparableConv2D(12, 3, padding="same", depth_multiplier=2), L.BatchNormalization(),
            L.Activation("relu"), L.GlobalAveragePooling2D(), L.Dense(10, activation="softmax")]


def resnet20(L):
    return keras_resnet20((32, 32, 3), L)


def mobilenet_v2(L):
    return L.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=10)


def probe(L):
    """A small inverted residual network, for MODERN_PROBE=<parts> (expand, add)."""
    K, kind = L.layers, os.environ.get("MODERN_PROBE", "")
    inp = L.Input((16, 16, 3))
    x = K.ReLU(6.0)(K.BatchNormalization(momentum=0.999)(K.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)))
    y = x
    if "expand" in kind:
        y = K.ReLU(6.0)(K.BatchNormalization(momentum=0.999)(K.Conv2D(48, 1, use_bias=False)(y)))
    y = K.ReLU(6.0)(K.BatchNormalization(momentum=0.999)(K.DepthwiseConv2D(3, padding="same", use_bias=False)(y)))
    y = K.BatchNormalization(momentum=0.999)(K.Conv2D(8, 1, use_bias=False)(y))
    x = K.Add()([x, y]) if "add" in kind else y
    return L.Model(inp, K.Dense(10, activation="softmax")(K.GlobalAveragePooling2D()(x)))


# name, model builder (given Keras 3 or tf_keras), deterministic (no dropout), input shape,
# classes, inputs as raw pixels (0-255) rather than [0, 1].
CASES = [("pixels", stack(pixels), True, (12, 12, 3), 3, True),
         ("normalized", stack(normalized), True, (12, 12, 3), 3, True),
         ("adapted", stack(adapted), False, (12, 12, 3), 3, True),
         ("frozen", stack(frozen), True, (12, 12, 3), 3, True),
         ("mixed", stack(mixed, (16, 16, 3)), True, (16, 16, 3), 10, True),
         ("resnet20", resnet20, True, (32, 32, 3), 10, False),
         # No step compared for MobileNetV2: on 16 noise pictures a training step through its
         # BatchNormalizations is ill-conditioned enough that Keras 3 and tf_keras, from the
         # same file, land 0.05-0.19 apart after one step; convnet lands as far from each.
         # Its predictions, parameter counts and files are compared as for the others.
         ("mobilenet_v2", mobilenet_v2, False, (96, 96, 3), 10, False)]
if os.environ.get("MODERN_PROBE"):
    CASES.append(("network_probe", probe, True, (16, 16, 3), 10, False))
NETWORKS = ("mixed", "resnet20", "mobilenet_v2", "network_probe")


def predict(m, x):
    return np.asarray(m(x, training=False), dtype=np.float32)


def write(name, a):
    np.ascontiguousarray(a, dtype="<f4").tofile(os.path.join(OUT, name))


def read(name, shape):
    return np.fromfile(os.path.join(OUT, name), dtype="<f4").reshape(shape)


def counts(m):
    return {"trainable": int(sum(np.prod(w.shape) for w in m.trainable_weights)),
            "non_trainable": int(sum(np.prod(w.shape) for w in m.non_trainable_weights))}


def moving_spread(m):
    """How far the moving statistics moved from their start (0 and 1)."""
    far = 0.0
    for l in m.layers:
        if type(l).__name__ == "BatchNormalization":
            far = max(far, float(np.abs(np.asarray(l.moving_mean)).max()),
                      float(np.abs(np.asarray(l.moving_variance) - 1).max()))
    return far


def short(e):
    s = " ".join(f"{type(e).__name__}: {e}".replace(OUT + os.sep, "").split())
    return s if len(s) <= 240 else s[:237] + "..."


def calibrate(m, x):
    """Sets every BatchNormalization's moving statistics to its batch statistics on `x` (one
    training-mode pass at momentum 0), as a trained network's are: far from their start (0 and
    1), and the network's inference output depends on its input. (Left at their start, a fresh
    MobileNetV2 predicts the same for every input.)"""
    bns = [l for l in m.layers if type(l).__name__ == "BatchNormalization"]
    kept = [l.momentum for l in bns]
    for l in bns:
        l.momentum = 0.0
    m(x, training=True)
    for l, k in zip(bns, kept):
        l.momentum = k


only = os.environ.get("MODERN_ONLY")  # run only the cases whose name contains it
CASES = [c for c in CASES if not only or only in c[0]]
data = {}
for name, _, _, shape, classes, raw in CASES:
    x = rng.uniform(0, 255 if raw else 1, (N, *shape)).astype(np.float32)
    y = np.eye(classes, dtype=np.float32)[np.arange(N) % classes]
    write(f"{name}_x.bin", x)
    write(f"{name}_y.bin", y)
    data[name] = (x, y)
refs, manifest, rows = {}, [], []
for name, make, deterministic, shape, classes, raw in CASES:
    x, y = data[name]
    for L, tag in [(keras, "k3"), (tf_keras, "tfk")]:
        m = make(L)
        network = name in NETWORKS
        if network:
            calibrate(m, np.random.default_rng(11).uniform(0, 255 if raw else 1, x.shape).astype(np.float32))
        # Momentum gives the optimizer slots, which exist for the trainable weights only.
        # (A smaller rate for the networks: at 0.05 their softmax saturates within the steps.)
        m.compile(optimizer=L.optimizers.SGD(0.01 if network else 0.05, momentum=0.9),
                  loss="categorical_crossentropy")
        for _ in range(STEPS):
            m.train_on_batch(x, y)
        files = ["keras", "h5"] if tag == "k3" else ["h5"]
        for ext in files:
            m.save(os.path.join(OUT, f"{name}.{tag}.{ext}"))
        nxt = None
        if deterministic:
            again = L.models.load_model(os.path.join(OUT, f"{name}.{tag}.{files[0]}"))
            again.train_on_batch(x, y)
            nxt = predict(again, x)
        for ext in files:
            fid = f"{name}.{tag}.{ext}"
            refs[fid] = dict(pred=predict(m, x), next=nxt, counts=counts(m), spread=moving_spread(m))
            manifest.append(dict(id=fid, file=fid, x=f"{name}_x.bin", x_shape=list(x.shape), y=f"{name}_y.bin",
                                 y_shape=list(y.shape)))
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"files": manifest}, f, indent=1)

r = subprocess.run(["cargo", "test", "--release", "-q", "-p", "convnet", "--test", "keras_compat", "--", "--ignored"],
                   env={**os.environ, "CONVNET_COMPAT_DIR": OUT})
if r.returncode != 0:
    print(f"convnet's side failed to run (status {r.returncode})")
    sys.exit(1)
with open(os.path.join(OUT, "convnet.json")) as f:
    report = json.load(f)


def err(a, b):
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} vs {b.shape}")
    return float(np.abs(a.astype(np.float64) - b).max())


failed = False
for entry in manifest:
    fid = entry["id"]
    x, y = data[fid.split(".")[0]]
    ref, rep = refs[fid], report.get(fid, {})
    problems, notes = [], [f"moving statistics moved {ref['spread']:.2f}"]
    stage = next((k for k in ("error", "load", "predict", "train", "save_keras", "save_h5") if rep.get(k)), None)
    if stage:
        problems.append(f"{stage}: {rep[stage]}")
    else:
        if rep.get("params") != ref["counts"]:
            problems.append(f"parameter counts {rep.get('params')} vs Keras {ref['counts']}")
        e = err(read(f"{fid}.cn_pred.bin", ref["pred"].shape), ref["pred"])
        notes.append(f"predict {e:.1e}")
        if e > TOL:
            problems.append(f"predictions differ by {e:.2e}")
        if ref["next"] is not None:
            e = err(read(f"{fid}.cn_next.bin", ref["next"].shape), ref["next"])
            notes.append(f"next step {e:.1e}")
            if e > TOL:
                problems.append(f"the next step differs by {e:.2e}")
        # convnet's saves, after its step, in Keras.
        cn_pred = read(f"{fid}.cn_next.bin", ref["pred"].shape)
        for L, tag, ext in [(keras, "keras3", "keras"), (keras, "keras3", "h5"), (tf_keras, "tf_keras", "h5")]:
            try:
                back = L.models.load_model(os.path.join(OUT, f"{fid}.cn.{ext}"))
                e = err(predict(back, x), cn_pred)
                notes.append(f"{tag} .{ext} {e:.1e}")
                if e > TOL:
                    problems.append(f"{tag} predicts convnet's .{ext} {e:.2e} away")
                if counts(back) != ref["counts"]:
                    problems.append(f"{tag} counts {counts(back)} in convnet's .{ext}")
                # Keras' next step from convnet's state (optimizer slots and iteration count
                # included) is convnet's next step; Keras 3 trains from `.keras` only (it
                # cannot continue from a legacy `.h5` holding optimizer state).
                if ref["next"] is not None and (tag, ext) in (("keras3", "keras"), ("tf_keras", "h5")):
                    back.train_on_batch(x, y)
                    e = err(predict(back, x), read(f"{fid}.cn_next2.bin", ref["pred"].shape))
                    notes.append(f"{tag} step {e:.1e}")
                    if e > TOL:
                        problems.append(f"{tag}'s step from convnet's .{ext} differs by {e:.2e}")
            except Exception as ex:
                problems.append(f"{tag} cannot load or train convnet's .{ext}: {short(ex)}")
    failed |= bool(problems)
    print(f"{fid:26} {'FAILED: ' + '; '.join(problems) if problems else 'ok'} ({', '.join(notes)})")
sys.exit(1 if failed else 0)
