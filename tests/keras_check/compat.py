"""Reads and writes Keras files as real notebooks write them, in both directions.

In one Python process (so Keras' default layer names carry suffixes, as in a notebook: the
second model's layers are `conv2d_1`, `dense_2`, ...), it builds many small models: default,
custom, suffixed and permuted layer names, every Keras 3 built-in activation (as `activation=`
and as the layer classes), frozen layers, each initializer, constraint, loss, optimizer and
learning-rate schedule. Each model is trained a few steps on fixed data (so the optimizer has
state) and saved three ways: Keras 3 `.keras`, Keras 3 `.h5` and tf_keras `.h5` (the same
model built in tf_keras, where tf_keras has the feature). Then, for each file:

- `keras -> convnet`: convnet loads the file and predicts (within 1e-5 of Keras), trains one
  step on the same batch and predicts again (within 1e-4 of Keras' own next step from that
  file's state: Keras 3 trains a copy loaded from the `.keras` file, tf_keras one loaded from
  its `.h5`; the Keras 3 `.h5` holds the same state as the `.keras` saved beside it, so its
  reference is the same step).
- `convnet -> keras3/tf_keras`: convnet saves the model (after its step) as `.keras` and `.h5`;
  Keras 3 loads both, tf_keras the `.h5`, and each must predict what convnet predicts. Where
  Keras can train from the file (Keras 3 from `.keras`, tf_keras from `.h5`), one more step in
  Keras must match convnet's next step, which holds only if convnet wrote the optimizer state,
  the iteration count and the compile config as Keras reads them. Where the reader is the
  library that wrote the original file, the model it loads from convnet's file must also have
  the original's layer and optimizer configs (names, initializers, constraints, trainable
  flags, schedules, ...), as Keras reloads them from the original. The optimizer's config is
  compared only where Keras can train from the file: Keras 3 reads the optimizer of a
  tf_keras-style `.h5` with its default learning rate (tf_keras' own files too).

Not checked, because Keras cannot, not because convnet does not (printed as `n/a`):
- Keras 3 cannot continue `fit` on a legacy `.h5` that holds optimizer state ("This optimizer
  can only be called for the variables it was originally built with"), its own files included;
  so no Keras 3 step from a `.h5`.
- tf_keras reads no `.keras` (Keras 3's format).
- Models using what tf_keras lacks (the activations Keras 3 added: celu, glu, hard_shrink,
  hard_silu/hard_swish, hard_tanh, log_sigmoid, soft_shrink, sparse_plus, sparse_sigmoid,
  sparsemax, squareplus, tanh_shrink) have no tf_keras file, and tf_keras is not asked to read
  convnet's copy of them.
- The activation `threshold` by name: Keras cannot use it so (it needs arguments).
- Steps of models with dropout: their masks are random, so only predictions are compared.

What convnet does not support by design is listed in BY_DESIGN below with the reason; those
rows print as `n/a (by design)` instead of failing. Every other row must pass.

One row per (case, Keras file, reader). The run keeps going after a failure and exits with
status 1 if any row failed. Run from the repository root (tests/keras_check/run.sh does):

    target/keras-venv/bin/python tests/keras_check/compat.py

It runs convnet's half with
`CONVNET_COMPAT_DIR=dir cargo test --release -p convnet --test keras_compat -- --ignored`.
Set CONVNET_COMPAT_DIR yourself to keep the files, and COMPAT_ONLY=substring to run only the
cases whose name contains it.
"""
import json, os, re, shutil, subprocess, sys, tempfile, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import warnings
warnings.filterwarnings("ignore")
import numpy as np

START = time.time()
import keras
import tf_keras

keras.utils.set_random_seed(7)
tf_keras.utils.set_random_seed(7)

OUT = os.environ.get("CONVNET_COMPAT_DIR") or tempfile.mkdtemp(prefix="convnet-keras-compat-")
os.makedirs(OUT, exist_ok=True)
PRED_TOL, STEP_TOL = 1e-5, 1e-4
STEPS = 3    # steps Keras trains before saving, so optimizer slots and schedules have moved
N = 8        # samples, all in one batch

