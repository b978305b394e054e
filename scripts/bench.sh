#!/usr/bin/env bash
# Benchmarks of the spec verbs (issue: each under 50 ms wall time). Prints medians as a
# Markdown table for docs/benchmarks.md. Uses the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kopsrs/target}"
cargo build --release --locked -p kopsrs >&2
kopsrs="$CARGO_TARGET_DIR/release/kopsrs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KOPS_STATE_STORE="file://$work/state"
for i in $(seq 1 100); do
  "$kopsrs" create cluster "c$i.example.com" --zones eu-west-1a,eu-west-1b,eu-west-1c --control-plane-count 3 >/dev/null 2>&1
done
runs=31
median() { # command...: prints the median wall time in ms over $runs runs
  python3 - "$runs" "$@" <<'PY'
import subprocess, sys, time, statistics
runs = int(sys.argv[1]); cmd = sys.argv[2:]
times = []
for _ in range(runs):
    t = time.perf_counter(); subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True); times.append((time.perf_counter() - t) * 1000)
print(f"{statistics.median(times):.1f} | {min(times):.1f} | {max(times):.1f}")
PY
}
echo "| command | median ms | min ms | max ms |"
echo "|---|---|---|---|"
echo "| \`get clusters\` (file://, 100 clusters) | $(median "$kopsrs" get clusters) |"
echo "| \`get clusters -o yaml\` (file://, 100 clusters) | $(median "$kopsrs" get clusters -o yaml) |"
echo "| \`create cluster --dry-run\` (3 zones, HA) | $(median "$kopsrs" create cluster bench.example.com --zones eu-west-1a,eu-west-1b,eu-west-1c --control-plane-count 3 --dry-run -o yaml) |"
echo "| \`get all c1.example.com --full\` | $(median "$kopsrs" get all c1.example.com --full -o yaml) |"
