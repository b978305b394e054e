#!/usr/bin/env bash
# `terraform validate` of Terraform output directories, offline: the AWS provider comes from a
# filesystem mirror (KOPSRS_TF_PLUGINS, default /opt/tf-plugins), initialised once and shared
# by every directory, so each validation checks references, attribute names and block shapes
# against the real provider's schema without network access.
#
# Usage: terraform_validate.sh DIR...
# Prints `valid DIR` or `INVALID DIR` with Terraform's diagnostics; exits 1 when any directory
# is invalid, 3 when Terraform or the provider is not installed (callers report a skip).
set -euo pipefail

mirror=${KOPSRS_TF_PLUGINS:-/opt/tf-plugins}
if ! command -v terraform >/dev/null 2>&1; then
  echo "terraform is not installed" >&2
  exit 3
fi
if [ ! -d "$mirror/registry.terraform.io/hashicorp/aws" ]; then
  echo "no AWS provider under $mirror (set KOPSRS_TF_PLUGINS to a filesystem mirror)" >&2
  exit 3
fi

cache=${XDG_CACHE_HOME:-$HOME/.cache}/kopsrs/terraform-validate
mkdir -p "$cache"
cat >"$cache/terraformrc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/*/*"]
  }
  direct {
    exclude = ["registry.terraform.io/*/*"]
  }
}
EOF
export TF_CLI_CONFIG_FILE="$cache/terraformrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

# One init for all: every output needs only hashicorp/aws. Made in a scratch directory and
# renamed into place, so concurrent callers never see half an init.
if [ ! -d "$cache/init/.terraform" ]; then
  scratch=$(mktemp -d "$cache/init.XXXXXX")
  printf 'terraform {\n  required_providers {\n    aws = {\n      source = "hashicorp/aws"\n    }\n  }\n}\n' >"$scratch/main.tf"
  terraform -chdir="$scratch" init -backend=false -input=false -no-color >"$scratch/init.log" 2>&1 || {
    cat "$scratch/init.log" >&2
    exit 1
  }
  mv -T "$scratch" "$cache/init" 2>/dev/null || rm -rf "$scratch"
fi

validate_one() {
  local dir=$1 out linked=
  # A directory initialised by its user keeps its own providers.
  if [ ! -e "$dir/.terraform" ]; then
    ln -s "$cache/init/.terraform" "$dir/.terraform"
    cp "$cache/init/.terraform.lock.hcl" "$dir/.terraform.lock.hcl"
    linked=1
  fi
  if out=$(terraform -chdir="$dir" validate -no-color 2>&1); then
    echo "valid $dir"
  else
    printf 'INVALID %s\n%s\n' "$dir" "$out"
  fi
  if [ -n "$linked" ]; then
    rm -f "$dir/.terraform" "$dir/.terraform.lock.hcl"
  fi
}
export -f validate_one
export cache

# shellcheck disable=SC2016 # $1 is expanded by the inner bash
results=$(printf '%s\0' "$@" | xargs -0 -r -P "${KOPSRS_JOBS:-2}" -I{} bash -c 'validate_one "$1"' _ {})
echo "$results"
if grep -q '^INVALID ' <<<"$results"; then
  exit 1
fi
