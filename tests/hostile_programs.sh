#!/usr/bin/env bash
# The programs under hostile use (issue: hardening): each case once crashed, hung, lost data or exited 0 on an
# error. Each must now exit non-zero (or, where noted, succeed) with a message naming the problem.
# Usage: tests/hostile_programs.sh [BUILD_DIR]   (make test runs it; the library-level cases are tests/test_hostile.c)
set -uo pipefail
build=${1:-build}
dir=out/test/hostile_programs
rm -rf "$dir" && mkdir -p "$dir"
failures=0
tiny=(--data data/tinyshakespeare/input.txt --n-layer 1 --n-head 1 --n-embd 16 --block-size 16 --batch 2
      --eval-interval 1000 --eval-batches 1 --final-eval-batches 0 --sample 0 --quiet --threads 2)

# expect STATUS NEEDLE -- COMMAND...: the command exits with STATUS (or any non-zero for "fail") and says NEEDLE
expect() {
  local want=$1 needle=$2; shift 3
  local got=0
  "$@" > "$dir/stdout" 2> "$dir/stderr" || got=$?
  if { [ "$want" = fail ] && [ "$got" -eq 0 ]; } || { [ "$want" != fail ] && [ "$got" -ne "$want" ]; } ||
     ! grep -qF -- "$needle" "$dir/stdout" "$dir/stderr"; then
    echo "FAIL: $* -> exit $got (wanted $want and \"$needle\")"; sed 's/^/  | /' "$dir/stderr" | head -5
    failures=$((failures + 1))
  else
    echo "ok: exit $got, \"$needle\": $(basename "$1") ${*:2:3}..."
  fi
}

# --- train: outputs are checked before the work, --resume continues its own file and says what it ignores
expect 1 "--out 'out/test/no/such/x.ckpt' cannot be written: folder 'out/test/no/such'" -- \
  "$build/train" "${tiny[@]}" --steps 5 --out out/test/no/such/x.ckpt
expect 1 "--out '$dir' is a folder; give a file name" -- "$build/train" "${tiny[@]}" --steps 5 --out "$dir"
expect 1 "--plot 'out/test/no/such/x.png' cannot be written" -- \
  "$build/train" "${tiny[@]}" --steps 5 --out "$dir/a.ckpt" --plot out/test/no/such/x.png
expect 1 "--loss-log 'out/test/no/such/x.log' cannot be written" -- \
  "$build/train" "${tiny[@]}" --steps 5 --out "$dir/a.ckpt" --loss-log out/test/no/such/x.log
expect 0 "checkpoint $dir/r.ckpt" -- "$build/train" "${tiny[@]}" --steps 10 --stop-after 5 --out "$dir/r.ckpt"
before=$(cksum < "$dir/r.ckpt")
expect 0 "--lr is ignored: a resumed run keeps the settings stored in '$dir/r.ckpt'" -- \
  "$build/train" --data data/tinyshakespeare/input.txt --resume "$dir/r.ckpt" --lr 0.5 --quiet --sample 0 \
  --final-eval-batches 0 --threads 2
grep -qF "checkpoint $dir/r.ckpt" "$dir/stdout" && [ "$before" != "$(cksum < "$dir/r.ckpt")" ] ||
  { echo "FAIL: --resume without --out did not continue its own checkpoint"; failures=$((failures + 1)); }
expect 2 "--batch 7 cannot be split evenly: it must be divisible by 2 (1 rank x --grad-accum 2)" -- \
  "$build/train" "${tiny[@]}" --batch 7 --grad-accum 2 --steps 2 --out "$dir/g.ckpt"
# two runs on one --out: the second is refused while the first runs
"$build/train" "${tiny[@]}" --steps 100000 --out "$dir/busy.ckpt" > /dev/null 2>&1 & first=$!
for _ in $(seq 100); do [ -e "$dir/busy.ckpt.lock" ] && break; sleep 0.05; done
expect 1 "is in use by another run" -- "$build/train" "${tiny[@]}" --steps 5 --out "$dir/busy.ckpt"
kill -9 "$first"; { wait "$first"; } 2> /dev/null
if [ -w /dev/full ]; then
  expect 1 "train: could not write the output" -- \
    bash -c "'$build/train' ${tiny[*]} --steps 2 --out '$dir/full.ckpt' > /dev/full"
