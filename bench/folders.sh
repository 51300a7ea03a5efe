#!/bin/bash
# Picture folders against IDX files on Fashion-MNIST: accuracy, seconds per epoch (validation
# included) and peak memory, LeNet-5, 5 epochs, in one run. Needs a release build and
# Fashion-MNIST's IDX files (Debian: apt-get install dataset-fashion-mnist).
set -e
IDX=${IDX:-/usr/share/datasets/fashion-mnist}
OUT=${OUT:-/tmp/convnet-folders-bench}
B=${B:-$(dirname "$0")/../target/release/convnet}
python3 "$(dirname "$0")/idx_to_png_folders.py" "$IDX" "$OUT/fm10k" --train 10000 --test 10000
python3 "$(dirname "$0")/idx_to_png_folders.py" "$IDX" "$OUT/fm60k" --train 60000 --test 10000
run() {
    name=$1; shift
    /usr/bin/time -f "%M" -o "$OUT/$name.mem" "$@" --json > "$OUT/$name.json" 2> "$OUT/$name.err"
    python3 - "$OUT/$name.json" "$(tail -1 "$OUT/$name.mem")" "$name" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); s = d["seconds_per_epoch"]; steady = sum(s[1:]) / max(1, len(s) - 1)
print(f"{sys.argv[3]:<16} test accuracy {d['test_accuracy']:.4f}  epochs {[round(v, 2) for v in s]}  "
      f"steady {steady:.3f} s  peak {int(sys.argv[2]) / 1024:.0f} MiB")
PY
}
run idx            "$B" train lenet5 --dataset fashion-mnist --data-dir "$IDX" --limit 10000 --epochs 5 --seed 1
run folder         "$B" train lenet5 --data-dir "$OUT/fm10k" --epochs 5 --seed 1
run folder_nocache "$B" train lenet5 --data-dir "$OUT/fm10k" --epochs 5 --seed 1 --image-cache 0
run 60k_nocache    "$B" train lenet5 --data-dir "$OUT/fm60k" --epochs 1 --seed 1 --image-cache 0
run 60k_cache      "$B" train lenet5 --data-dir "$OUT/fm60k" --epochs 1 --seed 1
