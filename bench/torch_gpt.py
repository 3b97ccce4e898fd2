#!/usr/bin/env python3
"""The PyTorch peer for gradlab's GPT benchmarks: nanoGPT's model (nn.Linear, nn.Embedding, tied lm_head),
fp32, torch.set_num_threads(THREADS).

  torch_gpt.py recipe DATA          train nanoGPT's CPU shakespeare-char recipe, print val loss and time
  torch_gpt.py serve CONFIG... [cuda]  benchmark server (on the GPU with `cuda`, timed after synchronising): reads commands on stdin, one per line, answers one line:
        step            -> milliseconds of one training step (forward + backward + AdamW)
        gen N           -> milliseconds to generate N tokens at batch 1 with a KV cache (after a 1-token prompt)
        quit
     CONFIG: vocab n_layer n_head n_embd block batch
Used by bench/bench_train.c (make bench-train), which runs our step and this one alternately.
"""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, H, bias):
        super().__init__()
        self.H = H
        self.ln_1 = nn.LayerNorm(C, elementwise_affine=True)
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.c_proj = nn.Linear(C, C, bias=bias)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.mlp_proj = nn.Linear(4 * C, C, bias=bias)
        if not bias:  # nanoGPT's LayerNorm(bias=False)
            self.ln_1.bias = None
            self.ln_2.bias = None

    def attend(self, x, cache=None):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = [t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v)]
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        if cache is None or T > 1:
            mask = torch.tril(torch.ones(T, k.size(2), dtype=torch.bool, device=x.device), diagonal=k.size(2) - T)
            att = att.masked_fill(~mask, float("-inf"))
        y = att.softmax(dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x, cache=None):
        x = x + self.attend(x, cache)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, V, L, H, C, T, bias=True):
        super().__init__()
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(T, C)
        self.h = nn.ModuleList([Block(C, H, bias) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)
        if not bias:
            self.ln_f.bias = None
        self.lm_head = nn.Linear(C, V, bias=False)
        self.wte.weight = self.lm_head.weight
        for name, p in self.named_parameters():  # GPT-2 init, as nanoGPT
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L) if name.endswith(("c_proj.weight", "mlp_proj.weight")) else 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets=None, caches=None, pos0=0):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(pos0, pos0 + T, device=idx.device))
        for i, blk in enumerate(self.h):
            x = blk(x, None if caches is None else caches[i])
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    def optimizer(self, lr, wd, betas):
        decay = [p for p in self.parameters() if p.dim() >= 2]
        other = [p for p in self.parameters() if p.dim() < 2]
        return torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": other, "weight_decay": 0.0}],
                                 lr=lr, betas=betas)


def recipe(path):
    """nanoGPT's CPU recipe for tiny shakespeare (char): 4 layers, 4 heads, 128 dims, block 64, batch 12,
    2000 iters, lr 1e-3, 100 warmup, cosine to 1e-4 at 2000, betas (0.9, 0.99), wd 0.1, clip 1, dropout 0."""
    torch.manual_seed(1337)
    text = open(path, encoding="utf-8").read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text])
    n = int(0.9 * len(data))
    train, val = data[:n], data[n:]
    B, T, iters = 12, 64, 2000
    model = GPT(len(chars), 4, 4, 128, T, bias=False)
    opt = model.optimizer(1e-3, 0.1, (0.9, 0.99))

    def batch(d):
        ix = torch.randint(len(d) - T, (B,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])

    def lr_at(it):
        if it < 100:
            return 1e-3 * (it + 1) / 100
        ratio = (it - 100) / (iters - 100)
        return 1e-4 + 0.5 * (1 + math.cos(math.pi * ratio)) * (1e-3 - 1e-4)

    t0 = time.time()
    for it in range(iters):
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        x, y = batch(train)
        loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if it % 250 == 0:
            print(f"iter {it} loss {loss.item():.4f} {time.time() - t0:.1f}s", flush=True)
    elapsed = time.time() - t0
    model.eval()
    with torch.no_grad():
        losses = [model(*batch(val)).item() for _ in range(200)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: {iters} iters in {elapsed:.1f} s "
          f"({iters * B * T / elapsed:.0f} tokens/s); val loss {sum(losses) / len(losses):.4f} over 200 batches")


def serve(V, L, H, C, T, B, device="cpu"):
    torch.manual_seed(0)
    if device == "cuda":  # fp32 throughout, as ours: no TF32 tensor-core shortcuts in the matmuls
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    model = GPT(V, L, H, C, T).to(device)
    opt = model.optimizer(1e-4, 0.1, (0.9, 0.95))
    x = torch.randint(0, V, (B, T), device=device)
    y = torch.randint(0, V, (B, T), device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    where = torch.cuda.get_device_name() if device == "cuda" else f"threads {torch.get_num_threads()}"
    print(f"ready torch {torch.__version__} {where}", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        sync()
        t0 = time.perf_counter()
        if cmd[0] == "step":
            loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        elif cmd[0] == "gen":
            n = int(cmd[1])
            with torch.no_grad():
                caches = [[None, None] for _ in range(L)]
                tok = torch.zeros((1, 1), dtype=torch.long, device=device)
                for pos in range(n):
                    logits = model(tok, caches=caches, pos0=pos)
                    tok = logits[:, -1].argmax(-1, keepdim=True)
        sync()
        print(f"{(time.perf_counter() - t0) * 1000:.3f}", flush=True)


if __name__ == "__main__":
    threads = 2
    torch.set_num_threads(threads)
    if len(sys.argv) >= 3 and sys.argv[1] == "recipe":
        recipe(sys.argv[2])
    elif len(sys.argv) in (8, 9) and sys.argv[1] == "serve":
        serve(*map(int, sys.argv[2:8]), *sys.argv[8:])
    else:
        sys.exit(__doc__)