# (case, reader) or (case, source file, reader) -> why convnet does not support it by design;
# reader is "convnet",
# "keras3 .keras", "keras3 .h5" or "tf_keras .h5", or "*" for all of a case's rows.
HARD_SIGMOID = ("tf_keras' hard_sigmoid is another function (clip(0.2x + 0.5, 0, 1)) under Keras 3's "
                "name (relu6(x + 3) / 6); convnet follows Keras 3, as Keras 3 itself does when it reads a "
                "tf_keras file")
GLU = ("glu as a layer's activation halves that layer's output width; convnet's Conv2D and Dense keep "
       "their width (use the Activation layer's functions that keep it)")
NADAM = ("tf_keras does not save Nadam's u_product and restarts it at 1 when it loads any file, its own "
         "included; convnet keeps Keras 3's value, so only tf_keras' continuation differs")
BY_DESIGN = {
    ("activation_hard_sigmoid", "tf_keras .h5"): HARD_SIGMOID,
    ("activation_hard_sigmoid", "tfk.h5", "convnet"): HARD_SIGMOID,
    ("activation_glu", "*"): GLU,
    ("optimizer_nadam", "tf_keras .h5"): NADAM,
    ("optimizer_nadam", "tfk.h5", "convnet"): NADAM,
}


def by_design(name, src, reader):
    """Why a (case, source file, reader) row is not supported by design, if it is not."""
    return BY_DESIGN.get((name, src, reader)) or BY_DESIGN.get((name, reader)) or BY_DESIGN.get((name, "*"))


def is_k3(L):
    return L is keras


# --- The cases -------------------------------------------------------------------------------

class Case:
    """A model to build in Keras 3 and tf_keras. `layers(L)` and `compile(L)` take the library
    (`keras` or `tf_keras`) and return the layers after the Input, and the compile arguments
    (None: the model stays uncompiled). `target`: "onehot", "sparse" or "binary"."""

    def __init__(self, name, layers, shape=(8, 8, 1), compile=None, target="onehot",
                 uncompiled=False, deterministic=True, tfk=None, keras_cannot=None, quiet=False):
        self.name, self.layers, self.shape, self.target = name, layers, shape, target
        self.compile = None if uncompiled else (compile or adam())
        self.deterministic = deterministic
        self.tfk = tfk  # why tf_keras cannot build this model, or None
        self.keras_cannot = keras_cannot  # why Keras 3 cannot build it either, or None
        self.quiet = quiet  # convnet must load it without a warning


CASES = []


def case(*args, **kw):
    CASES.append(Case(*args, **kw))


def adam(lr=1e-2, loss="categorical_crossentropy"):
    return lambda L: dict(optimizer=L.optimizers.Adam(lr), loss=loss)


def small(L, conv=None, dense=None, units=3, out="softmax", mid=()):
    """Conv2D(4, 3) -> [mid layers] -> MaxPooling2D -> Flatten -> Dense(units)."""
    return [L.layers.Conv2D(4, 3, **(conv or {})), *mid, L.layers.MaxPooling2D(2),
            L.layers.Flatten(), L.layers.Dense(units, activation=out, **(dense or {}))]


def lenet(L, names=None, dropout=False):
    names = names or {}
    nm = lambda k: {"name": names[k]} if k in names else {}
    return [L.layers.Conv2D(4, 3, activation="relu", **nm("conv")),
            L.layers.MaxPooling2D(2, **nm("pool")), L.layers.Flatten(**nm("flat")),
            *([L.layers.Dropout(0.5)] if dropout else []),
            L.layers.Dense(8, activation="relu", **nm("hidden")),
            L.layers.Dense(3, activation="softmax", **nm("out"))]


def out_of_order(L):
    # Constructed last to first: the names count up against the positions.
    out = L.layers.Dense(3, activation="softmax")
    hidden = L.layers.Dense(8, activation="relu")
    conv2 = L.layers.Conv2D(4, 3, activation="tanh")
    conv1 = L.layers.Conv2D(4, 3, padding="same", activation="relu")
    return [conv1, conv2, L.layers.Flatten(), hidden, out]


def colliding(L):
    # The two Conv2D's names are each other's class-and-position paths in a `.keras` file
    # (`layers/conv2d`, `layers/conv2d_1`) and their shapes agree: matching weights by name
    # instead of position swaps them without an error.
    return [L.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2d_1"),
            L.layers.Conv2D(4, 3, padding="same", activation="tanh", name="conv2d"),
            L.layers.Flatten(), L.layers.Dense(3, activation="softmax", name="dense")]


