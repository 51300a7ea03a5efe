#!/bin/bash
# Picture folders against IDX files on Fashion-MNIST, LeNet-5, 5 epochs: test accuracy, steady
# epoch time (epochs 2–5, validation included) and peak memory, with the picture cache on, off
# (with and without prefetch), and 60,000 pictures with the cache off. Runs are interleaved
# (round after round of every configuration) and times reported as medians, as other work on the
# machine makes single timings drift. Needs a release build and Fashion-MNIST's IDX files
# (Debian: apt-get install dataset-fashion-mnist).
#
# The folder path trains on the same images as the IDX path but in another order: the file list
# is shuffled with --seed where IDX keeps the file's order, and every epoch's shuffle permutes
# that. Given the same order the two train bit for bit alike (tests/image_folders.rs; IDX files
# rewritten in the folder's order give the folder's history to the last digit), so a gap for one
# seed is the spread that the sample order alone gives: compare the mean over seeds.
#
#   SEEDS="1 2 3" ROUNDS=3 bench/folders.sh
set -e
IDX=${IDX:-/usr/share/datasets/fashion-mnist}
OUT=${OUT:-/tmp/convnet-folders-bench}
B=${B:-$(dirname "$0")/../target/release/convnet}
SEEDS=${SEEDS:-1 2 3}
ROUNDS=${ROUNDS:-3}
mkdir -p "$OUT"
[ -d "$OUT/fm10k" ] || python3 "$(dirname "$0")/idx_to_png_folders.py" "$IDX" "$OUT/fm10k" --train 10000 --test 10000
[ -d "$OUT/fm60k" ] || python3 "$(dirname "$0")/idx_to_png_folders.py" "$IDX" "$OUT/fm60k" --train 60000 --test 10000
echo "$(nproc) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
run() {
    name=$1; shift
    /usr/bin/time -f "%M" -o "$OUT/$name.mem" "$@" --json > "$OUT/$name.json" 2> "$OUT/$name.err"
}
for r in $(seq "$ROUNDS"); do
    for s in $SEEDS; do
        # Accuracy for every seed; timings from every round.
        run "idx_s${s}_r$r"     "$B" train lenet5 --dataset fashion-mnist --data-dir "$IDX" --limit 10000 --epochs 5 --seed "$s"
        run "cache_s${s}_r$r"   "$B" train lenet5 --data-dir "$OUT/fm10k" --epochs 5 --seed "$s"
        run "nocache_s${s}_r$r" "$B" train lenet5 --data-dir "$OUT/fm10k" --epochs 5 --seed "$s" --image-cache 0
        run "noprefetch_s${s}_r$r" "$B" train lenet5 --data-dir "$OUT/fm10k" --epochs 5 --seed "$s" --image-cache 0 --prefetch 0
    done
    run "60k_nocache_r$r"    "$B" train lenet5 --data-dir "$OUT/fm60k" --epochs 1 --seed 1 --image-cache 0
    run "60k_noprefetch_r$r" "$B" train lenet5 --data-dir "$OUT/fm60k" --epochs 1 --seed 1 --image-cache 0 --prefetch 0
    run "60k_cache_r$r"      "$B" train lenet5 --data-dir "$OUT/fm60k" --epochs 1 --seed 1
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" "$SEEDS" "$ROUNDS" <<'PY'
import json, statistics as st, sys
out, seeds, rounds = sys.argv[1], sys.argv[2].split(), int(sys.argv[3])
load = lambda n: json.load(open(f"{out}/{n}.json"))
mem = lambda n: int(open(f"{out}/{n}.mem").read().split()[-1]) / 1024
steady = lambda d: st.mean(d["seconds_per_epoch"][1:])
med = {}
print(f"{'10,000 pictures':<14} {'accuracy by seed (%)':<34} {'steady epoch, median (s)':>25} {'peak MiB':>9}")
for c in ["idx", "cache", "nocache", "noprefetch"]:
    runs = [f"{c}_s{s}_r{r}" for s in seeds for r in range(1, rounds + 1)]
    med[c] = st.median(steady(load(n)) for n in runs)
    acc = [load(f"{c}_s{s}_r1")["test_accuracy"] * 100 for s in seeds]
    print(f"{c:<14} {' '.join(f'{a:.2f}' for a in acc):<34} {med[c]:>25.3f} {max(mem(n) for n in runs):>9.0f}")
for c in ["cache", "nocache", "noprefetch"]:
    gaps = [(load(f"idx_s{s}_r1")["test_accuracy"] - load(f"{c}_s{s}_r1")["test_accuracy"]) * 100 for s in seeds]
    print(f"{c}: {med[c] / med['idx']:.3f}× the IDX steady epoch; accuracy IDX − folder by seed "
          f"{' '.join(f'{g:+.2f}' for g in gaps)}, mean {st.mean(gaps):+.2f} points")
for c in ["60k_nocache", "60k_noprefetch", "60k_cache"]:
    runs = [f"{c}_r{r}" for r in range(1, rounds + 1)]
    print(f"{c:<15} one epoch, median {st.median(load(n)['seconds_per_epoch'][0] for n in runs):.2f} s; "
          f"peak {max(mem(n) for n in runs):.0f} MiB")
PY
