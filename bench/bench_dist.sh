#!/usr/bin/env bash
# make bench-dist: data-parallel scaling of train on this machine. The default model (4 layers, 128 dims, block
# 64) with 12 rows per rank and 1 thread per rank: 1 rank, then 2 ranks (global batch 24) under mpirun, and for
# comparison one process with 2 threads on the batch of 24 and 2 ranks with ZeRO-1, alternately (A B C D A B C D ...:
# the machine's phases hit all of them), PAIRS times. Reports tokens/s, the scaling efficiency
# (2-rank tokens/s over twice the 1-rank figure; median of the pairwise ratios) and the time per step spent in
# collectives; writes out/bench/dist.json. Usage: bench_dist.sh [PAIRS] [STEPS]
set -euo pipefail
pairs=${1:-5}
steps=${2:-150}
mkdir -p out/bench/dist
common=(--data data/tinyshakespeare/input.txt --steps "$steps" --eval-interval 100000 --final-eval-batches 0 --sample 0
        --threads 1 --quiet)
one=(); two=(); comm=(); threads2=(); zero=()
field() { grep -o "$1" "$2" | grep -o '[0-9.]*' | head -1; }
for i in $(seq "$pairs"); do
  OMP_NUM_THREADS=1 build/mpi/train "${common[@]}" --batch 12 --out out/bench/dist/one.ckpt > out/bench/dist/one.txt
  mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 build/mpi/train "${common[@]}" --batch 24 \
    --out out/bench/dist/two.ckpt > out/bench/dist/two.txt 2>&1
  OMP_NUM_THREADS=2 build/mpi/train "${common[@]}" --threads 2 --batch 24 --out out/bench/dist/thr.ckpt > out/bench/dist/thr.txt
  mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS=1 build/mpi/train "${common[@]}" --batch 24 \
    --zero 1 --out out/bench/dist/zero.ckpt > out/bench/dist/zero.txt 2>&1
  zero+=("$(field '([0-9.]* tokens/s)' out/bench/dist/zero.txt)")
  one+=("$(field '([0-9.]* tokens/s)' out/bench/dist/one.txt)")
  threads2+=("$(field '([0-9.]* tokens/s)' out/bench/dist/thr.txt)")
  two+=("$(field '([0-9.]* tokens/s)' out/bench/dist/two.txt)")
  comm+=("$(field '[0-9.]* ms per step' out/bench/dist/two.txt)")
  echo "round $i: 1 rank ${one[-1]} tokens/s, 2 ranks ${two[-1]} tokens/s (collectives ${comm[-1]} ms per step), 1 process x 2 threads ${threads2[-1]} tokens/s, 2 ranks ZeRO-1 ${zero[-1]} tokens/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
effs=(); for i in "${!one[@]}"; do effs+=("$(awk -v a="${one[$i]}" -v b="${two[$i]}" 'BEGIN { print b / (2 * a) }')"); done
m1=$(median "${one[@]}"); m2=$(median "${two[@]}"); mt=$(median "${threads2[@]}"); mz=$(median "${zero[@]}"); me=$(median "${effs[@]}"); mc=$(median "${comm[@]}")
step_ms=$(awk -v t="$m2" 'BEGIN { print 24 * 64 / t * 1e3 }')
floats=$(grep -o '[0-9]* gradient floats' out/bench/dist/two.txt | grep -o '^[0-9]*')
printf '\n| ranks | threads each | global batch | tokens/s (median of %d) |\n|---|---|---|---|\n' "$pairs"
printf '| 1 | 1 | 12 | %s |\n| 2 | 1 | 24 | %s |\n| 1 | 2 | 24 | %s |\n| 2, ZeRO-1 | 1 | 24 | %s |\n' "$m1" "$m2" "$mt" "$mz"
printf '\nscaling efficiency (2-rank tokens/s / (2 x 1-rank)), median of pairwise ratios: %.3f\n' "$me"
printf 'collectives: %s ms of a %.1f ms step (%s gradient floats all-reduced per step, Open MPI on loopback;\n' "$mc" "$step_ms" "$floats"
printf '  the time includes waiting for the slower rank at each exchange)\n' 
cat > out/bench/dist.json.tmp <<JSON
{
  "model": "4 layers, 4 heads, 128 dims, block 64 (train's defaults)",
  "steps": $steps,
  "pairs": $pairs,
  "one_rank_tokens_per_s": [$(IFS=,; echo "${one[*]}")],
  "two_ranks_tokens_per_s": [$(IFS=,; echo "${two[*]}")],
  "collective_ms_per_step": [$(IFS=,; echo "${comm[*]}")],
  "one_process_two_threads_tokens_per_s": [$(IFS=,; echo "${threads2[*]}")],
  "median_one_process_two_threads_tokens_per_s": $mt,
  "two_ranks_zero1_tokens_per_s": [$(IFS=,; echo "${zero[*]}")],
  "median_two_ranks_zero1_tokens_per_s": $mz,
  "median_one_rank_tokens_per_s": $m1,
  "median_two_ranks_tokens_per_s": $m2,
  "median_scaling_efficiency": $me,
  "median_collective_ms_per_step": $mc,
  "gradient_floats": $floats
}
JSON
mv out/bench/dist.json.tmp out/bench/dist.json
echo "wrote out/bench/dist.json"