# Layer names and addressing. The first model of the process has Keras' unsuffixed names.
case("default_names", lenet, compile=lambda L: dict(optimizer="adam", loss="categorical_crossentropy"))
case("default_names_dropout", lambda L: lenet(L, dropout=True), deterministic=False)
case("suffixed_names", lenet)
case("custom_names", lambda L: lenet(L, names=dict(conv="c1", pool="p1", flat="f1", hidden="d1", out="d2")))
case("out_of_order", out_of_order)
case("colliding_names", colliding, shape=(8, 8, 4))
case("uncompiled", lenet, uncompiled=True, quiet=True)  # Keras 3 writes `compile_config: {}`

# Every Keras 3 built-in activation, as `activation=`. glu halves the last axis, which Keras'
# layers do not account for in their output shapes, so it is only usable on the last layer.
ACTIVATIONS = ["celu", "elu", "exponential", "gelu", "hard_shrink", "hard_sigmoid",
               "hard_silu", "hard_swish", "hard_tanh", "leaky_relu", "linear", "log_sigmoid",
               "log_softmax", "mish", "relu", "relu6", "selu", "sigmoid", "silu", "swish",
               "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid",
               "sparsemax", "squareplus", "tanh", "tanh_shrink"]
for a in ACTIVATIONS:
    try:
        tf_keras.activations.get(a)
        lacks = None
    except Exception:
        lacks = f"tf_keras has no activation {a!r}"
    case(f"activation_{a}", lambda L, a=a: small(L, conv=dict(activation=a)), tfk=lacks)
case("activation_glu", lambda L: small(L, units=6, out="glu"), tfk="tf_keras has no activation 'glu'",
     compile=lambda L: dict(optimizer=L.optimizers.Adam(1e-2), loss=L.losses.MeanSquaredError()))
case("activation_threshold", None, keras_cannot="Keras cannot use 'threshold' by name: it needs "
     "arguments (threshold, default_value) that `activation=` cannot pass")
case("activation_layers", lambda L: small(L, mid=[L.layers.Activation("gelu"), L.layers.Activation("selu")]))

# The activation layer classes, with their arguments.
case("layer_relu", lambda L: small(L, mid=[L.layers.ReLU()]))
case("layer_relu_args", lambda L: small(L, mid=[L.layers.ReLU(max_value=0.5, negative_slope=0.1, threshold=0.05)]))
# tf_keras' LeakyReLU calls the slope `alpha`; Keras 3 writes `negative_slope`.
case("layer_leaky_relu", lambda L: small(L, mid=[
    L.layers.LeakyReLU(negative_slope=0.2) if is_k3(L) else L.layers.LeakyReLU(alpha=0.2)]))
case("layer_elu", lambda L: small(L, mid=[L.layers.ELU(alpha=0.5)]))
case("layer_softmax", lambda L: small(L, mid=[L.layers.Softmax(axis=-1)]))
case("layer_prelu", lambda L: small(L, mid=[L.layers.PReLU(alpha_initializer=L.initializers.Constant(0.25))]))
case("layer_prelu_shared", lambda L: small(L, mid=[L.layers.PReLU(shared_axes=[1, 2])]))

# Frozen layers: Keras keeps no optimizer slots for them.
def frozen(L, which):
    layers = lenet(L)
    layers[which].trainable = False
    return layers
case("frozen_conv", lambda L: frozen(L, 0))
case("frozen_dense", lambda L: frozen(L, 3))

