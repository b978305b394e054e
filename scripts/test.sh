#!/usr/bin/env bash
# Runs every test: installs what the tests need (moto_server), builds, runs the Rust tests,
# then the conformance run against kops's cases when ../shared is beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kopsrs/target}"
# Test binaries in the shared target dir may have been built by a clone at another path;
# insta must look for snapshots in this one.
export INSTA_WORKSPACE_ROOT="$PWD"

bash scripts/ensure_moto.sh
# The C++ jsonnet (PyPI wheel), the reference `kopsrs jsonnet` output is compared with
# (tests/jsonnet.rs, scripts/cpp_jsonnet.py).
if ! python3 -c 'import _jsonnet' >/dev/null 2>&1; then
  echo "installing jsonnet (the C++ library's wheel: the reference for kopsrs jsonnet)" >&2
  python3 -m pip install --quiet 'jsonnet==0.22.0'
fi

# shellcheck checks every rendered user-data script (tests/bootstrap.rs); Debian's package.
if ! command -v shellcheck >/dev/null 2>&1; then
  echo "installing shellcheck (checks the rendered node user-data)" >&2
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get install -y -q shellcheck >/dev/null 2>&1 ||
    { $sudo_cmd apt-get update -q >/dev/null && $sudo_cmd apt-get install -y -q shellcheck >/dev/null; }
fi
# Debian's docker-registry: two local registries for the image copy tests (crates/kopsrs-registry).
bash scripts/ensure_registry.sh

# No circle of files within a crate (the layering docs/architecture.md describes).
python3 scripts/check_layers.py

cargo build --workspace --all-targets --locked
# Lints: clippy's defaults, no warnings allowed.
cargo clippy --workspace --all-targets --locked -- -D warnings
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# The fake Kubernetes API server (scripts/fake_kube.py), proven against the real kubectl
# before the Rust tests trust it.
python3 -m unittest discover -s scripts/tests

if [ -d ../shared/conformance/kops/create_cluster ]; then
  cargo xtask conformance-create --min 95
  cargo xtask conformance-terraform --min-recall 95 --min-precision 90 --min-agreement 90 --validate | grep -E "^(Overall|Outputs|terraform validate)"
else
  echo "../shared/conformance not found: conformance run skipped" >&2
fi
