"""Functional models (graphs with skip connections and merge layers) between Keras and convnet,
in both directions.

Keras 3 and tf_keras build the same small functional models — a residual block with `Add`
(from a stem and from the raw input), two branches joined by `Concatenate`, a chain of
`Multiply`, `Subtract`, `Average` and `Maximum`, and ResNet-20 v1 (BatchNormalization, L2
penalties, projection shortcuts, global average pooling) — train them a few steps with Adam, and save
them as Keras 3 `.keras`, Keras 3 `.h5` and tf_keras `.h5`. Then, for each file:

- `keras -> convnet`: convnet loads it with Keras' parameter counts (total and trainable),
  predicts within 1e-5 of Keras, and its next training step on the same batch predicts within
  1e-4 of Keras' own next step from that file's state (Keras 3 steps from its `.keras`,
  tf_keras from its `.h5`).
- `convnet -> keras`: convnet saves the model after that step as `.keras` and `.h5`; Keras 3
  loads both and tf_keras the `.h5`, each predicting what convnet predicts (within 1e-5), and
  one more step in Keras (Keras 3 from `.keras`, tf_keras from `.h5`) matches convnet's next
  step (within 1e-4).

A model with two inputs and two outputs is loaded, predicted (`predict_many`, within 1e-5)
and saved by convnet, and Keras 3 and tf_keras predict the same from convnet's files; it is
not trained, as convnet trains models with one input and one output only.

convnet's half is the same as compat.py's (`tests/keras_compat.rs`, through
`CONVNET_COMPAT_DIR`).

Run from the repository root (tests/keras_check/run.sh does):

    target/keras-venv/bin/python tests/keras_check/functional_check.py
"""
import json, os, re, subprocess, sys, tempfile
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import warnings
warnings.filterwarnings("ignore")
import numpy as np
import keras
import tf_keras

keras.utils.set_random_seed(11)
tf_keras.utils.set_random_seed(11)
OUT = os.environ.get("CONVNET_FUNCTIONAL_DIR") or tempfile.mkdtemp(prefix="convnet-functional-")
os.makedirs(OUT, exist_ok=True)
PRED_TOL, STEP_TOL = 1e-5, 1e-4
STEPS, N, SHAPE = 3, 8, (8, 8, 2)


def residual(L):
    inp = L.Input(SHAPE)
    stem = L.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = L.layers.Conv2D(4, 3, padding="same", activation="relu")(stem)
    x = L.layers.Conv2D(4, 3, padding="same")(x)
    x = L.layers.Add()([x, stem])
    x = L.layers.Activation("relu")(x)
    x = L.layers.MaxPooling2D()(x)
    out = L.layers.Dense(3, activation="softmax")(L.layers.Flatten()(x))
    return L.Model(inp, out)


def skip_from_input(L):
    inp = L.Input(SHAPE)
    x = L.layers.Conv2D(2, 3, padding="same", activation="tanh")(inp)
    x = L.layers.Add()([x, inp])
    out = L.layers.Dense(3, activation="softmax")(L.layers.Flatten()(x))
    return L.Model(inp, out)


def two_branches(L):
    inp = L.Input(SHAPE)
    a = L.layers.Conv2D(3, 3, padding="same", activation="tanh")(inp)
    a = L.layers.Conv2D(3, 3, padding="same", activation="relu")(a)
    b = L.layers.Conv2D(2, 1, activation="sigmoid")(inp)
    x = L.layers.Concatenate()([a, b])
    out = L.layers.Dense(3, activation="softmax")(L.layers.Flatten()(x))
    return L.Model(inp, out)


def merges(L):
    inp = L.Input(SHAPE)
    a = L.layers.Conv2D(3, 1, activation="tanh")(inp)
    b = L.layers.Conv2D(3, 3, padding="same", activation="tanh")(inp)
    c = L.layers.Conv2D(3, 1)(inp)
    m = L.layers.Multiply()([a, b])
    s = L.layers.Subtract()([m, c])
    v = L.layers.Average()([s, a, b])
    x = L.layers.Maximum()([v, c])
    out = L.layers.Dense(3, activation="softmax")(L.layers.Flatten()(x))
    return L.Model(inp, out)


