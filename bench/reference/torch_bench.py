"""PyTorch (CPU, eager) reference: the lecture's networks, Adam + cross-entropy, synthetic
data, batch 128, threads = cores; training and inference samples/s and peak memory."""
import os
import numpy as np
import common

args = common.options("pytorch")
import torch
import torch.nn as nn
from models import torch_model

torch.set_num_threads(args.threads)
torch.manual_seed(1)
results = []
for name in args.models:
    common.reset_peak()
    shape, model = torch_model(name)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(torch.rand(args.batch_size, *shape), torch.randint(0, 10, (args.batch_size,))) for _ in range(4)]
    state = {"i": 0}

    def train_step():
        x, y = batches[state["i"] % 4]
        state["i"] += 1
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    model.train()
    train = common.timed(train_step, args.seconds) * args.batch_size
    train_peak = common.peak_mib()
    common.reset_peak()
    model.eval()
    xi = torch.rand(args.infer_batch, *shape)

    def infer_step():
        with torch.no_grad():
            model(xi)

    infer = common.timed(infer_step, args.seconds / 2, min_steps=3, warmup=1) * args.infer_batch
    results.append({"model": name, "train_samples_per_s": train, "infer_samples_per_s": infer,
                    "peak_rss_mib": train_peak, "infer_peak_rss_mib": common.peak_mib()})
common.report(f"pytorch {torch.__version__}", args, results)
