"""Runs `convnet bench` and the PyTorch, Keras (and, with --burn, burn) reference benchmarks in
turn, several rounds, and prints each one's median with the ratios convnet / reference.

    bench/compare.sh [--rounds 3] [--seconds 3] [--no-burn] [MODELS...]
"""
import argparse, json, os, statistics, subprocess, sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
p = argparse.ArgumentParser()
p.add_argument("models", nargs="*", default=["lenet5", "mnist-cnn", "cifar10-cnn"])
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--seconds", type=float, default=3.0)
p.add_argument("--python", default=sys.executable)
p.add_argument("--convnet", default=os.path.join(root, "target", "release", "convnet"))
p.add_argument("--burn", help="the burn reference binary (bench/reference/burn); omitted: no burn column")
a = p.parse_args()
# The references run from bench/reference: make paths given relative to here absolute.
if os.sep in a.python:
    a.python = os.path.abspath(a.python)

env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
commands = {
    "convnet": [os.path.abspath(a.convnet), "bench", "--json", "--seconds", str(a.seconds), *a.models],
    "pytorch": [a.python, os.path.join(here, "reference", "torch_bench.py"), "--json", "--seconds", str(a.seconds), *a.models],
    "keras": [a.python, os.path.join(here, "reference", "keras_bench.py"), "--json", "--seconds", str(a.seconds), *a.models],
}
if a.burn:
    commands["burn"] = [os.path.abspath(a.burn), "--json", "--seconds", str(a.seconds), *a.models]
runs = {k: [] for k in commands}
versions = {}
for r in range(a.rounds):
    for name, cmd in commands.items():
        print(f"round {r + 1}/{a.rounds}: {name} ...", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=os.path.join(here, "reference"))
        if out.returncode != 0:
            sys.exit(f"{name} failed:\n{out.stderr[-2000:]}")
        text = out.stdout[out.stdout.index("{"):]
        data = json.loads(text)
        versions[name] = data.get("framework", name)
        runs[name].append({r_["model"]: r_ for r_ in data["results"]})

metrics = [("train_samples_per_s", "train samples/s"), ("infer_samples_per_s", "infer samples/s"),
           ("peak_rss_mib", "train peak MiB")]
med = {fw: {m: {k: statistics.median(run[m][k] for run in runs[fw]) for k, _ in metrics} for m in a.models} for fw in runs}
print(f"medians of {a.rounds} rounds; " + "; ".join(f"{k}: {v}" for k, v in versions.items()))
refs = [fw for fw in commands if fw != "convnet"]
for key, label in metrics:
    print(f"\n{label}")
    head = f"{'model':<14} {'convnet':>10}" + "".join(f" {fw:>10}" for fw in refs)
    if key != "peak_rss_mib":
        head += "".join(f" {'vs ' + fw:>11}" for fw in refs) + f" {'vs best':>8}"
    print(head)
    for m in a.models:
        c = med["convnet"][m][key]
        line = f"{m:<14} {c:>10.0f}" + "".join(f" {med[fw][m][key]:>10.0f}" for fw in refs)
        if key != "peak_rss_mib":
            best = max(med[fw][m][key] for fw in refs)
            line += "".join(f" {c / med[fw][m][key]:>10.2f}x" for fw in refs) + f" {c / best:>7.2f}x"
        print(line)
print(json.dumps({"medians": med, "versions": versions}), file=open(os.path.join(root, "target", "bench-compare.json"), "w"))