def two_in_two_out(L):
    a = L.Input(SHAPE, name="image")
    b = L.Input((4,), name="extra")
    x = L.layers.Conv2D(3, 3, activation="relu")(a)
    x = L.layers.Flatten()(x)
    e = L.layers.Dense(5, activation="tanh")(b)
    x = L.layers.Concatenate()([x, e])
    out1 = L.layers.Dense(3, activation="softmax")(x)
    out2 = L.layers.Dense(1)(L.layers.Average()([e, L.layers.Dense(5)(b)]))
    return L.Model([a, b], [out1, out2])


# Several inputs and outputs: loaded, predicted (predict_many) and saved, no training.
MANY = [("two_in_two_out", two_in_two_out)]

CASES = [("residual", residual), ("skip_from_input", skip_from_input), ("two_branches", two_branches),
         ("merges", merges)]

def resnet20(L):
    """ResNet-20 v1 (He et al. 2016, as in Keras' CIFAR-10 example): three stages of three
    residual blocks (16, 32, 64 filters; conv-BN-ReLU-conv-BN, added to the block's input,
    ReLU), 1x1 stride-2 projection shortcuts, global average pooling, softmax. On these 8
    samples its softmax saturates within the three steps, so its rows check the wiring, the
    weights and BN's statistics more than they check small differences in the outputs."""
    def unit(x, filters, kernel=3, strides=1, activation="relu", bn=True):
        x = L.layers.Conv2D(filters, kernel, strides=strides, padding="same", kernel_initializer="he_normal",
                            kernel_regularizer=L.regularizers.l2(1e-4))(x)
        if bn:
            x = L.layers.BatchNormalization()(x)
        return L.layers.Activation(activation)(x) if activation else x
    inp = L.Input(SHAPE)
    x = unit(inp, 16)
    filters = 16
    for stage in range(3):
        for block in range(3):
            strides = 2 if stage > 0 and block == 0 else 1
            y = unit(x, filters, strides=strides)
            y = unit(y, filters, activation=None)
            if strides == 2:
                x = unit(x, filters, kernel=1, strides=2, activation=None, bn=False)
            x = L.layers.Activation("relu")(L.layers.Add()([x, y]))
        filters *= 2
    x = L.layers.GlobalAveragePooling2D()(x)
    return L.Model(inp, L.layers.Dense(3, activation="softmax", kernel_initializer="he_normal")(x))


CASES.append(("resnet20", resnet20))
NOT_YET = []


def predict(m, x):
    return np.asarray(m(x, training=False), dtype=np.float32)


def write(name, a):
    np.ascontiguousarray(a, dtype="<f4").tofile(os.path.join(OUT, name))


def read(name, shape):
    return np.fromfile(os.path.join(OUT, name), dtype="<f4").reshape(shape)


def short(e):
    s = f"{type(e).__name__}: {e}" if isinstance(e, BaseException) else str(e)
    s = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", s.replace(OUT + os.sep, "")).split())
    return s if len(s) <= 200 else s[:197] + "..."


def counts(m):
    return {"trainable": int(sum(np.prod(w.shape) for w in m.trainable_weights)),
            "non_trainable": int(sum(np.prod(w.shape) for w in m.non_trainable_weights))}


def adam(L):
    return L.optimizers.Adam(learning_rate=1e-2)


def step_from(L, path, x, y):
    m = L.models.load_model(path)
    m.run_eagerly = True
    m.train_on_batch(x, y)
    return predict(m, x)


def diff(a, b):
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} vs {b.shape}")
    return float(np.abs(a.astype(np.float64) - b).max())


