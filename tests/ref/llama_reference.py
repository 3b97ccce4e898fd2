#!/usr/bin/env python3
"""Reference fixtures for the Llama model and its tokenizer (tests/test_llama.c reads them; no Python at test time).

  python3 tests/ref/llama_reference.py tiny
      tests/ref/llama_tiny.gguf      a tiny random Llama (width 78, 6 query heads over 2 kv heads of 13 dims, 12 of
                                     them rotated, 2 layers, FFN 100, vocabulary 97, an untied F16 output head)
      tests/ref/llama_tiny.logits.bin  float32 [12, 97]: the logits of 12 fixed tokens, by NumPy in float64

  python3 tests/ref/llama_reference.py smollm2 MODEL.gguf      (needs llama-cpp-python: the peer, llama.cpp)
      tests/ref/smollm2_tokens.tsv   text (JSON-escaped) TAB llama.cpp's ids, for tricky strings and shipped text
      tests/ref/smollm2_greedy.tsv   per chat prompt: the prompt's ids, llama.cpp's 64 greedy tokens, and at each of
                                     them the gap between llama.cpp's best and second-best logit
"""
import json
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- a minimal GGUF v3 writer


def gguf_bytes(kvs, tensors):
    """kvs: list of (key, type, value); tensors: list of (name, ggml type, dims ne0-first, raw bytes)"""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, typ, val in kvs:
        out += s(key) + struct.pack("<I", typ)
        if typ == 4: out += struct.pack("<I", val)
        elif typ == 6: out += struct.pack("<f", val)
        elif typ == 7: out += struct.pack("<B", val)
        elif typ == 8: out += s(val)
        elif typ == 9:
            et, items = val
            out += struct.pack("<IQ", et, len(items))
            for it in items: out += s(it) if et == 8 else struct.pack("<i", it)
    data, infos = b"", b""
    for name, typ, dims, raw in tensors:
        data += b"\0" * (-len(data) % 32)
        infos += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", typ, len(data))
        data += raw
    out += infos
    out += b"\0" * (-len(out) % 32)
    return out + data


# ---------------------------------------------------------------- the tiny model and its float64 reference

