#!/usr/bin/env bash
# Data-parallel training under Open MPI (make MPI=1 test-dist): 2 ranks against 1 process that accumulates 2
# micro-batches (bit for bit: checkpoint and loss log), with dropout too, resume at 2 ranks and across rank
# counts, ZeRO-1, the difference to a plain double batch (printed, not asserted), and a killed rank ending the job.
set -uo pipefail
mpi=${1:-build/mpi/train}
single=${2:-build/train}
dir=out/test/dist
rm -rf "$dir" && mkdir -p "$dir"
run=(mpirun --allow-run-as-root --oversubscribe -np 2)
common=(--data data/tinyshakespeare/input.txt --n-layer 2 --n-head 2 --n-embd 32 --block-size 32 --batch 8
        --eval-interval 10 --eval-batches 3 --final-eval-batches 2 --sample 0 --threads 1 --quiet)
failures=0
same() { # A B WHAT
  if cmp -s "$1" "$2"; then echo "ok: $3"; else echo "FAIL: $3 ($1 and $2 differ)"; failures=$((failures + 1)); fi
}

# 1. 2 ranks x 4 rows == 1 process, batch 8 as 2 micro-batches of 4: 20 steps
"$single" "${common[@]}" --steps 20 --grad-accum 2 --out "$dir/one.ckpt" --loss-log "$dir/one.log" > "$dir/one.out"
"${run[@]}" "$mpi" "${common[@]}" --steps 20 --out "$dir/two.ckpt" --loss-log "$dir/two.log" > "$dir/two.out" 2>&1
same "$dir/one.ckpt" "$dir/two.ckpt" "2 ranks give the checkpoint of --grad-accum 2 on one process, bit for bit"
same "$dir/one.log" "$dir/two.log" "... and the same loss log"
grep -h 'final val loss' "$dir/one.out" > "$dir/one.val"; grep -h 'final val loss' "$dir/two.out" > "$dir/two.val"
same "$dir/one.val" "$dir/two.val" "... and the same evaluation (batches shared between the ranks)"

# 2. the same with dropout (each micro-batch's masks from its own stream)
"$single" "${common[@]}" --steps 10 --dropout 0.1 --grad-accum 2 --out "$dir/d1.ckpt" > /dev/null
"${run[@]}" "$mpi" "${common[@]}" --steps 10 --dropout 0.1 --out "$dir/d2.ckpt" > /dev/null 2>&1
same "$dir/d1.ckpt" "$dir/d2.ckpt" "with dropout 0.1 too"

# 3. resume: 10 + 10 steps at 2 ranks, and a 2-rank checkpoint finished by one process
"${run[@]}" "$mpi" "${common[@]}" --steps 20 --stop-after 10 --out "$dir/r2.ckpt" --loss-log "$dir/r2.log" > /dev/null 2>&1
cp "$dir/r2.ckpt" "$dir/r1.ckpt"; cp "$dir/r2.log" "$dir/r1.log"
"${run[@]}" "$mpi" --data data/tinyshakespeare/input.txt --resume "$dir/r2.ckpt" --loss-log "$dir/r2.log" --threads 1 \
  --quiet --sample 0 --eval-interval 10 --eval-batches 3 --final-eval-batches 2 > /dev/null 2>&1
same "$dir/one.ckpt" "$dir/r2.ckpt" "10 steps, resume at 2 ranks, 10 more: the uninterrupted checkpoint"
same "$dir/one.log" "$dir/r2.log" "... and loss log"
"$single" --data data/tinyshakespeare/input.txt --resume "$dir/r1.ckpt" --grad-accum 2 --loss-log "$dir/r1.log" \
  --threads 1 --quiet --sample 0 --eval-interval 10 --eval-batches 3 --final-eval-batches 2 > /dev/null
same "$dir/one.ckpt" "$dir/r1.ckpt" "a 2-rank checkpoint resumed by one process with --grad-accum 2"

