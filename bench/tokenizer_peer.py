#!/usr/bin/env python3
"""The peers for `make bench-tokenizer`: tiktoken's "gpt2" encoding (built offline from the same encoder.json and
vocab.bpe, exactly as tiktoken's own gpt2() does, so no download) and Hugging Face `tokenizers` (a ByteLevel BPE
from the same files) when it is installed. Serves one command per line on stdin:
    encode PEER FILE OUT   -> encodes FILE single-threaded, writes the ids as uint16 to OUT, prints "seconds n_ids"
Used by bench/bench_tokenizer.c, which alternates these runs with ours."""
import sys
import time

ENCODER, MERGES = sys.argv[1], sys.argv[2]
peers = {}
try:
    import tiktoken
    import tiktoken.load

    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=MERGES, encoder_json_file=ENCODER)
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    enc = tiktoken.Encoding("gpt2-local", pat_str=pat, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    peers["tiktoken"] = (f"tiktoken {tiktoken.__version__}", enc.encode_ordinary)
except ImportError:
    pass
try:
    import tokenizers
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders

    hf = Tokenizer(models.BPE.from_file(ENCODER, MERGES))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    peers["hf"] = (f"tokenizers {tokenizers.__version__}", lambda text: hf.encode(text).ids)
except ImportError:
    pass

print("ready " + ";".join(f"{k}={v[0]}" for k, v in peers.items()), flush=True)
for line in sys.stdin:
    parts = line.split()
    if not parts or parts[0] == "quit":
        break
    _, name, path, out = parts
    if name not in peers:
        print("nan 0", flush=True)
        continue
    text = open(path, encoding="utf-8").read()
    t0 = time.perf_counter()
    ids = peers[name][1](text)
    secs = time.perf_counter() - t0
    with open(out, "wb") as f:
        f.write(b"".join(i.to_bytes(2, "little") for i in ids))
    print(f"{secs:.6f} {len(ids)}", flush=True)