fi

# --- tokenize: a NUL in the ids is an error, not the end of the input
printf '15496 11\0 995' > "$dir/ids.txt"
expect 1 "holds a NUL byte at byte 8" -- "$build/tokenize" decode "$dir/ids.txt"

# --- lab 01: CSVs without the columns a part needs, labels that are not 0/1, a NUL byte
mkdir -p "$dir/tab1" "$dir/tab2" "$dir/tab3"
cp data/tabular/diabetes.csv "$dir/tab1/"; cp data/tabular/diabetes.csv "$dir/tab2/"; cp data/tabular/diabetes.csv "$dir/tab3/"
{ echo "mean_radius,label"; for i in $(seq 20); do echo "$i,$((i % 2))"; done; } > "$dir/tab1/breast_cancer.csv"
{ echo "a,b,label"; for i in $(seq 20); do echo "$i,$((i * 3 % 7)),$((i % 3))"; done; } > "$dir/tab2/breast_cancer.csv"
{ echo "a,b,label"; echo "1,2,0"; printf '3,4,1\0\n'; echo "5,6,1"; } > "$dir/tab3/breast_cancer.csv"
expect 1 "has 1 feature columns and 20 rows; this part of the lab needs at least 2" -- \
  "$build/lab01" --data "$dir/tab1" --out "$dir/lab01"
expect 1 "label is 2; a classification label must be 0 or 1" -- "$build/lab01" --data "$dir/tab2" --out "$dir/lab01"
expect 1 "line 3 holds a NUL byte" -- "$build/lab01" --data "$dir/tab3" --out "$dir/lab01"

# --- lab 02: images that are not 28 x 28 on the training path, an empty test set
idx_images() { # COUNT ROWS COLS: an IDX image file of zero pixels
  printf "\x00\x00\x08\x03$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' 0 0 0 "$1")$(printf '\\x00\\x00\\x00\\x%02x' "$2")$(printf '\\x00\\x00\\x00\\x%02x' "$3")"
  head -c $(($1 * $2 * $3)) /dev/zero
}
idx_labels() { printf "\x00\x00\x08\x01$(printf '\\x00\\x00\\x00\\x%02x' "$1")"; head -c "$1" /dev/zero; }
mkdir -p "$dir/mnist32" "$dir/mnist0"
idx_images 4 32 32 > "$dir/mnist32/train-images-idx3-ubyte"; idx_labels 4 > "$dir/mnist32/train-labels-idx1-ubyte"
cp "$dir/mnist32/"* "$dir/mnist0/"
idx_images 4 28 28 > "$dir/mnist0/train-images-idx3-ubyte"
idx_images 0 28 28 > "$dir/mnist0/test-images-idx3-ubyte"; idx_labels 0 > "$dir/mnist0/test-labels-idx1-ubyte"
cp "$dir/mnist0/test-"* "$dir/mnist32/"
expect 1 "expected 28 x 28 images, got 32 x 32" -- "$build/lab02" --mnist "$dir/mnist32" --epochs 1 --out "$dir/lab02"
expect 1 "test-*: holds no images" -- "$build/lab02" --mnist "$dir/mnist0" --epochs 1 --out "$dir/lab02"
expect 2 "--epochs expects an integer in [1, 200]" -- "$build/lab02" --epochs 2.5

# --- rag: pages that are missing, binary or empty; databases that are absent, foreign or damaged
mkdir -p "$dir/docs/sub"
printf '# Page\n\nSome text about CORS.\n' > "$dir/docs/sub/a.md"
printf 'binary\0page' > "$dir/docs/bin.md"
: > "$dir/docs/empty.md"
printf '1\tsub/a.md\n2\tbin.md\n3\tempty.md\n' > "$dir/docs/MANIFEST.tsv"
printf '1\tsub/a.md\n2\tgone.md\n' > "$dir/missing.tsv"
expect 1 "missing.tsv:2 lists gone.md, which cannot be read" -- \
  "$build/rag" index --docs "$dir/docs" --manifest "$dir/missing.tsv" --db "$dir/rag.db"
