#!/usr/bin/env python3
"""The PyTorch peer for `make bench-attention`: causal multi-head attention, B=1, H heads, head dim D, fp32.
    explicit: att = (q @ k^T) / sqrt(D), masked_fill(-inf), softmax, @ v   (what a tutorial writes)
    sdpa:     torch.nn.functional.scaled_dot_product_attention(is_causal=True), if this torch has it (>= 2.0)
Serves one command per line: "IMPL T MODE" with MODE fwd|fwdbwd -> "milliseconds peak_extra_MiB"; the memory is
the peak resident-set growth of a fresh interpreter that runs the same call once."""
import math
import os
import subprocess
import sys
import time

import torch

H, D = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(2)
HAVE_SDPA = hasattr(torch.nn.functional, "scaled_dot_product_attention")


def run(impl, T, mode):
    q, k, v = (torch.randn(1, H, T, D, requires_grad=(mode == "fwdbwd")) for _ in range(3))
    t0 = time.perf_counter()
    if impl == "sdpa":
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        y = att.masked_fill(~mask, float("-inf")).softmax(dim=-1) @ v
    if mode == "fwdbwd":
        y.sum().backward()
    return (time.perf_counter() - t0) * 1e3


def peak_mib(impl, T, mode):
    """in a fresh interpreter: forking this one after OpenMP's threads started would deadlock the child"""
    out = subprocess.run([sys.executable, __file__, str(H), str(D), "mem", impl, str(T), mode], capture_output=True,
                         text=True)
    try:
        return float(out.stdout.strip().split()[-1])
    except (ValueError, IndexError):
        sys.stderr.write(f"torch_attention: memory probe failed: {out.stderr[-300:]}\n")
        return float("nan")


def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


if len(sys.argv) == 7 and sys.argv[3] == "mem":
    # ru_maxrss survives fork and exec (it would report the parent's peak), so read the address space's own
    # high-water mark, reset to the current size just before the call
    run(sys.argv[4], 16, sys.argv[6])  # load torch's kernels before the baseline
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = status_kib("VmRSS")
    run(sys.argv[4], int(sys.argv[5]), sys.argv[6])
    print(f"{(status_kib('VmHWM') - base) / 1024:.1f}")
    sys.exit(0)


print(f"ready torch {torch.__version__} threads {torch.get_num_threads()} sdpa {'yes' if HAVE_SDPA else 'no'}",
      flush=True)
for line in sys.stdin:
    parts = line.split()
    if not parts or parts[0] == "quit":
        break
    impl, T, mode = parts[0], int(parts[1]), parts[2]
    if impl == "sdpa" and not HAVE_SDPA:
        print("nan nan", flush=True)
        continue
    ms = run(impl, T, mode)
    mem = peak_mib(impl, T, mode) if len(parts) > 3 and parts[3] == "mem" else float("nan")
    print(f"{ms:.3f} {mem:.1f}", flush=True)
