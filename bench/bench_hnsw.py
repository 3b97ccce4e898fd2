"""make bench-hnsw: our HNSW (retrieval/hnsw.c, through build/bench_hnsw) against hnswlib and faiss IndexHNSWFlat on
the same synthetic vectors, with the same M and efConstruction, searched one query at a time on one thread.

The set (seeded): 100,000 base and 1,000 query vectors of 384 dimensions with the low intrinsic dimension of real
sentence embeddings -- 200 cluster centres in a 48-dimensional latent space, each point its centre plus Gaussian
noise, mapped to 384 dimensions by one random matrix, plus a little isotropic noise, L2-normalized (inner product =
cosine). True neighbours: exact inner-product search (faiss IndexFlatIP). Uniform random 384-d vectors have no
neighbourhood structure at all and no graph index reaches high recall on them cheaply.

Rounds alternate ours, hnswlib, faiss (the machine is noisy); each round times every efSearch; the figures are the
medians over rounds. "At equal recall": for each target recall, the time of the smallest efSearch reaching it, per
library, and our time over each peer's. Writes out/bench/hnsw.json and out/bench/hnsw.png."""
import argparse, json, os, statistics, subprocess, sys, time

import numpy as np
import faiss
import hnswlib

ap = argparse.ArgumentParser()
ap.add_argument("--bench", default="build/bench_hnsw")
ap.add_argument("--n", type=int, default=100_000)
ap.add_argument("--nq", type=int, default=1_000)
ap.add_argument("--dims", type=int, default=384)
ap.add_argument("--rounds", type=int, default=2)
ap.add_argument("--M", type=int, default=16)
ap.add_argument("--efc", type=int, default=200)
ap.add_argument("--ef", default="10,12,16,24,32,48,64,96,128,192,256")
args = ap.parse_args()
efs = [int(e) for e in args.ef.split(",")]
K = 10
os.makedirs("out/bench/hnsw", exist_ok=True)

rng = np.random.default_rng(0)
latent, clusters = 48, 200
centres = rng.standard_normal((clusters, latent))
proj = rng.standard_normal((latent, args.dims)) / np.sqrt(latent)
def sample(m):
    z = centres[rng.integers(0, clusters, m)] + 0.7 * rng.standard_normal((m, latent))
    v = z @ proj + 0.05 * rng.standard_normal((m, args.dims))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
base, queries = sample(args.n), sample(args.nq)
flat = faiss.IndexFlatIP(args.dims)
flat.add(base)
truth = flat.search(queries, K)[1].astype(np.int32)
d = "out/bench/hnsw"
base.tofile(f"{d}/base.f32"), queries.tofile(f"{d}/queries.f32"), truth.tofile(f"{d}/truth.i32")
print(f"{args.n} x {args.dims} base vectors, {args.nq} queries; M {args.M}, efConstruction {args.efc}; "
      f"{args.rounds} alternating rounds, one thread per query", flush=True)

def recall(ids):
    return float(np.mean([len(set(ids[i]) & set(truth[i])) / K for i in range(args.nq)]))

def ours(round_):
    graph = f"{d}/ours.graph"
    if round_ == 0 and os.path.exists(graph): os.remove(graph)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([args.bench, "--base", f"{d}/base.f32", "--n", str(args.n), "--queries", f"{d}/queries.f32",
                          "--nq", str(args.nq), "--dims", str(args.dims), "--truth", f"{d}/truth.i32", "--k", str(K),
                          "--M", str(args.M), "--ef-construction", str(args.efc), "--ef", args.ef, "--graph", graph],
                         capture_output=True, text=True, env=env, check=True).stdout
    r = json.loads(out)
    return r["build_s"], {p["ef"]: (p["recall"], p["us_per_query"]) for p in r["points"]}

# peers: built once (one thread, as ours), timed each round
faiss.omp_set_num_threads(1)
t0 = time.perf_counter()
hl = hnswlib.Index(space="ip", dim=args.dims)
hl.init_index(max_elements=args.n, M=args.M, ef_construction=args.efc, random_seed=42)
hl.set_num_threads(1)
hl.add_items(base)
hl_build = time.perf_counter() - t0
t0 = time.perf_counter()
fh = faiss.IndexHNSWFlat(args.dims, args.M, faiss.METRIC_INNER_PRODUCT)
fh.hnsw.efConstruction = args.efc
fh.add(base)
fa_build = time.perf_counter() - t0

