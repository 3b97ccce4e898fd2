"""make bench-rag: gradlab's retrieval against the Python stack on the same chunks of the FastAPI docs.

Ours: `rag index` (chunking, MiniLM embeddings in C, the HNSW graph) and `rag eval` per method. The peer, on the
chunks our index holds: rank_bm25 (BM25Okapi, the same tokens), all-MiniLM-L6-v2 through transformers on PyTorch
(batches of 32 padded to their longest text, mean pooling over the mask, L2 norm: sentence-transformers' recipe),
faiss IndexFlatIP (exact) and IndexHNSWFlat, hnswlib, and reciprocal rank fusion (k 60). Pages are ranked by their
best chunk for both; the metrics are those of retrieval/eval.h (Recall@k over relevant pages, MRR@10, nDCG@10).
Embedding throughput alternates ours and the peer's (--pairs, default 2: A B, B A) over all chunks, 2 threads each;
the ratio is the median of the pairwise ratios. Writes out/bench/rag.json.

Usage: python bench/bench_rag.py --rag build/rag --docs DIR --model data/minilm [--pairs 2] [--threads 2]
       (needs rank_bm25 numpy torch transformers faiss-cpu hnswlib)"""
import argparse
import json
import math
import os
import re
import sqlite3
import statistics
import struct
import subprocess
import time

import numpy as np

ap = argparse.ArgumentParser()
ap.add_argument("--rag", default="build/rag")
ap.add_argument("--docs", required=True)
ap.add_argument("--model", default="data/minilm")
ap.add_argument("--pairs", type=int, default=2)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
os.makedirs("out/bench", exist_ok=True)
db = "out/bench/rag_bench.db"
env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

import torch  # noqa: E402  (after the arguments: --help needs no torch)
from rank_bm25 import BM25Okapi  # noqa: E402
from tokenizers import BertWordPieceTokenizer  # noqa: E402
from transformers import BertModel  # noqa: E402

torch.set_num_threads(args.threads)
tok = BertWordPieceTokenizer(os.path.join(args.model, "vocab.txt"), lowercase=True)  # transformers 5's
tok.enable_truncation(256)  # BertTokenizerFast(vocab_file=...) reads no vocabulary: every id [UNK]
tok.enable_padding(pad_id=0)
model = BertModel.from_pretrained(args.model).eval()


def ours_index():
    out = subprocess.run([args.rag, "index", "--docs", args.docs, "--db", db], env=env, capture_output=True, text=True,
                         check=True).stdout
    return float(re.search(r"embedded \d+ chunks .* in ([\d.]+) s", out).group(1))


def peer_embed(texts):
    vecs = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            enc = tok.encode_batch(texts[i:i + 32])
            ids = torch.tensor([e.ids for e in enc])
            mask = torch.tensor([e.attention_mask for e in enc])
            h = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).float()
            v = (h * m).sum(1) / m.sum(1)
            vecs.append(torch.nn.functional.normalize(v, dim=1).numpy())
    return np.concatenate(vecs)


# ---- embedding throughput, alternating
ours_s, peer_s, texts = [], [], None
for k in range(args.pairs):
    for who in (["ours", "peer"] if k % 2 == 0 else ["peer", "ours"]):
        if who == "ours":
            ours_s.append(ours_index())
            con = sqlite3.connect(db)
            texts = [r[0] for r in con.execute("SELECT text FROM chunks ORDER BY id")]
        else:
            if texts is None:
                continue  # the first pair's peer waits for our chunks
            t0 = time.perf_counter()
            peer_vecs = peer_embed(texts)
            peer_s.append(time.perf_counter() - t0)
if len(peer_s) < len(ours_s):  # the peer's run skipped before our first index
    t0 = time.perf_counter()
    peer_vecs = peer_embed(texts)
    peer_s.append(time.perf_counter() - t0)
n = len(texts)
ratios = [p / o for o, p in zip(ours_s, peer_s)]
print(f"embedding {n} chunks, {args.threads} threads: ours {statistics.median(ours_s):.1f} s "
      f"({n / statistics.median(ours_s):.1f} chunks/s), peer {statistics.median(peer_s):.1f} s "
      f"({n / statistics.median(peer_s):.1f} chunks/s); ours/peer speed {statistics.median(ratios):.2f} "
      f"(median of {len(ratios)} pairs)", flush=True)

# ---- our embeddings and chunks, and the gold questions
con = sqlite3.connect(db)
pages = [r[0] for r in con.execute("SELECT path FROM pages ORDER BY id")]
chunk_page = [r[0] for r in con.execute("SELECT page FROM chunks ORDER BY id")]
ours_vecs = np.array([struct.unpack(f"<{len(r[0]) // 4}f", r[0]) for r in
                      con.execute("SELECT vector FROM embeddings ORDER BY chunk")], dtype=np.float32)
agree = float(np.mean(np.sum(ours_vecs * peer_vecs, axis=1)))
print(f"our chunk embeddings against the peer's: mean cosine {agree:.6f}")
gold = [json.loads(line) for line in open(os.path.join(args.docs, "gold.jsonl")) if line.strip()]


def tokens(t):
    return [x.decode() for x in re.findall(rb"[a-z0-9_]+", t.encode().lower())]


bm = BM25Okapi([tokens(t) for t in texts])
import faiss  # noqa: E402
import hnswlib  # noqa: E402

