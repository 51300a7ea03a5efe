"""LeNet-5 (the lecture's architecture) on the full Fashion-MNIST in PyTorch, CPU, eager:
Adam (lr 1e-3), batch 128, shuffled, threads = cores. Prints seconds per epoch (training
only, and with the test-set evaluation) and the test accuracy after each epoch.

    python pytorch_lenet_fashion.py [--epochs 10] [--data /usr/share/datasets/fashion-mnist]
"""
import argparse, gzip, os, struct, time
import numpy as np
import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument("--epochs", type=int, default=10)
p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
p.add_argument("--threads", type=int, default=os.cpu_count())
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(42)

def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)

d = a.data
xtr = torch.tensor(idx(f"{d}/train-images-idx3-ubyte.gz"), dtype=torch.float32).div_(255).unsqueeze(1)
ytr = torch.tensor(idx(f"{d}/train-labels-idx1-ubyte.gz"), dtype=torch.long)
xte = torch.tensor(idx(f"{d}/t10k-images-idx3-ubyte.gz"), dtype=torch.float32).div_(255).unsqueeze(1)
yte = torch.tensor(idx(f"{d}/t10k-labels-idx1-ubyte.gz"), dtype=torch.long)

model = nn.Sequential(
    nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(16, 120, 5), nn.ReLU(), nn.Flatten(),
    nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))
# Keras' initialisation (glorot_uniform kernels, zero biases), so both start alike.
for m in model.modules():
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(m.weight); nn.init.zeros_(m.bias)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
loss_fn = nn.CrossEntropyLoss()
n = len(xtr)
for epoch in range(a.epochs):
    t0 = time.perf_counter()
    model.train()
    perm = torch.randperm(n)
    for i in range(0, n, 128):
        idx_b = perm[i:i + 128]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xtr[idx_b]), ytr[idx_b])
        loss.backward()
        opt.step()
    t1 = time.perf_counter()
    model.eval()
    with torch.no_grad():
        correct = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item() for i in range(0, len(xte), 1000))
    t2 = time.perf_counter()
    print(f"epoch {epoch + 1}: train {t1 - t0:.2f}s, with evaluation {t2 - t0:.2f}s, test accuracy {correct / len(xte):.4f}", flush=True)