# Initializers (kernel of the Conv2D and the Dense; some biases). Identity needs a 2-D kernel.
INITIALIZERS = {
    "variance_scaling_fan_in_truncated": lambda I: I.VarianceScaling(2.0, "fan_in", "truncated_normal", seed=1),
    "variance_scaling_fan_out_untruncated": lambda I: I.VarianceScaling(0.5, "fan_out", "untruncated_normal", seed=2),
    "variance_scaling_fan_avg_uniform": lambda I: I.VarianceScaling(1.5, "fan_avg", "uniform", seed=3),
    "orthogonal": lambda I: I.Orthogonal(gain=1.5, seed=4),
    "truncated_normal": lambda I: I.TruncatedNormal(0.0, 0.1, seed=5),
    "random_normal": lambda I: I.RandomNormal(0.1, 0.2, seed=6),
    "random_uniform": lambda I: I.RandomUniform(-0.2, 0.3, seed=7),
    "constant": lambda I: I.Constant(0.05),
    "glorot_normal": lambda I: I.GlorotNormal(seed=8),
    "glorot_uniform": lambda I: I.GlorotUniform(seed=9),
    "he_normal": lambda I: I.HeNormal(seed=10),
    "he_uniform": lambda I: I.HeUniform(seed=11),
    "lecun_normal": lambda I: I.LecunNormal(seed=12),
    "lecun_uniform": lambda I: I.LecunUniform(seed=13),
    "zeros": lambda I: I.Zeros(),
    "ones": lambda I: I.Ones(),
}
for n, init in INITIALIZERS.items():
    # Orthogonal needs 2 dimensions or more: not for biases.
    bias = (lambda I: I.Constant(0.1)) if n == "orthogonal" else init
    case(f"init_{n}", lambda L, init=init, bias=bias: small(
        L, conv=dict(kernel_initializer=init(L.initializers), bias_initializer=bias(L.initializers)),
        dense=dict(kernel_initializer=init(L.initializers))))
case("init_identity_dense", lambda L: small(L, dense=dict(kernel_initializer=L.initializers.Identity(gain=0.5))))
case("init_by_name", lambda L: small(L, conv=dict(kernel_initializer="he_normal", bias_initializer="ones"),
                                     dense=dict(kernel_initializer="orthogonal")))

# Constraints, applied after each update; tight enough to bind.
CONSTRAINTS = {
    "max_norm": lambda C: (C.MaxNorm(0.3, axis=[0, 1, 2]), C.MaxNorm(0.5), C.MaxNorm(0.05)),
    "min_max_norm": lambda C: (C.MinMaxNorm(0.2, 0.4, rate=0.7, axis=[0, 1, 2]), C.MinMaxNorm(0.5, 0.8), C.MinMaxNorm(0.0, 0.05)),
    "non_neg": lambda C: (C.NonNeg(), C.NonNeg(), C.NonNeg()),
    "unit_norm": lambda C: (C.UnitNorm(axis=[0, 1, 2]), C.UnitNorm(axis=0), C.UnitNorm(axis=0)),
}
for n, cons in CONSTRAINTS.items():
    def layers(L, cons=cons):
        ck, dk, b = cons(L.constraints)
        return small(L, conv=dict(kernel_constraint=ck, bias_constraint=b), dense=dict(kernel_constraint=dk))
    case(f"constraint_{n}", layers)

# Losses.
def loss_case(name, loss, out="softmax", units=3, target="onehot"):
    case(f"loss_{name}", lambda L: small(L, out=out, units=units), target=target,
         compile=lambda L: dict(optimizer=L.optimizers.Adam(1e-2), loss=loss(L.losses)))
loss_case("categorical_logits", lambda Ls: Ls.CategoricalCrossentropy(from_logits=True), out=None)
loss_case("categorical_smoothing", lambda Ls: Ls.CategoricalCrossentropy(label_smoothing=0.1))
loss_case("categorical_logits_smoothing", lambda Ls: Ls.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2), out=None)
loss_case("sparse_categorical", lambda Ls: "sparse_categorical_crossentropy", target="sparse")
loss_case("sparse_categorical_logits", lambda Ls: Ls.SparseCategoricalCrossentropy(from_logits=True), out=None, target="sparse")
loss_case("binary", lambda Ls: "binary_crossentropy", out="sigmoid", units=1, target="binary")
loss_case("binary_logits", lambda Ls: Ls.BinaryCrossentropy(from_logits=True), out=None, units=1, target="binary")
loss_case("binary_smoothing", lambda Ls: Ls.BinaryCrossentropy(label_smoothing=0.1), out="sigmoid", units=1, target="binary")
loss_case("binary_logits_smoothing", lambda Ls: Ls.BinaryCrossentropy(from_logits=True, label_smoothing=0.2), out=None, units=1, target="binary")
loss_case("mse", lambda Ls: "mse")