faiss.omp_set_num_threads(args.threads)
flat = faiss.IndexFlatIP(peer_vecs.shape[1])
flat.add(peer_vecs)
fh = faiss.IndexHNSWFlat(peer_vecs.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
fh.hnsw.efConstruction = 200
fh.add(peer_vecs)
hl = hnswlib.Index(space="ip", dim=peer_vecs.shape[1])
hl.init_index(max_elements=n, M=16, ef_construction=200, random_seed=42)
hl.add_items(peer_vecs, np.arange(n))


def pages_by_best_chunk(scores):
    best = {}
    for c in np.argsort(-scores, kind="stable"):
        if scores[c] == 0 or not math.isfinite(scores[c]):
            continue
        best.setdefault(chunk_page[c], len(best))
    return [p for p, _ in sorted(best.items(), key=lambda x: x[1])]


def metrics(ranked, relevant):
    rel = set(relevant)
    r = {f"recall_at_{k}": len(rel & set(ranked[:k])) / len(rel) for k in (1, 5, 10)}
    first = next((i + 1 for i, p in enumerate(ranked[:10]) if p in rel), 0)
    r["mrr_at_10"] = 1 / first if first else 0
    dcg = sum(1 / math.log2(i + 2) for i, p in enumerate(ranked[:10]) if p in rel)
    r["ndcg_at_10"] = dcg / sum(1 / math.log2(i + 2) for i in range(min(len(rel), 10)))
    return r


def rrf(a, b):
    s = {}
    for rank, p in enumerate(a):
        s[p] = s.get(p, 0) + 1 / (60 + rank + 1)
    for rank, p in enumerate(b):
        s[p] = s.get(p, 0) + 1 / (60 + rank + 1)
    return [p for p, _ in sorted(s.items(), key=lambda x: -x[1])]


peer = {m: [] for m in ("bm25", "dense", "hybrid")}
lat, recall = [], {"faiss_hnsw": [], "hnswlib": []}
for g in gold:
    t0 = time.perf_counter()
    q = peer_embed([g["question"]])
    dense_scores = np.full(n, -np.inf, dtype=np.float32)
    D, I = flat.search(q, n)
    dense_scores[I[0]] = D[0]
    b = bm.get_scores(tokens(g["question"]))
    ranked = {"bm25": [pages[p] for p in pages_by_best_chunk(b)],
              "dense": [pages[p] for p in pages_by_best_chunk(dense_scores)]}
    ranked["hybrid"] = rrf(ranked["bm25"], ranked["dense"])
    lat.append((time.perf_counter() - t0) * 1e3)
    for m in peer:
        peer[m].append(metrics(ranked[m], g["relevant"]))
    exact = set(I[0][:10])
    fh.hnsw.efSearch = 16
    recall["faiss_hnsw"].append(len(exact & set(fh.search(q, 10)[1][0])) / 10)
    hl.set_ef(16)
    recall["hnswlib"].append(len(exact & set(hl.knn_query(q, k=10)[0][0])) / 10)

rows = {}
subprocess.run([args.rag, "eval", "--gold", os.path.join(args.docs, "gold.jsonl"), "--db", db, "--method",
                "bm25,dense,hybrid", "--json", "out/bench/rag_ours.json"], env=env, capture_output=True, check=True)
ours_all = json.load(open("out/bench/rag_ours.json"))["methods"]
for m in ("bm25", "dense", "hybrid"):
    ours = ours_all[m]
    mean = {k: statistics.mean(r[k] for r in peer[m]) for k in peer[m][0]}
    rows[m] = {"ours": {k: ours[k] for k in mean} | {"ms_per_query": ours["ms_per_query"]},
               "peer": mean | {"ms_per_query": statistics.median(lat)}}
subprocess.run([args.rag, "eval", "--gold", os.path.join(args.docs, "gold.jsonl"), "--db", db, "--method", "dense",
                "--ann", "16", "--json", "out/bench/rag_ours_hnsw.json"], env=env, capture_output=True, check=True)
ours_hnsw = json.load(open("out/bench/rag_ours_hnsw.json"))["hnsw_recall_at_10"]

print("\n| method | who | Recall@1 | Recall@5 | Recall@10 | MRR@10 | nDCG@10 | ms/query |")
print("|---|---|---|---|---|---|---|---|")
for m, r in rows.items():
    for who in ("ours", "peer"):
        x = r[who]
        print(f"| {m} | {who} | {x['recall_at_1']:.3f} | {x['recall_at_5']:.3f} | {x['recall_at_10']:.3f} | "
              f"{x['mrr_at_10']:.3f} | {x['ndcg_at_10']:.3f} | {x['ms_per_query']:.2f} |")
print(f"\nHNSW recall@10 against exact at efSearch 16 (M 16, efConstruction 200): ours {ours_hnsw:.3f}, "
      f"faiss {statistics.mean(recall['faiss_hnsw']):.3f}, hnswlib {statistics.mean(recall['hnswlib']):.3f}")
print("(the peer's ms/query: the question's embedding on PyTorch, both rankings and the fusion, all methods together)")
with open("out/bench/rag.json.tmp", "w") as f:
    json.dump({"chunks": n, "threads": args.threads, "embedding": {"ours_s": ours_s, "peer_s": peer_s,
               "ours_over_peer_speed_median": statistics.median(ratios), "mean_cosine_ours_vs_peer": agree},
               "methods": rows, "hnsw_recall_at_10_ef16": {"ours": ours_hnsw,
                                                           "faiss": statistics.mean(recall["faiss_hnsw"]),
                                                           "hnswlib": statistics.mean(recall["hnswlib"])}}, f, indent=2)
os.replace("out/bench/rag.json.tmp", "out/bench/rag.json")
print("wrote out/bench/rag.json")
