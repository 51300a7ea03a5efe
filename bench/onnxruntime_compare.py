"""convnet's inference against ONNX Runtime on the same network: `convnet export` writes the
preset as ONNX, ONNX Runtime runs it with as many intra-op threads as cores, and both are timed
at the same batch size, alternating round by round (this machine's speed drifts); prints the
medians and the ratio.

    target/keras-venv/bin/python bench/onnxruntime_compare.py [--rounds 3] [--batch 1000] [MODELS...]

Needs a release build (`cargo build --release`) and `onnxruntime` (tests/keras_check/run.sh
installs it in target/keras-venv).
"""
import argparse, json, os, statistics, subprocess, tempfile, time
import numpy as np
import onnxruntime as ort

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
p = argparse.ArgumentParser()
p.add_argument("models", nargs="*", default=["mobilenet-v2"])
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--batch", type=int, default=1000)
p.add_argument("--seconds", type=float, default=3.0)
p.add_argument("--convnet", default=os.path.join(root, "target", "release", "convnet"))
a = p.parse_args()
threads = os.cpu_count()


def ort_rate(path, batch):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    inp = s.get_inputs()[0]
    shape = [batch] + [int(d) for d in inp.shape[1:]]
    x = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    s.run(None, {inp.name: x})  # warm-up
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < a.seconds / 2:
        s.run(None, {inp.name: x})
        n += 1
    return n * batch / (time.perf_counter() - t0)


def convnet_rate(model):
    out = subprocess.run([a.convnet, "bench", "--json", "--seconds", str(a.seconds), "--infer-batch", str(a.batch),
                          model], capture_output=True, text=True, check=True).stdout
    return json.loads(out[out.index("{"):])["results"][0]["infer_samples_per_s"]


tmp = tempfile.mkdtemp(prefix="convnet-ort-")
print(f"onnxruntime {ort.__version__}, {threads} threads, batch {a.batch}, medians of {a.rounds} rounds")
for m in a.models:
    path = os.path.join(tmp, f"{m}.onnx")
    subprocess.run([a.convnet, "export", m, path], check=True, capture_output=True)
    cn, rt = [], []
    for _ in range(a.rounds):
        cn.append(convnet_rate(m))
        rt.append(ort_rate(path, a.batch))
    c, r = statistics.median(cn), statistics.median(rt)
    print(f"{m:<14} convnet {c:>9.0f}/s  onnxruntime {r:>9.0f}/s  ratio {c / r:.2f}x  "
          f"(rounds: convnet {[round(v) for v in cn]}, onnxruntime {[round(v) for v in rt]})")
