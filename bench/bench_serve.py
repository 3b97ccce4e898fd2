"""make bench-serve: the serve throughput/latency benchmark against llama.cpp's OpenAI-compatible server
(llama-cpp-python[server]) on the same GGUF, the same threads, on loopback.

For each concurrency level (1, 2, 4, 8, 16, 32) every client sends streamed chat requests back to back (fixed
prompts, max_tokens fixed, temperature 0) until the level's request count is done. Ours and the peer run in --pairs
alternating pairs per level (A B, B A, A B, ...: the machine's phases, up to 1.5x apart, hit both); each figure is
the median over its runs, and the ratio is the median of the pairwise ratios. Per level and server: requests/s,
generated tokens/s in aggregate, p50/p95/p99 time to first token and end-to-end latency, errors (summed), the
server's RSS before and after. Writes out/bench/serve.json (every run too) and out/bench/serve.png.

Usage: python bench/bench_serve.py --serve build/serve --model M.gguf [--peer-python PY] [--levels 1,2,4]
       [--requests-per-client 3] [--max-tokens 48] [--threads 2] [--slots 32] [--pairs 3] [--json PATH]"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--serve", default="build/serve")
ap.add_argument("--model", required=True)
ap.add_argument("--peer-python", default="")
ap.add_argument("--levels", default="1,2,4,8,16,32")
ap.add_argument("--requests-per-client", type=int, default=3)
ap.add_argument("--max-tokens", type=int, default=48)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--slots", type=int, default=32)
ap.add_argument("--pairs", type=int, default=3)
ap.add_argument("--json", default="out/bench/serve.json", help="where the figures go (and the plot, as .png beside it)")
args = ap.parse_args()
levels = [int(x) for x in args.levels.split(",")]
prompts = ["Name three primary colors.", "Say hello in Spanish.", "What is 12 times 12?",
           "Write a haiku about the sea.", "Why is the sky blue?", "Give me a word that rhymes with cat.",
           "What does a compiler do?", "What is the largest planet?"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(kind):
    port = free_port()
    if kind == "gradlab":
        cmd = [args.serve, "--gguf", args.model, "--port", str(port), "--threads", str(args.threads), "--slots",
               str(args.slots), "--ctx", "1024", "--queue", "256"]
    else:
        cmd = [args.peer_python, "-m", "llama_cpp.server", "--model", args.model, "--host", "127.0.0.1", "--port",
               str(port), "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads), "--n_ctx", "2048",
               "--verbose", "False", "--interrupt_requests", "False"]  # by default a new request cuts off the running one
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None), env.pop("OPENBLAS_L2_SIZE", None)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc, port


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def one_request(port, prompt):
    """one streamed chat request: (ttft, e2e, generated tokens, ok)"""
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": args.max_tokens,
                       "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}).encode()
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        status = await reader.readline()
        ok = b" 200 " in status
        ttft, tokens, usage = None, 0, None
        buf = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                line = line.strip()
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                try:
                    ev = json.loads(line[6:])
                except ValueError:
                    continue
                if ev.get("usage"):
                    usage = ev["usage"].get("completion_tokens")
                for ch in ev.get("choices") or []:
                    if (ch.get("delta") or {}).get("content"):
                        tokens += 1
                        if ttft is None:
                            ttft = time.perf_counter() - t0
        writer.close()
        e2e = time.perf_counter() - t0
        n = usage if usage is not None else tokens
        return ttft if ttft is not None else e2e, e2e, n, ok and n > 0  # an empty answer counts as an error
    except OSError:
        return float("nan"), time.perf_counter() - t0, 0, False


async def level(port, clients):
    results = []

    async def client(i):
        for k in range(args.requests_per_client):
            results.append(await one_request(port, prompts[(i + k) % len(prompts)]))

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return results, time.perf_counter() - t0


def pct(xs, q):
    xs = sorted(x for x in xs if x == x)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def measure(kind, clients):
    proc, port = start(kind)
    before = rss_mb(proc.pid)
    asyncio.run(level(port, 1))  # warm-up: the model mapped, the caches touched
    results, secs = asyncio.run(level(port, clients))
    after = rss_mb(proc.pid)
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    ttft = [r[0] for r in results if r[3]]
    e2e = [r[1] for r in results if r[3]]
    toks = sum(r[2] for r in results if r[3])
    return {"requests": len(results), "errors": sum(1 for r in results if not r[3]), "seconds": secs,
            "requests_per_s": len(results) / secs, "tokens_per_s": toks / secs,
            "ttft_p50": pct(ttft, 50), "ttft_p95": pct(ttft, 95), "ttft_p99": pct(ttft, 99),
            "e2e_p50": pct(e2e, 50), "e2e_p95": pct(e2e, 95), "e2e_p99": pct(e2e, 99),
            "rss_mb_before": before, "rss_mb_after": after}


have_peer = bool(args.peer_python) and subprocess.run([args.peer_python, "-c", "import llama_cpp.server"],
                                                      capture_output=True).returncode == 0
if not have_peer:
    print("bench-serve: no llama-cpp-python[server] for the peer (make bench-serve installs it into out/peer-venv); "
          "ours alone")


def median_run(runs):
    """each figure's median over the runs (errors and requests summed)"""
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[k] = sum(vals) if k in ("errors", "requests") else statistics.median(vals)
    return out