# Optimizers.
OPTIMIZERS = {
    "sgd": lambda O: O.SGD(0.05),
    "sgd_momentum": lambda O: O.SGD(0.05, momentum=0.9),
    "sgd_nesterov": lambda O: O.SGD(0.05, momentum=0.9, nesterov=True),
    "adam": lambda O: O.Adam(1e-2, beta_1=0.8, beta_2=0.99, epsilon=1e-6),
    "adam_amsgrad": lambda O: O.Adam(1e-2, amsgrad=True),
    "adamw": lambda O: O.AdamW(1e-2, weight_decay=0.05),
    "nadam": lambda O: O.Nadam(1e-2),
    "adamax": lambda O: O.Adamax(1e-2),
    "adagrad": lambda O: O.Adagrad(0.05, initial_accumulator_value=0.2),
    "adadelta": lambda O: O.Adadelta(1.0, rho=0.9),
    "rmsprop": lambda O: O.RMSprop(1e-2),
    "rmsprop_momentum_centered": lambda O: O.RMSprop(1e-2, momentum=0.5, centered=True),
}
for n, opt in OPTIMIZERS.items():
    case(f"optimizer_{n}", lenet,
         compile=lambda L, opt=opt: dict(optimizer=opt(L.optimizers), loss="categorical_crossentropy"))

# Learning-rate schedules, stored in the optimizer's config; a few steps in, so they have moved.
SCHEDULES = {
    "exponential": lambda S: S.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5),
    "exponential_staircase": lambda S: S.ExponentialDecay(0.05, decay_steps=2, decay_rate=0.5, staircase=True),
    "piecewise_constant": lambda S: S.PiecewiseConstantDecay([2, 3], [0.05, 0.02, 0.01]),
    "cosine": lambda S: S.CosineDecay(0.05, decay_steps=6, alpha=0.1),
    "cosine_warmup": lambda S: S.CosineDecay(0.0, decay_steps=6, warmup_target=0.05, warmup_steps=5),
    "inverse_time": lambda S: S.InverseTimeDecay(0.05, decay_steps=2, decay_rate=0.5),
    "polynomial": lambda S: S.PolynomialDecay(0.05, decay_steps=5, end_learning_rate=0.001, power=2.0),
    "polynomial_cycle": lambda S: S.PolynomialDecay(0.05, decay_steps=2, end_learning_rate=0.001, cycle=True),
}
for n, sched in SCHEDULES.items():
    case(f"schedule_{n}", lenet, compile=lambda L, sched=sched: dict(
        optimizer=L.optimizers.SGD(sched(L.optimizers.schedules), momentum=0.9),
        loss="categorical_crossentropy"))
case("schedule_adam", lenet, compile=lambda L: dict(
    optimizer=L.optimizers.Adam(L.optimizers.schedules.ExponentialDecay(0.02, 3, 0.7)),
    loss="categorical_crossentropy"))



def conv_variants(L):
    """Every convolution variant in one stack: dilated and grouped Conv2D, DepthwiseConv2D
    with a multiplier and stride 2, SeparableConv2D, Conv2DTranspose with output padding."""
    return [L.layers.Conv2D(4, 3, dilation_rate=2, padding="same", activation="relu"),
            L.layers.Conv2D(6, 3, groups=2, activation="tanh"),
            L.layers.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same"),
            L.layers.SeparableConv2D(4, 3, padding="same", activation="relu", depth_multiplier=2),
            L.layers.Conv2DTranspose(3, 3, strides=2, padding="same", output_padding=1, activation="relu"),
            L.layers.Flatten(), L.layers.Dense(3, activation="softmax")]


def conv_variants_options(L):
    """The variants' own weight options: depthwise_/pointwise_ initializers, regularizers and
    constraints, relu6, a transposed convolution with a stride larger than its kernel."""
    return [L.layers.DepthwiseConv2D(3, depthwise_initializer="he_normal", activation="relu6",
                                     depthwise_regularizer=L.regularizers.L2(0.01)),
            L.layers.SeparableConv2D(3, 3, pointwise_regularizer=L.regularizers.L2(0.02),
                                     depthwise_constraint=L.constraints.MaxNorm(2.0),
                                     pointwise_initializer="lecun_normal"),
            L.layers.Conv2DTranspose(2, 2, strides=3, kernel_regularizer=L.regularizers.L1(0.01)),
            L.layers.Flatten(), L.layers.Dense(3, activation="softmax")]


case("conv_variants", conv_variants, shape=(10, 10, 2))
case("conv_variants_options", conv_variants_options, shape=(7, 7, 3))