def time_peer(search):
    pts = {}
    for ef in efs:
        t0 = time.perf_counter()
        ids = np.stack([search(queries[i:i + 1], ef) for i in range(args.nq)])
        pts[ef] = (recall(ids), (time.perf_counter() - t0) * 1e6 / args.nq)
    return pts

def hl_search(q, ef):
    hl.set_ef(max(ef, K))
    return hl.knn_query(q, k=K)[0][0]

def fa_search(q, ef):
    fh.hnsw.efSearch = max(ef, K)
    return fh.search(q, K)[1][0]

runs = {"ours": [], "hnswlib": [], "faiss": []}
our_build = None
for r in range(args.rounds):
    b, pts = ours(r)
    if r == 0: our_build = b
    runs["ours"].append(pts)
    runs["hnswlib"].append(time_peer(hl_search))
    runs["faiss"].append(time_peer(fa_search))
    print(f"round {r + 1}: ours at ef 64 {pts[64][1]:.1f} us, hnswlib {runs['hnswlib'][-1][64][1]:.1f} us, "
          f"faiss {runs['faiss'][-1][64][1]:.1f} us", flush=True)

curves = {lib: {ef: (rs[0][ef][0], statistics.median(x[ef][1] for x in rs)) for ef in efs} for lib, rs in runs.items()}
print(f"\nbuild (one thread): ours {our_build:.1f} s, hnswlib {hl_build:.1f} s, faiss {fa_build:.1f} s\n")
print("| efSearch | ours recall | ours us | hnswlib recall | hnswlib us | faiss recall | faiss us |")
print("|---|---|---|---|---|---|---|")
for ef in efs:
    row = " | ".join(f"{curves[l][ef][0]:.3f} | {curves[l][ef][1]:.1f}" for l in ("ours", "hnswlib", "faiss"))
    print(f"| {ef} | {row} |")
equal = {}
print("\nAt equal recall (the smallest efSearch that reaches it):")
for target in (0.90, 0.95, 0.98, 0.99):
    at = {}
    for lib, c in curves.items():
        ok = [ef for ef in efs if c[ef][0] >= target]
        at[lib] = {"ef": ok[0], "us": c[ok[0]][1]} if ok else None
    equal[str(target)] = at
    parts = [f"{l} {a['us']:.1f} us (ef {a['ef']})" if a else f"{l} not reached" for l, a in at.items()]
    ratio = "; ".join(f"ours/{p} {at['ours']['us'] / at[p]['us']:.2f}x time" for p in ("hnswlib", "faiss")
                      if at["ours"] and at[p])
    print(f"  recall >= {target}: " + ", ".join(parts) + (f"  ({ratio})" if ratio else ""))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.figure(figsize=(7, 4.5))
    for lib, c in curves.items():
        plt.plot([c[ef][1] for ef in efs], [c[ef][0] for ef in efs], marker="o", label=lib)
    plt.xscale("log"), plt.xlabel("microseconds per query (one thread, log)"), plt.ylabel("recall@10")
    plt.title(f"HNSW on {args.n:,} x {args.dims} (M {args.M}, efConstruction {args.efc})"), plt.grid(alpha=0.3)
    plt.legend(), plt.tight_layout(), plt.savefig("out/bench/hnsw.png.tmp.png"), os.replace("out/bench/hnsw.png.tmp.png", "out/bench/hnsw.png")
    print("wrote out/bench/hnsw.png")
except ImportError:
    print("(matplotlib is not installed: no plot)")
with open("out/bench/hnsw.json.tmp", "w") as f:
    json.dump({"n": args.n, "nq": args.nq, "dims": args.dims, "M": args.M, "ef_construction": args.efc,
               "rounds": args.rounds, "build_s": {"ours": our_build, "hnswlib": hl_build, "faiss": fa_build},
               "curves": {l: {str(ef): {"recall": c[ef][0], "us_per_query": c[ef][1]} for ef in efs}
                          for l, c in curves.items()}, "equal_recall": equal}, f, indent=2)
os.replace("out/bench/hnsw.json.tmp", "out/bench/hnsw.json")
print("wrote out/bench/hnsw.json")
