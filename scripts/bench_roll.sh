#!/usr/bin/env bash
# Benchmarks of rolling-update cluster against moto and scripts/fake_kube.py: roll wall time
# at 3, 12 and 48 nodes and maxSurge 1, 3, 25% against the ideal, and the API calls of one
# validation pass. Prints Markdown tables for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kopsrs/target}"
# The whole workspace, as the tests build it: `-p kopsrs` alone unifies features differently
# and rebuilds the AWS SDK.
cargo build --locked --workspace --all-targets >&2
python3 scripts/bench_roll.py "$CARGO_TARGET_DIR/debug/kopsrs" "$@"
