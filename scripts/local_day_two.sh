#!/usr/bin/env bash
# Day two on a laptop: the local AWS API (moto_server on 127.0.0.1) and a stand-in Kubernetes
# API (scripts/fake_kube.py, whose Nodes are the instances moto runs, Ready a few seconds after
# they start, with simulated etcd pods) started together; a cluster created and applied to
# them; the environment printed. From another shell, with that environment, `validate
# cluster`, `rolling-update cluster`, `reconcile cluster` and `get instances` run as against
# AWS. Ctrl-C stops both APIs. Nothing leaves 127.0.0.1.
#
# Usage: scripts/local_day_two.sh [CLUSTER] [--validate-once]
#   CLUSTER           default local.example.com (three control planes, two nodes)
#   --validate-once   validate the cluster once and stop (what the tests run)
#   KOPSRS_BIN=PATH   a kopsrs binary to use (else it is built, release)
set -euo pipefail
cd "$(dirname "$0")/.."
name=local.example.com
once=false
for arg in "$@"; do
  case $arg in
    --validate-once) once=true ;;
    -*) echo "unknown flag $arg (usage: scripts/local_day_two.sh [CLUSTER] [--validate-once])" >&2; exit 2 ;;
    *) name=$arg ;;
  esac
done
kopsrs=${KOPSRS_BIN:-}
if [ -z "$kopsrs" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kopsrs/target}"
  cargo build --release --locked -p kopsrs >&2
  kopsrs="$CARGO_TARGET_DIR/release/kopsrs"
fi

bash scripts/ensure_moto.sh >&2
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
python3 scripts/moto_server.py -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
pids=($!)
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1
unset AWS_PROFILE
for _ in $(seq 100); do curl -s -o /dev/null "$AWS_ENDPOINT_URL" && break; sleep 0.2; done
python3 -c "
import boto3
boto3.client('s3', endpoint_url='$AWS_ENDPOINT_URL', region_name='eu-west-1').create_bucket(Bucket='local-state', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})
boto3.client('route53', endpoint_url='$AWS_ENDPOINT_URL', region_name='us-east-1').create_hosted_zone(Name='example.com', CallerReference='local')"
export KOPS_STATE_STORE=s3://local-state/clusters
# moto's account owns the bucket: named here, so nothing is written to the record of bucket
# owners in your configuration directory (docs/security.md).
export KOPS_STATE_STORE_OWNER=123456789012
export KUBECONFIG="$work/kubeconfig"

echo "==> creating and applying $name (moto has Ubuntu 16.04 images, not the default 24.04 one)" >&2
"$kopsrs" create cluster "$name" --zones eu-west-1a,eu-west-1b,eu-west-1c --control-plane-count 3 \
  --node-count 2 --dns-zone example.com \
  --image 099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721 >&2
"$kopsrs" update cluster "$name" --yes --summary --create-kube-config=false >&2

python3 scripts/fake_kube.py -p 0 --port-file "$work/kube-port" --cluster "$name" \
  --aws-endpoint "$AWS_ENDPOINT_URL" --region eu-west-1 --ready-after 2 >"$work/kube.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/kube-port" ] && break; sleep 0.1; done
[ -s "$work/kube-port" ] || { cat "$work/kube.log" >&2; echo "the fake Kubernetes API did not start" >&2; exit 1; }
kube="http://127.0.0.1:$(cat "$work/kube-port")"
cat >"$KUBECONFIG" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster: {server: "$kube"}
users:
- name: $name
  user: {}
contexts:
- name: $name
  context: {cluster: $name, user: $name}
current-context: $name
EOF

if [ "$once" = true ]; then
  "$kopsrs" validate cluster "$name" --wait 2m --interval 1s
  exit
fi

cat <<EOF

The local AWS API and the stand-in Kubernetes API run. In another shell:

export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1
export KOPS_STATE_STORE=$KOPS_STATE_STORE KOPS_STATE_STORE_OWNER=$KOPS_STATE_STORE_OWNER
export KUBECONFIG=$KUBECONFIG
$kopsrs validate cluster $name --wait 2m
$kopsrs get instances --name $name
$kopsrs edit ig nodes-eu-west-1a --name $name --set spec.machineType=m6i.large && $kopsrs update cluster $name --yes
$kopsrs rolling-update cluster $name --yes
$kopsrs upgrade cluster $name --yes && $kopsrs reconcile cluster $name --yes

The fake's control paths (etcd members, node conditions, static pods) are in scripts/fake_kube.py.
Ctrl-C stops both APIs and removes $work.
EOF
wait
