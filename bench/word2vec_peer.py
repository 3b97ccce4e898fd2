#!/usr/bin/env python3
"""The peer for `make bench-word2vec`: gensim's Word2Vec (skip-gram, negative sampling) on the same corpus file
with the same settings. Serves one command per line on stdin:
    train CORPUS EPOCHS THREADS DIM WINDOW NEGATIVE MIN_COUNT SAMPLE ALPHA SEED OUT
        -> trains on CORPUS (one sentence per line, words separated by spaces) through gensim's corpus_file path
           (its fastest: no Python in the loop, one reader per worker), saves the vectors to OUT in word2vec's
           binary format, prints "seconds training_words vocab_size"; seconds count model.train() only,
           after the vocabulary is built, as the C side counts only its training.
    eval VECTORS QUESTIONS
        -> gensim's evaluate_word_analogies on any word2vec binary file: prints "accuracy covered"
Used by bench/bench_word2vec.c, which alternates these runs with ours."""
import logging
import sys
import time

try:
    import gensim
    from gensim.models import KeyedVectors, Word2Vec
except ImportError:
    print("ready none", flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        print("nan 0 0", flush=True)
    sys.exit(0)

logging.disable(logging.WARNING)
print(f"ready gensim {gensim.__version__}", flush=True)
for line in sys.stdin:
    parts = line.split()
    if not parts or parts[0] == "quit":
        break
    if parts[0] == "train":
        corpus, epochs, threads, dim, window, negative, min_count = parts[1], *map(int, parts[2:8])
        sample, alpha = float(parts[8]), float(parts[9])
        seed, out = int(parts[10]), parts[11]
        model = Word2Vec(vector_size=dim, window=window, negative=negative, hs=0, sg=1, min_count=min_count,
                         sample=sample, alpha=alpha, min_alpha=alpha * 1e-4, workers=threads, epochs=epochs, seed=seed)
        model.build_vocab(corpus_file=corpus)
        words = sum(model.wv.get_vecattr(w, "count") for w in model.wv.index_to_key)
        t0 = time.perf_counter()
        model.train(corpus_file=corpus, total_words=model.corpus_total_words, total_examples=model.corpus_count,
                    epochs=epochs)
        seconds = time.perf_counter() - t0
        model.wv.save_word2vec_format(out, binary=True)
        print(f"{seconds:.4f} {words} {len(model.wv)}", flush=True)
    elif parts[0] == "eval":
        kv = KeyedVectors.load_word2vec_format(parts[1], binary=True)
        score, sections = kv.evaluate_word_analogies(parts[2], restrict_vocab=300000, case_insensitive=True)
        total = sections[-1]
        print(f"{score:.6f} {len(total['correct']) + len(total['incorrect'])}", flush=True)
    else:
        print("nan 0 0", flush=True)