[ ! -e "$dir/rag.db" ] || { echo "FAIL: a failed index left $dir/rag.db"; failures=$((failures + 1)); }
expect 0 "skipped bin.md: binary (a NUL byte on line 1)" -- "$build/rag" index --docs "$dir/docs" --db "$dir/rag.db" \
  --no-embed
grep -qF "empty.md has no text" "$dir/stderr" || { echo "FAIL: the empty page is not reported"; failures=$((failures + 1)); }
expect 0 "sub/a.md" -- "$build/rag" query "cors?" --db "$dir/rag.db"
expect 1 "no index there (make one with: rag index" -- "$build/rag" query "cors" --db "$dir/none.db"
printf 'SQLite format 3\0 but nothing after the header' > "$dir/bad.db"
expect 1 "bad.db: not a gradlab index" -- "$build/rag" query "cors" --db "$dir/bad.db"
expect 1 "--method must be bm25, fts5, dense, hybrid or rerank, got 'sparse'" -- \
  "$build/rag" query "cors" --db "$dir/rag.db" --method sparse
printf '{"id": "q1", "question": "cors", "relevant": ["nowhere.md"]}\n' > "$dir/gold.jsonl"
expect 1 "gold.jsonl:1: relevant page 'nowhere.md' is not in the index" -- \
  "$build/rag" eval --gold "$dir/gold.jsonl" --db "$dir/rag.db"
printf '{"id": "q1", "question": 5}\n' > "$dir/gold2.jsonl"
expect 1 "gold2.jsonl:1: needs {\"question\": text" -- "$build/rag" eval --gold "$dir/gold2.jsonl" --db "$dir/rag.db"

expect 0 "[1] sub/a.md" -- "$build/rag" ask "what about cors" --db "$dir/rag.db" --method bm25
expect 2 "--min-cosine expects a number in [-1, 1]" -- "$build/rag" ask "cors" --db "$dir/rag.db" --min-cosine 2
expect 1 "has no embeddings" -- "$build/rag" ask "cors" --db "$dir/rag.db" --method dense
expect 1 "has no HNSW graph" -- "$build/rag" query "cors" --db "$dir/rag.db" --ann 16
expect 1 "has no embeddings" -- "$build/rag" query "cors" --db "$dir/rag.db" --method rerank
expect 1 "--method: 'bm25,,fts5' is not a list of methods" -- \
  "$build/rag" eval --gold "$dir/gold2.jsonl" --db "$dir/rag.db" --method bm25,,fts5
expect 1 "--method must be bm25, fts5, dense, hybrid or rerank, got 'bm26'" -- \
  "$build/rag" eval --gold "$dir/gold2.jsonl" --db "$dir/rag.db" --method bm25,bm26
printf '{"id": "a", "question": "what about cors", "relevant": ["sub/a.md"]}\n\n' > "$dir/gold3.jsonl"
expect 0 "1 questions: 1 answered from the docs, 1 cite a relevant page" -- \
  "$build/rag" ask --gold "$dir/gold3.jsonl" --db "$dir/rag.db" --method bm25
expect 1 "a question or --gold FILE, not both" -- "$build/rag" ask "cors" --gold "$dir/gold3.jsonl" --db "$dir/rag.db"
expect 1 "missing.gguf" -- "$build/rag" ask "cors" --db "$dir/rag.db" --method bm25 --generate --generator "$dir/missing.gguf"
expect 0 "wrote $dir/eval.png" -- "$build/rag" eval --gold "$dir/gold3.jsonl" --db "$dir/rag.db" --plot "$dir/eval.png"
expect 1 "cannot create a file beside" -- "$build/rag" eval --gold "$dir/gold3.jsonl" --db "$dir/rag.db" --plot "$dir/nodir/x.png"

[ "$failures" -eq 0 ] || { echo "hostile_programs: $failures case(s) failed"; exit 1; }
echo "hostile_programs: all cases refused clearly"
