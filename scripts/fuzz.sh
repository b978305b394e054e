#!/usr/bin/env bash
# Fuzzes kopsrs's parsers with libFuzzer (fuzz/fuzz_targets/*.rs) for a fixed time each,
# seeded with the repository's own files of that kind. Not part of CI: run it by hand and
# record the last lines in docs/benchmarks.md. Needs the nightly toolchain; installs
# cargo-fuzz when missing.
#
# usage: scripts/fuzz.sh [TARGET|all] [SECONDS]   (default: all, 300 s each)
#   targets: spec_decode templates jsonnet manifests_yaml channel pki
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
seconds="${2:-300}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/kopsrs/fuzz-target}"

# seeds TARGET FIND-ARGS...: copies the matching files of the repository into the corpus.
seeds() {
  local corpus=fuzz/corpus/$1
  shift
  mkdir -p "$corpus"
  find examples crates channels "$@" -size -64k -print0 2>/dev/null | while IFS= read -r -d '' f; do
    cp "$f" "$corpus/seed-$(sha256sum "$f" | cut -c1-16)"
  done
}

run() {
  local target=$1
  case $target in
    spec_decode | manifests_yaml | pki) seeds "$target" -name '*.yaml' ;;
    templates) seeds "$target" \( -name '*.tmpl' -o -name '*.j2' -o -name '*.yaml' \) ;;
    jsonnet) seeds "$target" \( -name '*.jsonnet' -o -name '*.libsonnet' \) ;;
    channel) seeds "$target" -path 'channels/*' -name '*.yaml' ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
  esac
  echo "== $target (${seconds}s)"
  cargo +nightly fuzz run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
}

if [ "$which" = all ]; then
  for target in spec_decode templates jsonnet manifests_yaml channel pki; do
    run "$target"
  done
else
  run "$which"
fi