only = os.environ.get("COMPAT_ONLY")
if only:
    CASES = [c for c in CASES if only in c.name]


# --- Keras' side -----------------------------------------------------------------------------

def predict(m, x):
    return np.asarray(m(x, training=False), dtype=np.float32)


def write(name, a):
    np.ascontiguousarray(a, dtype="<f4").tofile(os.path.join(OUT, name))


def read(name, shape):
    return np.fromfile(os.path.join(OUT, name), dtype="<f4").reshape(shape)


def short(e):
    s = f"{type(e).__name__}: {e}" if isinstance(e, BaseException) else str(e)
    s = s.replace(OUT + os.sep, "")
    s = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", s).split())
    return s if len(s) <= 240 else s[:237] + "..."


def data(c, i):
    """Fixed inputs and targets: Keras' form, and the f32 form convnet reads."""
    rng = np.random.default_rng(100 + i)
    x = rng.uniform(-1, 1, (N, *c.shape)).astype(np.float32)
    labels = np.arange(N) * 2 % 3
    if c.target == "onehot":
        y = np.eye(3, dtype=np.float32)[labels]
        return x, y, y
    if c.target == "sparse":
        return x, labels.astype(np.int32), labels.astype(np.float32)
    y = (labels % 2).astype(np.float32).reshape(N, 1)
    return x, y, y


def build(c, L):
    m = L.Sequential([L.Input(c.shape), *c.layers(L)])
    if c.compile:
        m.compile(**c.compile(L))
        m.run_eagerly = True  # a few tiny steps: tracing would cost more than running
    return m


def configs(m):
    """What of a model's config must survive a trip through convnet: each layer's config
    (names, activations, initializers, constraints, trainable flags, ...) and the optimizer's
    (its name aside: Keras writes `adam` or `Adam` as it likes)."""
    opt = getattr(m, "optimizer", None)
    opt = {k: v for k, v in opt.get_config().items() if k != "name"} if opt is not None else None
    return {"layers": [dict(cls=type(l).__name__, **l.get_config()) for l in m.layers], "optimizer": opt}


def first_difference(want, got, path=""):
    """Where `got` differs from `want` (floats within 1e-6 relative: convnet keeps f32), or None."""
    r = lambda v: (lambda s: s if len(s) <= 100 else s[:97] + "...")(repr(v))
    if isinstance(want, dict) and isinstance(got, dict):
        for k in list(want) + [k for k in got if k not in want]:
            if k not in want or k not in got:
                return f"{path}.{k}: {r(want.get(k, '(none)'))} vs {r(got.get(k, '(none)'))}"
            d = first_difference(want[k], got[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(want, (list, tuple)) and isinstance(got, (list, tuple)) and len(want) == len(got):
        return next(filter(None, (first_difference(a, b, f"{path}[{i}]") for i, (a, b) in enumerate(zip(want, got)))), None)
    if isinstance(want, (int, float, np.number)) and isinstance(got, (int, float, np.number)) \
            and not isinstance(want, bool) and not isinstance(got, bool):
        return None if abs(float(want) - float(got)) <= 1e-6 * max(abs(float(want)), 1e-30) else f"{path}: {r(want)} vs {r(got)}"
    return None if want == got else f"{path}: {r(want)} vs {r(got)}"


def keras_reload(L, path, x, y, step):
    """The configs of the model Keras loads from `path` and, with `step`, the predictions after
    Keras' next training step from the state saved there."""
    m = L.models.load_model(path)
    cfg = configs(m)
    if not step:
        return cfg, None
    m.run_eagerly = True
    m.train_on_batch(x, y)
    return cfg, predict(m, x)


# refs[case][file]: Keras' predictions, its next step's (or None), the configs of the model it
# reloads from the file, and the library that wrote it ("k3", "tfk"). rows: the results.
refs, rows, manifest = {}, [], []
t = time.time()
for i, c in enumerate(CASES):
    x, y, y32 = data(c, i)
    write(f"{c.name}_x.bin", x)
    write(f"{c.name}_y.bin", y32)
    refs[c.name] = {}
    if c.keras_cannot:
        rows.append((c.name, "-", "-", None, None, f"n/a: {c.keras_cannot}"))
        continue
    for L, tag in [(keras, "k3"), (tf_keras, "tfk")]:
        files = ["keras", "h5"] if tag == "k3" else ["h5"]
        if tag == "tfk" and c.tfk:
            rows.append((c.name, "tfk.h5", "-", None, None, f"n/a: {c.tfk}"))
            continue
        try:
            m = build(c, L)
            for _ in range(STEPS if c.compile else 0):
                m.train_on_batch(x, y)
            pred = predict(m, x)
            for ext in files:
                m.save(os.path.join(OUT, f"{c.name}.{tag}.{ext}"))
            cfg, nxt = keras_reload(L, os.path.join(OUT, f"{c.name}.{tag}.{files[0]}"), x, y,
                                    c.compile and c.deterministic)
        except Exception as e:
            rows.append((c.name, f"{tag}.*", "keras", None, None, f"FAILED: Keras could not build, train or save it: {short(e)}"))
            continue
        for ext in files:
            fid = f"{c.name}.{tag}.{ext}"
            refs[c.name][fid] = dict(pred=pred, next=nxt, config=cfg, family=tag)
            manifest.append(dict(id=fid, file=fid, x=f"{c.name}_x.bin", x_shape=list(x.shape),
                                 y=f"{c.name}_y.bin" if c.compile else None, y_shape=list(y32.shape)))
keras_seconds = time.time() - t
with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"files": manifest}, f, indent=1)

