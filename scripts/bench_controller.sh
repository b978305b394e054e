#!/usr/bin/env bash
# Benchmark of `kopsrs controller run` with fleets of clusters (default sizes 1 and 10)
# against moto and scripts/fake_kube.py. Prints Markdown for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kopsrs/target}"
# The whole workspace, as the tests build it: `-p kopsrs` alone unifies features differently
# and rebuilds the AWS SDK.
cargo build --locked --workspace --all-targets >&2
python3 scripts/bench_controller.py "$CARGO_TARGET_DIR/debug/kopsrs" "$@"
