#!/usr/bin/env bash
# Exercise mode both ways: the solutions pass every lab check here; a learner's copy with the solutions taken out
# (tools/exercise.py) compiles with warnings as errors, and there every check of every lab fails -- each check can
# fail. Usage: bash tests/exercise_mode.sh (from the project root; writes exercise/, ignored by git).
set -euo pipefail
labs=$(sed -n 's/^EXERCISE_LABS := //p' Makefile)
echo "== the solutions: make check-labs (labs $labs)"
make --no-print-directory check-labs
echo "== a learner's copy without the solutions"
python3 tools/exercise.py write $labs --dest exercise
cd exercise
make --no-print-directory -j2 build/tests/test_lab01 build/tests/test_lab02 build/tests/test_lab04 build/tests/test_preference build/tests/test_rag build/tests/test_tokenizer \
  build/tests/test_lora build/tests/test_word2vec build/tests/test_grad build/tests/test_grammar build/tests/test_guard build/tests/test_assistant build/lab02 build/lab03 build/lab04 build/lab01 build/lab05 \
  build/lab06 build/lab07 build/lab09 build/lab10 build/lab11 > build.log 2>&1 || {
  echo "FAIL: the learner's copy does not compile:"; tail -20 build.log; exit 1; }
failures=0
for lab in $labs; do
  if make --no-print-directory check-lab$lab > check.log 2>&1; then
    echo "FAIL: check-lab$lab passes without its solutions"; failures=$((failures + 1))
  elif ! grep -q "^lab $lab: 0 passed" check.log; then
    echo "FAIL: some checks of lab $lab pass without their solutions:"; grep -E "^  (ok|FAIL)" check.log
    failures=$((failures + 1))
  else
    echo "ok: every check of lab $lab fails without its solutions ($(grep -c '^  FAIL' check.log) checks)"
    grep -m1 "not implemented" check.log | sed 's/^ */    /'
  fi
done
[ "$failures" -eq 0 ] || exit 1
echo "exercise mode: the checks pass with the solutions and fail without them"
