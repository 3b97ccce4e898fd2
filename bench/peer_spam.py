#!/usr/bin/env python3
"""The spam filter's peer for lab 11: scikit-learn's TfidfVectorizer + LogisticRegression on the same split as
build/lab11 (the file's test split; every fifth training mail, in file order, held out to choose the threshold
that maximises F1). Writes its test figures as JSON.

    python3 bench/peer_spam.py --tsv spam/spam.tsv --json out/lab11/spam_sklearn.json"""
import argparse
import json
import os
import sys
import time

try:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, precision_recall_fscore_support
except ImportError as e:
    sys.exit(f"peer_spam: {e} (pip install scikit-learn)")


def unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            c = s[i + 1]
            out.append("\n" if c == "n" else "\t" if c == "t" else c)
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--json", required=True)
    a = ap.parse_args()
    train, val, test = [], [], []
    with open(a.tsv, encoding="utf-8") as f:
        next(f)
        k = 0
        for line in f:
            label, _, _, split, text = line.rstrip("\n").split("\t")
            row = (unescape(text), 1 if label == "spam" else 0)
            if split == "test":
                test.append(row)
            else:
                (val if k % 5 == 4 else train).append(row)
                k += 1
    t0 = time.perf_counter()
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2)
    xt = vec.fit_transform([t for t, _ in train])
    clf = LogisticRegression(C=10.0, max_iter=2000)
    clf.fit(xt, [y for _, y in train])
    train_s = time.perf_counter() - t0
    vs = clf.predict_proba(vec.transform([t for t, _ in val]))[:, 1]
    vy = np.array([y for _, y in val])
    best, thr = -1.0, 0.5
    for t in sorted(set(vs), reverse=True):
        p, r, f1, _ = precision_recall_fscore_support(vy, vs >= t, average="binary", zero_division=0)
        if f1 > best:
            best, thr = f1, float(t)
    ts = clf.predict_proba(vec.transform([t for t, _ in test]))[:, 1]
    ty = np.array([y for _, y in test])
    pred = ts >= thr
    p, r, f1, _ = precision_recall_fscore_support(ty, pred, average="binary", zero_division=0)
    tp, fp = int((pred & (ty == 1)).sum()), int((pred & (ty == 0)).sum())
    fn, tn = int((~pred & (ty == 1)).sum()), int((~pred & (ty == 0)).sum())
    res = {"f1": f1, "precision": p, "recall": r, "threshold": thr, "train_s": train_s,
           "average_precision": average_precision_score(ty, ts), "confusion": [tp, fp, fn, tn],
           "config": "TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2), LogisticRegression(C=10)"}
    tmp = a.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=2)
    os.replace(tmp, a.json)


if __name__ == "__main__":
    main()