def tiny():
    rng = np.random.default_rng(7)
    C, H, G, hd, rope, F, V, L, eps, base = 78, 6, 2, 13, 12, 100, 97, 2, 1e-5, 10000.0
    T = 12
    w = {}
    def mat(name, rows, cols, scale=0.2, f16=False):
        a = (rng.standard_normal((rows, cols)) * scale).astype(np.float16 if f16 else np.float32)
        w[name] = a.astype(np.float64)
        return (name, 1 if f16 else 0, [cols, rows], a.tobytes())
    def vec(name, n):
        a = (1 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        w[name] = a.astype(np.float64)
        return (name, 0, [n], a.tobytes())
    tensors = [mat("token_embd.weight", V, C, 1.0), vec("output_norm.weight", C), mat("output.weight", V, C, f16=True)]
    for l in range(L):
        p = f"blk.{l}."
        tensors += [vec(p + "attn_norm.weight", C), vec(p + "ffn_norm.weight", C),
                    mat(p + "attn_q.weight", H * hd, C), mat(p + "attn_k.weight", G * hd, C),
                    mat(p + "attn_v.weight", G * hd, C), mat(p + "attn_output.weight", C, H * hd),
                    mat(p + "ffn_gate.weight", F, C), mat(p + "ffn_up.weight", F, C), mat(p + "ffn_down.weight", C, F)]
    kvs = [("general.architecture", 8, "llama"), ("llama.block_count", 4, L), ("llama.context_length", 4, 64),
           ("llama.embedding_length", 4, C), ("llama.feed_forward_length", 4, F), ("llama.attention.head_count", 4, H),
           ("llama.attention.head_count_kv", 4, G), ("llama.rope.freq_base", 6, base),
           ("llama.rope.dimension_count", 4, rope), ("llama.attention.layer_norm_rms_epsilon", 6, eps)]
    assert C == H * hd
    open("tests/ref/llama_tiny.gguf", "wb").write(gguf_bytes(kvs, tensors))

    ids = [3, 96, 0, 41, 41, 7, 58, 13, 2, 77, 5, 64]
    def rms(x, g): return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g
    def rot(x, nh):  # adjacent pairs (2i, 2i+1) of the first `rope` dims of each head
        x = x.reshape(T, nh, hd).copy()
        for t in range(T):
            for i in range(rope // 2):
                th = t * base ** (-2.0 * i / rope)
                a, b = x[t, :, 2 * i].copy(), x[t, :, 2 * i + 1].copy()
                x[t, :, 2 * i], x[t, :, 2 * i + 1] = a * np.cos(th) - b * np.sin(th), a * np.sin(th) + b * np.cos(th)
        return x
    x = w["token_embd.weight"][ids]
    for l in range(L):
        p = f"blk.{l}."
        h = rms(x, w[p + "attn_norm.weight"])
        q, k = rot(h @ w[p + "attn_q.weight"].T, H), rot(h @ w[p + "attn_k.weight"].T, G)
        v = (h @ w[p + "attn_v.weight"].T).reshape(T, G, hd)
        out = np.zeros((T, H, hd))
        for hh in range(H):
            g = hh // (H // G)
            s = q[:, hh] @ k[:, g].T / np.sqrt(hd) + np.triu(np.full((T, T), -np.inf), 1)
            pr = np.exp(s - s.max(1, keepdims=True))
            out[:, hh] = (pr / pr.sum(1, keepdims=True)) @ v[:, g]
        x = x + out.reshape(T, C) @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"])
        a, b = h @ w[p + "ffn_gate.weight"].T, h @ w[p + "ffn_up.weight"].T
        x = x + (a / (1 + np.exp(-a)) * b) @ w[p + "ffn_down.weight"].T
    logits = rms(x, w["output_norm.weight"]) @ w["output.weight"].T
    logits.astype(np.float32).tofile("tests/ref/llama_tiny.logits.bin")
    print("wrote tests/ref/llama_tiny.gguf and llama_tiny.logits.bin", logits.shape)


# ---------------------------------------------------------------- SmolLM2 through llama.cpp

TRICKY = [
    "Hello world", "Hello, world! It's 2024-11-30 and I've got 12345 apples.", "  leading spaces", "trailing spaces   ",
    "tabs\tand\nnewlines\n\n\nthree", "don't you're we'll they've I'd I'M", "3.14159 + 2.71828 = 5.85987",
    "naïve café résumé Ünïcödé", "日本語のテキストと中文", "emoji 😀🎉👍🏽 and ZWJ 👨‍👩‍👧", "mixed123numbers456in789words",
    "def f(x):\n    return x**2  # square", "<|im_start|> is text here", "    \n\t  \r\n", "a\x04b\x05c",
    "ﬁ ligature and Å", "$100,000.00 (approx.)", "URL https://example.com/a?b=1&c=2#frag",
]
PROMPTS = ["What is the capital of France?", "Tell me about Mars.", "Write a haiku about the sea.",
           "How do I reverse a list in Python?", "Give me three tips for better sleep."]


def smollm2(path):
    from llama_cpp import Llama
    m = Llama(path, verbose=False, n_ctx=1024, n_threads=2, logits_all=True)
    texts = list(TRICKY)
    shakespeare = open("data/tinyshakespeare/input.txt", encoding="utf-8").read()
    texts += [shakespeare[i:i + 400] for i in range(0, 4000, 400)]
    with open("tests/ref/smollm2_tokens.tsv", "w") as f:
        for t in texts:
            ids = m.tokenize(t.encode(), add_bos=False, special=False)
            f.write(json.dumps(t) + "\t" + " ".join(map(str, ids)) + "\n")
    sys_text = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    with open("tests/ref/smollm2_greedy.tsv", "w") as f:
        for p in PROMPTS:
            text = f"<|im_start|>system\n{sys_text}<|im_end|>\n<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n"
            ids = m.tokenize(text.encode(), add_bos=False, special=True)
            out = []
            m.reset()
            for t in m.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0):
                out.append(t)
                if t == 2 or len(out) == 64: break
            m.reset()
            m.eval(ids + out)
            scores = np.array(m.scores[len(ids) - 1:len(ids) - 1 + len(out)])
            top2 = np.sort(scores, axis=1)[:, -2:]
            gaps = top2[:, 1] - top2[:, 0]
            f.write(json.dumps(p) + "\t" + " ".join(map(str, ids)) + "\t" + " ".join(map(str, out)) + "\t" +
                    " ".join(f"{g:.4f}" for g in gaps) + "\n")
            print(p, "->", m.detokenize(out)[:80])


if __name__ == "__main__":
    if sys.argv[1:2] == ["tiny"]: tiny()
    elif sys.argv[1:2] == ["smollm2"]: smollm2(sys.argv[2])
    else: sys.exit(__doc__)