# --- convnet's side --------------------------------------------------------------------------

t = time.time()
r = subprocess.run(["cargo", "test", "--release", "-q", "-p", "convnet", "--test", "keras_compat", "--", "--ignored"],
                   env={**os.environ, "CONVNET_COMPAT_DIR": OUT})
if r.returncode != 0:
    print(f"convnet's side of the compatibility test failed to run (status {r.returncode})")
    sys.exit(1)
convnet_seconds = time.time() - t
with open(os.path.join(OUT, "convnet.json")) as f:
    report = json.load(f)

# --- The comparisons -------------------------------------------------------------------------

def diff(a, b):
    if a.shape != b.shape:
        raise ValueError(f"shape {a.shape} vs {b.shape}")
    return float(np.abs(a.astype(np.float64) - b).max())


def verdict(problems, note=""):
    note = f" ({note})" if note else ""
    return ("FAILED: " + "; ".join(problems) + note) if problems else ("ok" + note)


t = time.time()
by_name = {c.name: (i, c) for i, c in enumerate(CASES)}
for entry in manifest:
    fid = entry["id"]
    name, src = fid.split(".", 1)
    i, c = by_name[name]
    x, y, _ = data(c, i)
    ref = refs[name][fid]
    rep = report.get(fid, {"error": "no report"})
    design = by_design(name, src, "convnet")

    # keras -> convnet
    problems, pd, sd = [], None, None
    if rep.get("error") or rep.get("load"):
        problems.append(short(f"load: {rep.get('error') or rep.get('load')}"))
    else:
        if rep.get("predict"):
            problems.append(f"predict: {rep['predict']}")
        else:
            try:
                pd = diff(read(f"{fid}.cn_pred.bin", ref["pred"].shape), ref["pred"])
                if pd > PRED_TOL:
                    problems.append(f"predictions differ by {pd:.2e}")
            except ValueError as e:
                problems.append(f"predictions: {e}")
        if c.compile and rep.get("train"):
            problems.append(f"train: {rep['train']}")
        elif ref["next"] is not None:
            sd = diff(read(f"{fid}.cn_next.bin", ref["next"].shape), ref["next"])
            if sd > STEP_TOL:
                problems.append(f"next step differs by {sd:.2e}")
        for ext in ["keras", "h5"]:
            if rep.get(f"save_{ext}"):
                problems.append(f"save .{ext}: {rep[f'save_{ext}']}")
    note = "; ".join(f"warning: {w}" for w in rep.get("warnings") or [])
    if c.quiet and note:
        problems.append("warned about a file it should read as is")
    if not c.deterministic:
        note = "; ".join(filter(None, [note, "dropout: no step compared"]))
    if design:
        rows.append((name, src, "convnet", pd, sd, f"n/a (by design): {design}"))
    else:
        rows.append((name, src, "convnet", pd, sd, verdict(problems, note)))

    # convnet -> Keras: convnet's files hold the state after its step (or as loaded).
    trained = c.compile and "train" in rep and not rep["train"]
    saved_pred = f"{fid}.cn_next.bin" if trained else f"{fid}.cn_pred.bin"
    for reader, L, ext, steps in [("keras3 .keras", keras, "keras", True), ("keras3 .h5", keras, "h5", False),
                                  ("tf_keras .h5", tf_keras, "h5", True)]:
        design = by_design(name, src, reader)
        if L is tf_keras and c.tfk:
            rows.append((name, src, reader, None, None, f"n/a: {c.tfk}"))
            continue
        path = os.path.join(OUT, f"{fid}.cn.{ext}")
        if not os.path.exists(path) or not os.path.exists(os.path.join(OUT, saved_pred)):
            why = "convnet could not load the Keras file" if rep.get("load") or rep.get("error") else "convnet wrote no file"
            rows.append((name, src, reader, None, None, f"n/a (by design): {design}" if design else f"FAILED: not run: {why}"))
            continue
        problems, pd, sd = [], None, None
        try:
            m = L.models.load_model(path)
            if (L is keras) == (ref["family"] == "k3"):
                want, got = ref["config"], configs(m)
                if not steps:  # see the docstring: Keras 3 misreads a tf_keras-dialect optimizer
                    want, got = want["layers"], got["layers"]
                d = first_difference(want, got, "" if steps else ".layers")
                if d:
                    problems.append(f"config differs at {d}")
            want = read(saved_pred, ref["pred"].shape)
            pd = diff(predict(m, x), want)
            if pd > PRED_TOL:
                problems.append(f"predictions differ by {pd:.2e}")
            if steps and trained and c.deterministic and rep.get("train2") is None:
                if not getattr(m, "optimizer", None) or not getattr(m, "compiled", getattr(m, "_is_compiled", False)):
                    problems.append("loaded uncompiled")
                else:
                    iters = int(m.optimizer.iterations.numpy())
                    if iters != STEPS + 1:
                        problems.append(f"optimizer.iterations is {iters}, not {STEPS + 1}")
                    m.run_eagerly = True
                    m.train_on_batch(x, y)
                    sd = diff(predict(m, x), read(f"{fid}.cn_next2.bin", want.shape))
                    if sd > STEP_TOL:
                        problems.append(f"next step differs by {sd:.2e}")
        except Exception as e:
            problems.append(short(e))
        rows.append((name, src, reader, pd, sd, f"n/a (by design): {design}" if design else verdict(problems)))
