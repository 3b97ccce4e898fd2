#!/usr/bin/env python3
"""The llama.cpp peer of bench_llm (llama-cpp-python 0.3.36, which builds llama.cpp from source). One process: loads
the model once, prints "ready llama.cpp VERSION", then answers one line per command:
    decode N ID,ID,...   feed the prompt ids, then N single-token steps (greedy): "TOKENS_PER_SECOND" of the N steps
    prefill ID,ID,...    one batch of all the ids on an empty cache: "TOKENS_PER_SECOND"
Usage: llama_peer.py MODEL.gguf THREADS"""
import sys
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama

model, threads = sys.argv[1], int(sys.argv[2])
m = Llama(model, verbose=False, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads, n_threads_batch=threads)
print("ready llama.cpp (llama-cpp-python %s)" % llama_cpp.__version__, flush=True)
for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
        break
    if cmd[0] == "decode":
        n, ids = int(cmd[1]), [int(x) for x in cmd[2].split(",")]
        m.reset()
        m.eval(ids)
        tok = int(np.argmax(m.scores[m.n_tokens - 1]))
        t0 = time.perf_counter()
        for _ in range(n):
            m.eval([tok])
            tok = int(np.argmax(m.scores[m.n_tokens - 1]))
        print(n / (time.perf_counter() - t0), flush=True)
    elif cmd[0] == "prefill":
        ids = [int(x) for x in cmd[1].split(",")]
        m.reset()
        t0 = time.perf_counter()
        m.eval(ids)
        print(len(ids) / (time.perf_counter() - t0), flush=True)
