#!/usr/bin/env bash
# The crash test with ten seeds of random kill moments (each run: 7 SIGKILLs over a 300-email
# backlog, the witness on): every run must end with every customer acknowledged exactly once.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --test it --no-run >/dev/null 2>&1
for seed in $(seq 1 "${SEEDS:-10}"); do
    CRASH_SEED=$seed cargo test --locked --test it -- crash:: --nocapture 2>&1 | grep -E "crash test|test result"
done
