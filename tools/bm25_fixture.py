"""Writes tests/ref/bm25_rank_bm25.json: rank_bm25's BM25Okapi (0.2.2) scores for the chunks of an index made by
`rag index` (the test fixture: tests/ref/fastapi_mini), with the tokenization of retrieval/bm25.h (runs of ASCII
letters, digits and '_', lowercased). The C test feeds the same chunk texts to bm25_build and compares every score.

Usage: python tools/bm25_fixture.py INDEX.db OUT.json   (needs rank_bm25 and numpy: pip install rank_bm25 numpy)"""
import json
import os
import re
import sqlite3
import sys

from rank_bm25 import BM25Okapi

db, out = sys.argv[1], sys.argv[2]
texts = [r[0] for r in sqlite3.connect(db).execute("SELECT text FROM chunks ORDER BY id")]


def tokens(text):
    return [t.decode() for t in re.findall(rb"[a-z0-9_]+", text.encode("utf-8").lower())]


bm = BM25Okapi([tokens(t) for t in texts])  # k1 1.5, b 0.75, epsilon 0.25
queries = ["How do I allow cross-origin requests from my frontend?",
           "middleware that adds an X-Process-Time header",
           "run a task after returning the response",
           "How do I test my app with TestClient and pytest?",
           "the the the fastapi fastapi",           # terms in most chunks: floored idf, repeats counted
           "HTTPException status_code 404 detail",  # identifiers kept whole
           "websocket websocket receive_text",
           "zebra quantum",                         # no chunk has these words: every score 0
           "CORSMiddleware allow_origins allow_credentials"]
doc = {"rank_bm25": "0.2.2", "k1": bm.k1, "b": bm.b, "epsilon": bm.epsilon, "avgdl": bm.avgdl,
       "texts": texts, "idf": {w: bm.idf[w] for w in ["the", "fastapi", "cors", "middleware", "websocket", "a"]},
       "queries": [{"query": q, "scores": [float(s) for s in bm.get_scores(tokens(q))]} for q in queries]}
with open(out + ".tmp", "w") as f:
    json.dump(doc, f, indent=0)
os.replace(out + ".tmp", out)
print(f"wrote {out}: {len(texts)} chunks, {len(queries)} queries")
