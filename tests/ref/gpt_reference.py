#!/usr/bin/env python3
"""Writes tests/ref/gpt_small.bin: a small GPT-2 built from the same weights as gradlab's models/gpt.c, run in
PyTorch (float32), with its logits, loss, every parameter's gradient and the losses of a few AdamW steps.
tests/test_gpt.c loads the file and checks gradlab against it, so `make test` needs no Python.

Regenerate:  python3 tests/ref/gpt_reference.py   (PyTorch from PyPI, or Debian's python3-torch)

File layout (little-endian):
  int32[16]  magic 0x47505452, version 1, n_layer, n_head, n_embd, block_size, vocab, padded_vocab, bias,
             B, T, n_steps, n_params, 0, 0, 0
  float32[5] AdamW lr, beta1, beta2, eps, weight_decay (decay on 2-D parameters only)
  float32    every parameter, in gradlab's canonical order and layout (linear weights [in, out])
  int32      idx[B*T], targets[B*T]
  float32    logits[B*T*vocab], loss
  float32    every parameter's gradient, same order
  float32    losses[n_steps]: the loss before AdamW step k (losses[0] == loss)
"""
import math
import os
import struct
import sys

import torch

CFG = dict(n_layer=2, n_head=4, n_embd=32, block_size=16, vocab=65, bias=1)
B, T, N_STEPS = 2, 16, 5
LR, BETA1, BETA2, EPS, WD = 1e-3, 0.9, 0.99, 1e-8, 0.1
LN_EPS = 1e-5


def padded(v):
    return (v + 63) // 64 * 64


def canonical_params(cfg):
    """(name, shape) in the order of models/gpt.c:gpt_build."""
    C, L, Vp = cfg["n_embd"], cfg["n_layer"], padded(cfg["vocab"])
    out = [("wte.weight", (Vp, C)), ("wpe.weight", (cfg["block_size"], C))]
    for l in range(L):
        for name, shape, is_bias in [("ln_1.weight", (C,), 0), ("ln_1.bias", (C,), 1),
                                     ("attn.c_attn.weight", (C, 3 * C), 0), ("attn.c_attn.bias", (3 * C,), 1),
                                     ("attn.c_proj.weight", (C, C), 0), ("attn.c_proj.bias", (C,), 1),
                                     ("ln_2.weight", (C,), 0), ("ln_2.bias", (C,), 1),
                                     ("mlp.c_fc.weight", (C, 4 * C), 0), ("mlp.c_fc.bias", (4 * C,), 1),
                                     ("mlp.c_proj.weight", (4 * C, C), 0), ("mlp.c_proj.bias", (C,), 1)]:
            if is_bias and not cfg["bias"]:
                continue
            out.append((f"h.{l}.{name}", shape))
    out.append(("ln_f.weight", (C,)))
    if cfg["bias"]:
        out.append(("ln_f.bias", (C,)))
    return out


