#!/usr/bin/env bash
# Fuzzes the spec decoder (fuzz/fuzz_targets/spec_decode.rs) with libFuzzer for a fixed time,
# seeded with the repository's own specs. Not part of CI: run it by hand and record the last
# line in docs/benchmarks.md. Needs the nightly toolchain; installs cargo-fuzz when missing.
#
# usage: scripts/fuzz.sh [SECONDS]   (default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/kopsrs/fuzz-target}"
corpus=fuzz/corpus/spec_decode
mkdir -p "$corpus"
# Seeds: every spec the repository ships (examples, test fixtures).
find examples crates -name '*.yaml' -size -64k -print0 | while IFS= read -r -d '' f; do
  cp "$f" "$corpus/seed-$(sha256sum "$f" | cut -c1-16)"
done
cargo +nightly fuzz run --fuzz-dir fuzz spec_decode "$corpus" -- \
  -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