check_seconds = time.time() - t

# --- The report ------------------------------------------------------------------------------

fmt = lambda v: f"{v:10.2e}" if v is not None else f"{'-':>10}"
print(f"keras {keras.__version__}, tf_keras {tf_keras.__version__}; {len(CASES)} models; files in {OUT}")
print("source: the Keras file (k3 = Keras 3, tfk = tf_keras); reader: convnet reads the Keras file, or")
print(f"Keras reads the file convnet saved from it. predict: max |diff| (<= {PRED_TOL:g}); step: max |diff|")
print(f"after one more training step (<= {STEP_TOL:g}).")
print(f"{'case':40} {'source':9} {'reader':14} {'predict':>10} {'step':>10}  result")
order = {c.name: i for i, c in enumerate(CASES)}
rows.sort(key=lambda r: order[r[0]])  # stable: within a case, in the order the checks ran
for name, src, reader, pd, sd, v in rows:
    print(f"{name:40} {src:9} {reader:14} {fmt(pd)} {fmt(sd)}  {v}")
failed = [r for r in rows if r[5].startswith("FAILED")]
passed = sum(r[5].startswith("ok") for r in rows)
if failed:
    print("\ncases with failures (failed rows of all rows):")
    for c in CASES:
        mine = [r for r in rows if r[0] == c.name]
        bad = sum(r[5].startswith("FAILED") for r in mine)
        if bad:
            print(f"  {c.name:40} {bad:2} of {len(mine)}")
print(f"\n{passed} ok, {len(failed)} failed, {len(rows) - passed - len(failed)} n/a; "
      f"Keras {keras_seconds:.0f} s, convnet {convnet_seconds:.0f} s, checks {check_seconds:.0f} s, "
      f"total {time.time() - START:.0f} s")
if not failed and not os.environ.get("CONVNET_COMPAT_DIR"):
    shutil.rmtree(OUT, ignore_errors=True)  # kept after a failure, to look into
sys.exit(1 if failed else 0)
