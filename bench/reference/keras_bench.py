"""Keras 3 / TensorFlow (CPU) reference: the lecture's networks compiled with Adam and
categorical cross-entropy, synthetic data, batch 128, threads = cores. Training is timed with
`train_on_batch` after warm-up (the steady state; `fit`'s first epoch includes tracing), and
inference with `predict_on_batch`."""
import os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np
import common

args = common.options("keras")
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(args.threads)
tf.config.threading.set_inter_op_parallelism_threads(args.threads)
import keras
from models import keras_model

keras.utils.set_random_seed(1)
results = []
for name in args.models:
    common.reset_peak()
    shape, model = keras_model(name)
    model.compile(optimizer=keras.optimizers.Adam(), loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(1)
    batches = [(rng.random((args.batch_size, *shape), dtype=np.float32),
                keras.utils.to_categorical(rng.integers(0, 10, args.batch_size), 10)) for _ in range(4)]
    state = {"i": 0}

    def train_step():
        x, y = batches[state["i"] % 4]
        state["i"] += 1
        model.train_on_batch(x, y)

    train = common.timed(train_step, args.seconds) * args.batch_size
    train_peak = common.peak_mib()
    common.reset_peak()
    xi = rng.random((args.infer_batch, *shape), dtype=np.float32)
    infer = common.timed(lambda: model.predict_on_batch(xi), args.seconds / 2, min_steps=3, warmup=1) * args.infer_batch
    results.append({"model": name, "train_samples_per_s": train, "infer_samples_per_s": infer,
                    "peak_rss_mib": train_peak, "infer_peak_rss_mib": common.peak_mib()})
common.report(f"keras {keras.__version__} / tensorflow {tf.__version__}", args, results)
