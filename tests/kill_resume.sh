#!/usr/bin/env bash
# Fault injection: a training run killed with SIGKILL four times (checkpoints every 10 steps) and resumed each time
# must end bit for bit where an uninterrupted run ends: the same checkpoint bytes and the same loss log.
# The kills land when the run's loss log has passed 15%, 35%, 55% and 75% of the reference log's size (so they
# happen on any machine's speed), at whatever instruction the run is in by then.
# Usage: tests/kill_resume.sh [BUILD_DIR]   (make test runs it)
set -euo pipefail
build=${1:-build}
dir=out/test/kill_resume
rm -rf "$dir" && mkdir -p "$dir"
common=(--data data/tinyshakespeare/input.txt --threads 2 --quiet --eval-interval 500 --eval-batches 2
        --final-eval-batches 0 --sample 0 --ckpt-interval 10)
model=(--n-layer 2 --n-head 2 --n-embd 32 --block-size 32 --batch 4 --steps 3000)

"$build/train" "${common[@]}" "${model[@]}" --out "$dir/ref.ckpt" --loss-log "$dir/ref.log" --plot "$dir/ref.png" > /dev/null
full=$(stat -c %s "$dir/ref.log")

run() { # (exec: the background job is train itself, so the kill reaches it) the first start is fresh; every later one resumes the checkpoint the killed run left
  if [ -f "$dir/run.ckpt" ]; then
    exec "$build/train" "${common[@]}" --resume "$dir/run.ckpt" --loss-log "$dir/run.log" --plot "$dir/run.png" > /dev/null
  else
    exec "$build/train" "${common[@]}" "${model[@]}" --out "$dir/run.ckpt" --loss-log "$dir/run.log" --plot "$dir/run.png" > /dev/null
  fi
}

kills=0
for percent in 15 35 55 75; do
  run & pid=$!
  while kill -0 "$pid" 2> /dev/null && [ "$(stat -c %s "$dir/run.log" 2> /dev/null || echo 0)" -lt $((full * percent / 100)) ]; do
    sleep 0.01
  done
  if kill -9 "$pid" 2> /dev/null; then kills=$((kills + 1)); fi
  { wait "$pid" || true; } 2> /dev/null
done
(run) # the rest, uninterrupted

cmp "$dir/ref.ckpt" "$dir/run.ckpt" || { echo "kill_resume: checkpoints differ after $kills kills"; exit 1; }
cmp "$dir/ref.log" "$dir/run.log" || { echo "kill_resume: loss logs differ after $kills kills"; exit 1; }
if ls "$dir" | grep -q 'tmp-'; then echo "kill_resume: temporary files left behind:"; ls "$dir"; exit 1; fi
[ "$kills" -eq 4 ] || { echo "kill_resume: only $kills of 4 kills landed before the run ended"; exit 1; }
echo "kill_resume: 4 SIGKILLs during training; the resumed run's checkpoint and loss log equal an uninterrupted run's ($(wc -l < "$dir/ref.log") steps)"