rng = np.random.default_rng(5)
x = rng.uniform(-1, 1, (N, *SHAPE)).astype(np.float32)
y = np.eye(3, dtype=np.float32)[np.arange(N) * 2 % 3]
write("x.bin", x)
write("y.bin", y)

refs, manifest, rows = {}, [], []
for name, make in CASES:
    for L, tag in [(keras, "k3"), (tf_keras, "tfk")]:
        files = ["keras", "h5"] if tag == "k3" else ["h5"]
        try:
            m = make(L)
            m.compile(optimizer=adam(L), loss="categorical_crossentropy")
            m.run_eagerly = True
            for _ in range(STEPS):
                m.train_on_batch(x, y)
            pred = predict(m, x)
            for ext in files:
                m.save(os.path.join(OUT, f"{name}.{tag}.{ext}"))
            nxt = step_from(L, os.path.join(OUT, f"{name}.{tag}.{files[0]}"), x, y)
        except Exception as e:
            rows.append((name, tag, "keras", f"FAILED: Keras could not build, train or save it: {short(e)}"))
            continue
        for ext in files:
            fid = f"{name}.{tag}.{ext}"
            refs[fid] = dict(pred=pred, next=nxt, counts=counts(m))
            manifest.append(dict(id=fid, file=fid, x="x.bin", x_shape=list(x.shape), y="y.bin",
                                 y_shape=list(y.shape)))
x2 = rng.uniform(-1, 1, (N, 4)).astype(np.float32)
write("x2.bin", x2)
for name, make in MANY:
    for L, tag in [(keras, "k3"), (tf_keras, "tfk")]:
        files = ["keras", "h5"] if tag == "k3" else ["h5"]
        try:
            m = make(L)
            m.compile(optimizer=adam(L), loss=["categorical_crossentropy", "mse"])
            preds = [np.asarray(p, dtype=np.float32) for p in m([x, x2], training=False)]
            for ext in files:
                m.save(os.path.join(OUT, f"{name}.{tag}.{ext}"))
        except Exception as e:
            rows.append((name, tag, "keras", f"FAILED: Keras could not build or save it: {short(e)}"))
            continue
        for ext in files:
            fid = f"{name}.{tag}.{ext}"
            refs[fid] = dict(preds=preds, counts=counts(m))
            manifest.append(dict(id=fid, file=fid, xs=[dict(x="x.bin", x_shape=list(x.shape)),
                                                       dict(x="x2.bin", x_shape=list(x2.shape))]))
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"files": manifest}, f, indent=1)

r = subprocess.run(["cargo", "test", "--release", "-q", "-p", "convnet", "--test", "keras_compat", "--", "--ignored"],
                   env={**os.environ, "CONVNET_COMPAT_DIR": OUT})
if r.returncode != 0:
    print(f"convnet's side failed to run (status {r.returncode})")
    sys.exit(1)
with open(os.path.join(OUT, "convnet.json")) as f:
    report = json.load(f)

def check_many(fid, ref, rep):
    """Rows of a several-input, several-output model: convnet's predictions, and Keras'
    predictions from convnet's files."""
    err = rep.get("error") or rep.get("load") or rep.get("predict")
    if err:
        rows.append((fid, "keras -> convnet", "", f"FAILED: {short(err)}"))
        return
    try:
        got = [read(f"{fid}.cn_pred_{k}.bin", p.shape) for k, p in enumerate(ref["preds"])]
        d = max(diff(p, g) for p, g in zip(ref["preds"], got))
        ok = d <= PRED_TOL and rep.get("params") == ref["counts"]
        rows.append((fid, "keras -> convnet", f"params {sum(ref['counts'].values())}",
                     f"ok (predict {d:.1e})" if ok else f"FAILED: predict {d:.2e}, params {rep.get('params')}"))
    except Exception as e:
        rows.append((fid, "keras -> convnet", "", f"FAILED: {short(e)}"))
        return
    for L, tag, ext in [(keras, "keras3", "keras"), (keras, "keras3", "h5"), (tf_keras, "tf_keras", "h5")]:
        what = f"convnet .{ext} -> {tag}"
        try:
            m = L.models.load_model(os.path.join(OUT, f"{fid}.cn.{ext}"))
            back = [np.asarray(p, dtype=np.float32) for p in m([x, x2], training=False)]
            d = max(diff(g, b) for g, b in zip(got, back))
            ok = d <= PRED_TOL and len(back) == len(got) and counts(m) == ref["counts"]
            rows.append((fid, what, "", f"ok (predict {d:.1e})" if ok else f"FAILED: predict {d:.2e}"))
        except Exception as e:
            rows.append((fid, what, "", f"FAILED: {short(e)}"))


