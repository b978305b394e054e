#!/usr/bin/env bash
# Builds kopsrs (or uses KOPSRS_BIN) and runs the main job: on the embedded default state store (a directory
# under the user's data directory) a cluster spec is created, listed and completed, and its
# Terraform written (no AWS access needed); then, against the local AWS API (moto on
# 127.0.0.1, installed when missing), a cluster is planned, applied, re-planned with no
# changes and deleted.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kopsrs/target}"
step() { printf '\n==> %s\n' "$*"; }

# KOPSRS_BIN: a kopsrs already built (the demo then builds nothing).
if [ -n "${KOPSRS_BIN:-}" ]; then
  kopsrs=$KOPSRS_BIN
  [ -x "$kopsrs" ] || { echo "KOPSRS_BIN=$kopsrs is not an executable" >&2; exit 2; }
else
  step "Build (release)"
  cargo build --release --locked -p kopsrs
  kopsrs="$CARGO_TARGET_DIR/release/kopsrs"
fi
name="${1:-demo.example.com}"

step "Create $name in the default state store (HA control plane, private topology, bastion)"
"$kopsrs" delete cluster "$name" --unregister --yes >/dev/null 2>&1 || true
"$kopsrs" create cluster "$name" --zones eu-west-1a,eu-west-1b,eu-west-1c --control-plane-count 3 --topology private --bastion
step "List clusters and instance groups"
"$kopsrs" get clusters
"$kopsrs" get instancegroups --name "$name"
step "The completed spec"
"$kopsrs" get all "$name" --full -o yaml
step "Terraform output in out/terraform"
"$kopsrs" update cluster "$name" --target terraform --out out/terraform
step "The CAs the first update made"
"$kopsrs" get keypairs --name "$name"
if command -v terraform >/dev/null 2>&1; then
  step "terraform fmt and validate"
  terraform fmt -check -recursive out/terraform && echo "terraform fmt: clean"
  # Against the AWS provider's schema, offline (skipped when the provider is not installed).
  bash scripts/terraform_validate.sh out/terraform || [ $? -eq 3 ]
fi

step "The local AWS API: moto_server on 127.0.0.1"
bash scripts/ensure_moto.sh
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 scripts/moto_server.py -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1
unset AWS_PROFILE
for _ in $(seq 50); do curl -s -o /dev/null "$AWS_ENDPOINT_URL" && break; sleep 0.2; done
python3 -c "
import boto3
boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL', region_name='eu-west-1').create_bucket(Bucket='demo-state', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})
boto3.client('route53', endpoint_url='$AWS_ENDPOINT_URL', region_name='us-east-1').create_hosted_zone(Name='example.com', CallerReference='demo')"
export KOPS_STATE_STORE=s3://demo-state/clusters
# moto's account owns the bucket: named here, so the demo writes nothing to the record of
# bucket owners in your configuration directory (docs/security.md).
export KOPS_STATE_STORE_OWNER=123456789012
aws_name="local.example.com"
step "Create $aws_name in s3://demo-state (moto has Ubuntu 16.04 images, not the default 24.04 one)"
"$kopsrs" create cluster "$aws_name" --zones eu-west-1a --dns-zone example.com \
  --image 099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721
step "Plan (dry run; nothing changes)"
"$kopsrs" update cluster "$aws_name" | grep -E '^(Plan:|  # aws_vpc)'
step "Apply"
KUBECONFIG="$(mktemp)" "$kopsrs" update cluster "$aws_name" --yes
step "Plan again: no changes"
"$kopsrs" update cluster "$aws_name"
step "Instances of each group"
"$kopsrs" get instances "$aws_name"
step "Delete everything the cluster owns"
"$kopsrs" delete cluster "$aws_name" --yes