# 4. ZeRO-1: each rank keeps half the AdamW state and updates half the weights; the same bits as plain data
#    parallelism (hence as --grad-accum 2), and its checkpoints (state gathered) resume the same way
"${run[@]}" "$mpi" "${common[@]}" --steps 20 --zero 1 --out "$dir/z.ckpt" --loss-log "$dir/z.log" > "$dir/z.out" 2>&1
same "$dir/one.ckpt" "$dir/z.ckpt" "ZeRO-1 at 2 ranks gives the same checkpoint ($(grep -o 'state for [0-9]* of [0-9]* weights' "$dir/z.out"))"
same "$dir/one.log" "$dir/z.log" "... and loss log"
"${run[@]}" "$mpi" "${common[@]}" --steps 20 --stop-after 10 --zero 1 --out "$dir/zr.ckpt" > /dev/null 2>&1
"${run[@]}" "$mpi" --data data/tinyshakespeare/input.txt --resume "$dir/zr.ckpt" --zero 1 --threads 1 --quiet --sample 0 \
  --eval-interval 10 --eval-batches 3 --final-eval-batches 2 > /dev/null 2>&1
same "$dir/one.ckpt" "$dir/zr.ckpt" "ZeRO-1: 10 steps, resume, 10 more"

# 5. against a plain batch of 8 (one GEMM over 8 rows: other rounding), reported
"$single" "${common[@]}" --steps 20 --out "$dir/plain.ckpt" --loss-log "$dir/plain.log" > /dev/null
awk 'NR == FNR { a[$1] = $3; next } { d = $3 - a[$1]; if (d < 0) d = -d; if (d > m) m = d }
     END { printf "info: 2 ranks vs one plain batch of 8 rows: largest loss difference over 20 steps %.2g\n", m }' \
  "$dir/plain.log" "$dir/two.log"

# 6. misuse: a batch the ranks cannot split
if "${run[@]}" "$mpi" "${common[@]}" --batch 7 --steps 2 --out "$dir/x.ckpt" > /dev/null 2> "$dir/err"; then
  echo "FAIL: batch 7 on 2 ranks was accepted"; failures=$((failures + 1))
elif grep -q "must be divisible by 2 (2 ranks x --grad-accum 1)" "$dir/err"; then echo "ok: batch 7 on 2 ranks is refused with a message"
else echo "FAIL: batch 7 on 2 ranks: no clear message"; cat "$dir/err"; failures=$((failures + 1)); fi

# 7. a rank killed mid-run: the job ends (non-zero, within 60 s) instead of hanging
"${run[@]}" "$mpi" "${common[@]}" --steps 1000000 --out "$dir/k.ckpt" > /dev/null 2> "$dir/kill.err" & job=$!
victim=""
for _ in $(seq 200); do
  victim=$(for p in $(pgrep -f "$mpi"); do
             tr '\0' '\n' < /proc/$p/environ 2> /dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && echo "$p"; done | head -1)
  [ -n "$victim" ] && [ -e "$dir/k.ckpt.lock" ] && break
  sleep 0.05
done
sleep 0.5
kill -9 "$victim"
ended=0
for _ in $(seq 600); do kill -0 "$job" 2> /dev/null || { ended=1; break; }; sleep 0.1; done
if [ "$ended" -eq 1 ]; then
  wait "$job"; rc=$?
  if [ "$rc" -ne 0 ]; then echo "ok: killing rank 1 ended the job (exit $rc): $(grep -m1 -i 'signal\|abort\|fail' "$dir/kill.err")"
  else echo "FAIL: the job exited 0 after a rank was killed"; failures=$((failures + 1)); fi
else
  echo "FAIL: the job still runs 60 s after rank 1 was killed"; kill -9 "$job"; pkill -9 -f "$mpi"; failures=$((failures + 1))
fi

[ "$failures" -eq 0 ] || { echo "test-dist: $failures check(s) failed"; exit 1; }
echo "test-dist: all checks passed"
