#!/usr/bin/env bash
# Benchmarks of the direct AWS target against moto with a counting, latency-injecting layer
# (scripts/moto_server.py): no-op plan calls and wall time by instance groups, HA apply
# against its critical path. Prints Markdown tables for docs/benchmarks.md.
# Uses the debug build the tests use: wall time here is AWS latency and round trips.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kopsrs/target}"
cargo build --locked --workspace >&2
python3 scripts/bench_aws.py "$CARGO_TARGET_DIR/debug/kopsrs"
