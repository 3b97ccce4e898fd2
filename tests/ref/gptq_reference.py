#!/usr/bin/env python3
"""Reference fixture for GPTQ (tests/test_quantize.c reads it; no Python at test time).

  out/peer-venv/bin/python tests/ref/gptq_reference.py      (NumPy)
      tests/ref/gptq_layer.bin   a random linear layer, its correlated calibration inputs, the Hessian, and for each
                                 block type the codes a plain NumPy GPTQ (written from the paper's algorithm 1, in
                                 float64 with the block formats' scale and rounding in float32 as ggml computes them)
                                 gives

Layout, little-endian: int32 rows, cols, n (calibration rows), n_types, block, then float32 W [rows, cols], float32
X [n, cols], float64 H [cols, cols] (2 X^T X / n, before damping), float64 damp, then per type: int32 type number,
int32 codes [rows, cols] in column order, int32 codes [rows, cols] in act order (static block scales).
"""
import struct
import sys

import numpy as np

QK = 32
F32 = np.float32


def f16(x):
    return np.float32(np.float16(np.float32(x)))


def block_scale(t, g):
    """(d as stored, 1/d as ggml computes it, the minimum before rounding, the minimum as stored)"""
    g = g.astype(F32)
    if t == "Q4_1":
        lo, hi = g.min(), g.max()
        d = F32((hi - lo) / F32(15))
        return f16(d), (F32(1) / d if d else F32(0)), lo, f16(lo)
    if t == "Q8_0":
        d = F32(np.abs(g).max() / F32(127))
        return f16(d), (F32(1) / d if d else F32(0)), F32(0), F32(0)
    big = g[np.argmax(np.abs(g))]  # the first value of largest magnitude maps to code 0
    d = F32(big / F32(-8 if t == "Q4_0" else -4))
    return f16(d), (F32(1) / d if d else F32(0)), F32(0), F32(0)


def code_and_value(t, s, x):
    d, inv, m, m16 = s
    x = F32(x)
    if t == "Q8_0":
        q = int(max(-127.0, min(127.0, np.round(x * inv))))  # roundf: half away from zero (no exact halves here)
        return q, F32(d * F32(q))
    if t == "Q4_0":
        q = int(min(F32(15), max(F32(0), F32(x * inv) + F32(8.5))))
        return q, F32(d * F32(q - 8))
    if t == "Q4_1":
        q = int(min(F32(15), max(F32(0), F32(F32(x - m) * inv) + F32(0.5))))
        return q, F32(F32(d * F32(q)) + m16)
    q = int(min(F32(7), max(F32(0), F32(x * inv) + F32(4.5))))
    return q, F32(d * F32(q - 4))


def gptq(t, W, H, damp, block, act_order=False):
    W = W.astype(np.float64).copy()
    H = H.copy()
    rows, cols = W.shape
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    mean = np.mean(np.diag(H))
    perm = np.arange(cols)
    if act_order:  # by decreasing diagonal, ties in index order; static scales from the rows before any update
        perm = np.array(sorted(range(cols), key=lambda i: (-H[i, i], i)))
        static = [[block_scale(t, W[r, b:b + QK]) for b in range(0, cols, QK)] for r in range(rows)]
        W = W[:, perm]
        H = H[perm][:, perm]
    H += damp * mean * np.eye(cols)
    U = np.linalg.cholesky(np.linalg.inv(H)).T  # H^-1 = U^T U, U upper
    Q = np.zeros((rows, cols), dtype=np.int32)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        Err = np.zeros((rows, i2 - i1))
        for r in range(rows):
            s = None
            for i in range(i1, i2):
                if act_order:
                    s = static[r][perm[i] // QK]
                elif i % QK == 0:
                    s = block_scale(t, W[r, i:i + QK])
                q, v = code_and_value(t, s, W[r, i])
                Q[r, perm[i]] = q
                e = (W[r, i] - float(v)) / U[i, i]
                W[r, i] = float(v)
                W[r, i + 1:i2] -= e * U[i, i + 1:i2]
                Err[r, i - i1] = e
        W[:, i2:] -= Err @ U[i1:i2, i2:]
    return Q


def main():
    rng = np.random.default_rng(7)
    rows, cols, n, block, damp = 24, 96, 400, 64, 0.01
    # correlated inputs: a few strong directions mixed into every feature, and one feature never active
    base = rng.standard_normal((n, 8))
    X = (base @ rng.standard_normal((8, cols)) + 0.3 * rng.standard_normal((n, cols))).astype(F32)
    X[:, 17] = 0
    W = (0.1 * rng.standard_normal((rows, cols))).astype(F32)
    H = 2 * X.astype(np.float64).T @ X.astype(np.float64) / n
    types = [("Q8_0", 8), ("Q4_0", 2), ("Q4_1", 3), ("Q3_0", 130)]
    out = struct.pack("<5i", rows, cols, n, len(types), block)
    out += W.tobytes() + X.tobytes() + H.tobytes() + struct.pack("<d", damp)
    for name, number in types:
        out += struct.pack("<i", number) + gptq(name, W, H, damp, block).astype("<i4").tobytes()
        out += gptq(name, W, H, damp, block, act_order=True).astype("<i4").tobytes()
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/ref/gptq_layer.bin"
    with open(path, "wb") as f:
        f.write(out)
    print(f"wrote {path} ({len(out)} bytes)")


if __name__ == "__main__":
    main()