rows = []
for i, c in enumerate(levels):
    runs, ratios = {"gradlab": [], "llama.cpp": []}, []
    for k in range(args.pairs):
        order = ["gradlab", "llama.cpp"] if (i + k) % 2 == 0 else ["llama.cpp", "gradlab"]
        got = {}
        for kind in order:
            if kind == "llama.cpp" and not have_peer:
                continue
            got[kind] = measure(kind, c)
            runs[kind].append(got[kind])
        if "llama.cpp" in got:
            ratios.append(got["gradlab"]["tokens_per_s"] / got["llama.cpp"]["tokens_per_s"])
    row = {"concurrency": c, "gradlab": median_run(runs["gradlab"]), "runs": runs}
    if ratios:
        row["llama.cpp"] = median_run(runs["llama.cpp"])
        row["ratio_median_of_pairs"] = statistics.median(ratios)
    rows.append(row)
    g, p = row["gradlab"], row.get("llama.cpp")
    print(f"concurrency {c:2d}: ours {g['tokens_per_s']:7.1f} tok/s, TTFT p50/p99 {g['ttft_p50']:.3f}/{g['ttft_p99']:.3f} s,"
          f" errors {g['errors']}" + (f" | llama.cpp {p['tokens_per_s']:7.1f} tok/s, TTFT p50/p99 "
                                      f"{p['ttft_p50']:.3f}/{p['ttft_p99']:.3f} s, errors {p['errors']}"
                                      f" | ratio {row['ratio_median_of_pairs']:.2f} (median of {len(ratios)} pairs)"
                                      if p else ""), flush=True)

print("\n| concurrency | ours tok/s | ours req/s | ours TTFT p50 / p95 / p99 s | ours e2e p50 / p99 s | peer tok/s | "
      "peer TTFT p50 / p99 s | ours / peer tok/s | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    g, p = r["gradlab"], r.get("llama.cpp")
    print(f"| {r['concurrency']} | {g['tokens_per_s']:.1f} | {g['requests_per_s']:.2f} | {g['ttft_p50']:.3f} / "
          f"{g['ttft_p95']:.3f} / {g['ttft_p99']:.3f} | {g['e2e_p50']:.2f} / {g['e2e_p99']:.2f} | "
          + (f"{p['tokens_per_s']:.1f} | {p['ttft_p50']:.3f} / {p['ttft_p99']:.3f} | "
             f"{r['ratio_median_of_pairs']:.2f} | {g['errors']} / {p['errors']} |" if p else
             f"- | - | - | {g['errors']} |"))
single = rows[0]["gradlab"]["tokens_per_s"]
at16 = next((r["gradlab"]["tokens_per_s"] for r in rows if r["concurrency"] == 16), None)
if at16:
    print(f"\naggregate tokens/s at 16 concurrent / one stream: {at16 / single:.2f}x (target >= 3x)")
out_json = args.json
out_png = os.path.splitext(out_json)[0] + ".png"
os.makedirs(os.path.dirname(out_json) or ".", exist_ok=True)
with open(out_json + ".tmp", "w") as f:
    json.dump({"model": os.path.basename(args.model), "threads": args.threads, "slots": args.slots,
               "max_tokens": args.max_tokens, "requests_per_client": args.requests_per_client, "pairs": args.pairs,
               "levels": rows}, f,
              indent=2)
os.replace(out_json + ".tmp", out_json)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for kind in ["gradlab", "llama.cpp"]:
        pts = [(r["concurrency"], r[kind]) for r in rows if kind in r]
        if not pts:
            continue
        ax[0].plot([c for c, _ in pts], [m["tokens_per_s"] for _, m in pts], "o-", label=kind)
        ax[1].plot([c for c, _ in pts], [m["ttft_p99"] for _, m in pts], "o-", label=kind)
    for a, t in zip(ax, ["aggregate generated tokens/s", "p99 time to first token (s)"]):
        a.set_xscale("log", base=2), a.set_xlabel("concurrent clients"), a.set_title(t), a.legend(), a.grid(alpha=.3)
    fig.tight_layout()
    fig.savefig(out_png + ".tmp.png", dpi=100)
    os.replace(out_png + ".tmp.png", out_png)
    print(f"wrote {out_json} and {out_png}")
except ImportError:
    print(f"wrote {out_json} (no matplotlib for the plot)")