def forward(p, idx, cfg):
    """GPT-2 forward written out in PyTorch ops: the reference for models/gpt.c:gpt_forward."""
    Bn, Tn = idx.shape
    C, H, V = cfg["n_embd"], cfg["n_head"], cfg["vocab"]
    hs = C // H
    x = p["wte.weight"][idx] + p["wpe.weight"][:Tn]
    mask = torch.tril(torch.ones(Tn, Tn, dtype=torch.bool))
    for l in range(cfg["n_layer"]):
        g = lambda n: p.get(f"h.{l}.{n}")
        h = torch.nn.functional.layer_norm(x, (C,), g("ln_1.weight"), g("ln_1.bias"), LN_EPS)
        qkv = h @ g("attn.c_attn.weight") + (g("attn.c_attn.bias") if cfg["bias"] else 0)
        q, k, v = qkv.split(C, dim=2)
        q, k, v = [t.view(Bn, Tn, H, hs).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(Bn, Tn, C)
        x = x + y @ g("attn.c_proj.weight") + (g("attn.c_proj.bias") if cfg["bias"] else 0)
        h = torch.nn.functional.layer_norm(x, (C,), g("ln_2.weight"), g("ln_2.bias"), LN_EPS)
        h = torch.nn.functional.gelu(h @ g("mlp.c_fc.weight") + (g("mlp.c_fc.bias") if cfg["bias"] else 0),
                                     approximate="tanh")
        x = x + h @ g("mlp.c_proj.weight") + (g("mlp.c_proj.bias") if cfg["bias"] else 0)
    x = torch.nn.functional.layer_norm(x, (C,), p["ln_f.weight"], p.get("ln_f.bias"), LN_EPS)
    return x @ p["wte.weight"][:V].T


def main():
    torch.manual_seed(1234)
    cfg = CFG
    V, Vp, C = cfg["vocab"], padded(cfg["vocab"]), cfg["n_embd"]
    params = {}
    for name, shape in canonical_params(cfg):
        if len(shape) == 2:
            t = torch.randn(shape) * 0.02
        elif name.endswith("weight"):       # layernorm gains near 1, perturbed so their gradients matter
            t = 1.0 + 0.1 * torch.randn(shape)
        else:                               # biases small but non-zero
            t = 0.02 * torch.randn(shape)
        params[name] = t
    params["wte.weight"][V:] = 0.0          # padding rows
    for t in params.values():
        t.requires_grad_(True)
    idx = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    targets[1, 3] = -1                      # one ignored position

    weights0 = [params[n].detach().clone() for n, _ in canonical_params(cfg)]
    logits = forward(params, idx, cfg)
    loss = torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=-1)
    loss.backward()
    grads = [params[n].grad.detach().clone() for n, _ in canonical_params(cfg)]

    decay = [params[n] for n, s in canonical_params(cfg) if len(s) >= 2]
    no_decay = [params[n] for n, s in canonical_params(cfg) if len(s) < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS)
    losses = []
    for step in range(N_STEPS):
        opt.zero_grad()
        l = torch.nn.functional.cross_entropy(forward(params, idx, cfg).view(-1, V), targets.view(-1),
                                              ignore_index=-1)
        l.backward()
        opt.step()
        losses.append(l.item())

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpt_small.bin")
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        header = [0x47505452, 1, cfg["n_layer"], cfg["n_head"], C, cfg["block_size"], V, Vp, cfg["bias"], B, T,
                  N_STEPS, len(weights0), 0, 0, 0]
        f.write(struct.pack("<16i", *header))
        f.write(struct.pack("<5f", LR, BETA1, BETA2, EPS, WD))
        for w in weights0:
            f.write(w.numpy().astype("<f4").tobytes())
        f.write(idx.numpy().astype("<i4").tobytes())
        f.write(targets.numpy().astype("<i4").tobytes())
        f.write(logits.detach().numpy().astype("<f4").tobytes())
        f.write(struct.pack("<f", loss.item()))
        for g in grads:
            f.write(g.numpy().astype("<f4").tobytes())
        f.write(struct.pack(f"<{N_STEPS}f", *losses))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    print(f"wrote {out}: torch {torch.__version__}, loss {loss.item():.6f}, AdamW losses {losses}")
    write_safetensors_case(os.path.dirname(out))


def write_safetensors_case(folder):
    """A small random GPT-2 in Hugging Face's file formats (model.safetensors with GPT2Model's tensor names,
    Conv1D weights stored [in, out], plus the attention-mask buffers real files carry; config.json), and
    PyTorch's logits for a fixed prompt: tests/test_gpt.c loads the pair through gpt_load_safetensors."""
    import json
    torch.manual_seed(99)
    cfg = dict(n_layer=2, n_head=2, n_embd=16, block_size=12, vocab=50, bias=1)
    params = {}
    for name, shape in canonical_params(cfg):
        if name == "wte.weight":
            shape = (cfg["vocab"], shape[1])  # HF stores vocab_size rows, unpadded
        t = torch.randn(shape) * (0.3 if len(shape) == 2 else 0.1)
        if len(shape) == 1 and name.endswith("weight"):
            t = t + 1.0
        params[name] = t
    ids = torch.tensor([[5, 17, 3, 42, 0, 49, 8, 8, 21]])
    with torch.no_grad():
        logits = forward(params, ids, cfg)
    tensors = {}
    for name, t in params.items():
        tensors["transformer." + name if name.startswith("h.0") else name] = t  # both name styles occur
    for l in range(cfg["n_layer"]):
        n = cfg["block_size"]
        tensors[f"h.{l}.attn.bias"] = torch.tril(torch.ones(n, n)).view(1, 1, n, n)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    hjson = json.dumps(header).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(os.path.join(folder, "gpt2_tiny.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs))
    config = {"model_type": "gpt2", "n_layer": cfg["n_layer"], "n_head": cfg["n_head"], "n_embd": cfg["n_embd"],
              "n_positions": cfg["block_size"], "vocab_size": cfg["vocab"], "layer_norm_epsilon": 1e-5}
    with open(os.path.join(folder, "gpt2_tiny.config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(folder, "gpt2_tiny.logits.bin"), "wb") as f:
        f.write(struct.pack("<2i", ids.shape[1], cfg["vocab"]))
        f.write(ids.numpy().astype("<i4").tobytes())
        f.write(logits.numpy().astype("<f4").tobytes())
    print(f"wrote {folder}/gpt2_tiny.safetensors, .config.json, .logits.bin")


if __name__ == "__main__":
    sys.exit(main())
