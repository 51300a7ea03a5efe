#!/usr/bin/env bash
# The fighting-overfitting experiment: mnist-cnn on 10,000 Fashion-MNIST training images, with
# no regulariser, with dropout + L2, and with dropout + L2 + augmentation. Writes each run's
# history and charts under target/regularization/, and prints the seconds per epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p convnet-cli
out=target/regularization
mkdir -p "$out"
epochs=${EPOCHS:-15}
common=(--dataset fashion-mnist --limit 10000 --epochs "$epochs" --batch-size 128 --verbose 2)
run() {
  local name=$1; shift
  target/release/convnet train "$@" "${common[@]}" --history "$out/$name.csv" --plot "$out/$name" --json > "$out/$name.json"
  python3 -c "import json,sys; d=json.load(open('$out/$name.json')); s=d['seconds_per_epoch']; print(f\"{sys.argv[1]:<28} test acc {d['test_accuracy']:.4f}  train acc {d['accuracy']:.4f}  val loss {d['val_loss']:.4f}  train loss {d['loss']:.4f}  s/epoch {sum(s)/len(s):.2f}\")" "$name"
}
run plain examples/models/mnist_cnn_plain.toml
run dropout_l2 examples/models/mnist_cnn_regularized.toml
run dropout_l2_augment examples/models/mnist_cnn_regularized.toml --augment rotation=10,width_shift=0.1,height_shift=0.1,zoom=0.1,horizontal_flip