for entry in manifest:
    fid = entry["id"]
    ref, rep = refs[fid], report.get(fid, {"error": "no report"})
    if "xs" in entry:
        check_many(fid, ref, rep)
        continue
    problems, notes = [], []
    err = rep.get("error") or rep.get("load")
    if err:
        rows.append((fid, "keras -> convnet", "", f"FAILED: {short(err)}"))
        continue
    if rep.get("params") != ref["counts"]:
        problems.append(f"params {rep.get('params')} vs Keras' {ref['counts']}")
    for key, fname, want, tol in [("predict", "cn_pred.bin", ref["pred"], PRED_TOL),
                                  ("train", "cn_next.bin", ref["next"], STEP_TOL)]:
        if rep.get(key):
            problems.append(f"{key}: {short(rep[key])}")
            continue
        try:
            d = diff(want, read(f"{fid}.{fname}", want.shape))
            notes.append(f"{key} {d:.1e}")
            if d > tol:
                problems.append(f"{key} differs by {d:.2e}")
        except Exception as e:
            problems.append(f"{key}: {short(e)}")
    rows.append((fid, "keras -> convnet", f"params {sum(ref['counts'].values())}", ("FAILED: " + "; ".join(problems)) if problems
                 else "ok (" + ", ".join(notes) + ")"))
    # convnet -> keras: its files after its step, in both libraries.
    try:
        cn_next = read(f"{fid}.cn_next.bin", ref["pred"].shape)
        cn_next2 = read(f"{fid}.cn_next2.bin", ref["pred"].shape)
    except Exception as e:
        rows.append((fid, "convnet -> keras", "", f"FAILED: convnet wrote no predictions: {short(e)}"))
        continue
    for L, tag, ext, step in [(keras, "keras3", "keras", True), (keras, "keras3", "h5", False),
                              (tf_keras, "tf_keras", "h5", True)]:
        path = os.path.join(OUT, f"{fid}.cn.{ext}")
        what = f"convnet .{ext} -> {tag}"
        try:
            m = L.models.load_model(path)
            problems, notes = [], []
            if counts(m) != ref["counts"]:
                problems.append(f"params {counts(m)} vs {ref['counts']}")
            d = diff(cn_next, predict(m, x))
            notes.append(f"predict {d:.1e}")
            if d > PRED_TOL:
                problems.append(f"predict differs by {d:.2e}")
            if step:
                d = diff(cn_next2, step_from(L, path, x, y))
                notes.append(f"step {d:.1e}")
                if d > STEP_TOL:
                    problems.append(f"next step differs by {d:.2e}")
            rows.append((fid, what, "", ("FAILED: " + "; ".join(problems)) if problems else "ok (" + ", ".join(notes) + ")"))
        except Exception as e:
            rows.append((fid, what, "", f"FAILED: {short(e)}"))

for name, why in NOT_YET:
    rows.append((name, "-", "", f"not run: {why}"))
w = max(len(r[0]) for r in rows)
for r in rows:
    print(f"{r[0]:<{w}}  {r[1]:<28} {r[2]:<12} {r[3]}")
failed = sum(r[3].startswith("FAILED") for r in rows)
print(f"\n{len(rows)} rows, {failed} failed; files in {OUT}")
sys.exit(1 if failed else 0)
