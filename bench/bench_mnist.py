#!/usr/bin/env python3
"""make bench-mnist: seconds until the 784-256-128-10 MLP reaches 97% test accuracy on the 2k MNIST test split,
ours (build/lab02 --time-to 0.97) against the same model and recipe in PyTorch (2 threads): Adam 1e-3 with cosine
decay to 1% over 30 epochs, batch 64, random shifts of up to 2 pixels, test accuracy checked after every epoch.
Runs alternate (ours, PyTorch, ours, PyTorch); prints a table and writes out/bench/mnist.json."""
import gzip
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import torch

MNIST = os.path.join(os.environ.get("GRADLAB_DATA", "../shared/data"), "mnist")
TARGET, EPOCHS, BATCH, PAIRS = 0.97, 30, 64, int(os.environ.get("PAIRS", "2"))


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, n = int.from_bytes(data[0:4], "big"), int.from_bytes(data[4:8], "big")
    if magic == 2051:
        return np.frombuffer(data, np.uint8, offset=16).reshape(n, 28, 28)
    return np.frombuffer(data, np.uint8, offset=8)


def torch_time_to(target):
    torch.set_num_threads(2)
    torch.manual_seed(1)
    rng = np.random.default_rng(7)
    xtr, ytr = idx(f"{MNIST}/train-images-idx3-ubyte"), idx(f"{MNIST}/train-labels-idx1-ubyte")
    xte = torch.tensor(idx(f"{MNIST}/test-images-idx3-ubyte").reshape(-1, 784) / 255.0, dtype=torch.float32)
    yte = torch.tensor(idx(f"{MNIST}/test-labels-idx1-ubyte").astype(np.int64))
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = EPOCHS * (len(ytr) // BATCH)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    padded = np.pad(xtr, ((0, 0), (2, 2), (2, 2)))
    t0 = time.perf_counter()
    for epoch in range(EPOCHS):
        order = rng.permutation(len(ytr))
        for i0 in range(0, len(ytr) - BATCH + 1, BATCH):
            idxs = order[i0:i0 + BATCH]
            dx, dy = rng.integers(0, 5, BATCH), rng.integers(0, 5, BATCH)
            batch = np.stack([padded[k, y:y + 28, x:x + 28] for k, x, y in zip(idxs, dx, dy)])
            x = torch.tensor(batch.reshape(BATCH, 784) / 255.0, dtype=torch.float32)
            loss = torch.nn.functional.cross_entropy(model(x), torch.tensor(ytr[idxs].astype(np.int64)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            acc = (model(xte).argmax(1) == yte).float().mean().item()
        if acc >= target:
            return time.perf_counter() - t0, epoch + 1, acc
    return time.perf_counter() - t0, EPOCHS, acc


def ours_time_to(target):
    out = subprocess.run(["./build/lab02", "--time-to", str(target), "--epochs", str(EPOCHS)], capture_output=True,
                         text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")][0].split()
    return float(line[2]), int(line[4]), float(line[6])


def main():
    if not os.path.exists(f"{MNIST}/train-images-idx3-ubyte"):
        sys.exit(f"bench-mnist: {MNIST} not found (set GRADLAB_DATA)")
    rows = []
    for pair in range(PAIRS):
        o = ours_time_to(TARGET)
        t = torch_time_to(TARGET)
        rows.append((o, t))
        print(f"pair {pair + 1}: ours {o[0]:.1f} s ({o[1]} epochs, {100 * o[2]:.2f}%), "
              f"PyTorch {torch.__version__} {t[0]:.1f} s ({t[1]} epochs, {100 * t[2]:.2f}%), ratio {t[0] / o[0]:.2f}",
              flush=True)
    ratios = sorted(t[0] / o[0] for o, t in rows)
    med = ratios[len(ratios) // 2] if len(ratios) % 2 else 0.5 * (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2])
    print(f"median time-to-{100 * TARGET:.0f}% ratio PyTorch / ours: {med:.2f}")
    os.makedirs("out/bench", exist_ok=True)
    with open("out/bench/mnist.json.tmp", "w") as f:
        json.dump({"benchmark": "mnist", "target_accuracy": TARGET, "torch": torch.__version__, "median_ratio": med,
                   "pairs": [{"ours_seconds": o[0], "ours_epochs": o[1], "ours_accuracy": o[2], "torch_seconds": t[0],
                              "torch_epochs": t[1], "torch_accuracy": t[2]} for o, t in rows]}, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace("out/bench/mnist.json.tmp", "out/bench/mnist.json")
    print("wrote out/bench/mnist.json")


if __name__ == "__main__":
    main()
