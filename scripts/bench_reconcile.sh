#!/usr/bin/env bash
# Benchmark of reconcile cluster after upgrade cluster (an HA cluster, two node groups of 6)
# against moto and scripts/fake_kube.py: wall time against the ideal, calls per round. Prints
# Markdown for docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kopsrs/target}"
# The whole workspace, as the tests build it: `-p kopsrs` alone unifies features differently
# and rebuilds the AWS SDK.
cargo build --locked --workspace --all-targets >&2
python3 scripts/bench_reconcile.py "$CARGO_TARGET_DIR/debug/kopsrs"
