"""Shared pieces of the reference benchmarks: options, timing rules, peak memory, output."""
import argparse, json, os, resource, sys, time

MODELS = ["lenet5", "mnist-cnn", "cifar10-cnn"]


def options(framework):
    p = argparse.ArgumentParser(description=f"{framework} reference benchmark (same rules as `convnet bench`)")
    p.add_argument("models", nargs="*", default=MODELS)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--infer-batch", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def timed(step, seconds, min_steps=5, warmup=3):
    """Runs `step` `warmup` times untimed, then for `seconds` (and at least `min_steps` times);
    returns calls per second."""
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    n = 0
    while n < min_steps or time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return n / (time.perf_counter() - t0)


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_mib():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report(framework, args, results):
    if args.json:
        print(json.dumps({"framework": framework, "threads": args.threads, "batch_size": args.batch_size,
                          "infer_batch": args.infer_batch, "results": results}, indent=2))
        return
    print(f"{framework}, {args.threads} threads, training batch {args.batch_size}, inference batch {args.infer_batch}")
    print(f"{'model':<14} {'train samples/s':>16} {'infer samples/s':>16} {'train peak MiB':>16} {'infer peak MiB':>16}")
    for r in results:
        print(f"{r['model']:<14} {r['train_samples_per_s']:>16.0f} {r['infer_samples_per_s']:>16.0f} "
              f"{r['peak_rss_mib']:>16.1f} {r['infer_peak_rss_mib']:>16.1f}")
    sys.stdout.flush()
