# --- kopsrs fetcher (settings above are rendered per Karpenter-managed instance group) ---
# Karpenter hands an EC2NodeClass's userData to EC2 as it is, and EC2 takes 16 KB; the
# group's bootstrap script is larger (its gzip is what launch templates carry), so this
# reads it from the state store with the instance role, checks it against the sha256 above
# and runs it. A new script is a new sha256, so a new userData: Karpenter's drift handling
# replaces the nodes.
set -euo pipefail
umask 022
# KOPSRS_* variables only serve the tests: a root directory and a fake metadata service.
ROOT="${KOPSRS_ROOT:-}"
IMDS="${KOPSRS_IMDS_URL:-http://169.254.169.254}"

log() { echo "kopsrs-fetch: $*" >&2; }

imds() {
  local token
  token=$(curl -sSf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token")
  curl -sSf -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/$1"
}

json_get() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# fetch FILE: the script, signed with the instance role's session (SigV4); the credentials
# reach curl on stdin, never on a command line other users can read.
fetch() {
  local role doc region owner=()
  role=$(imds meta-data/iam/security-credentials/ | head -n1)
  doc=$(imds "meta-data/iam/security-credentials/$role")
  region=$STATE_REGION
  if [ -z "$region" ]; then
    region=$(curl -sSI "$STATE_URL/" | tr -d '\r' | awk 'tolower($1)=="x-amz-bucket-region:" {print $2}')
    region=${region:-$REGION}
  fi
  [ -z "$STATE_OWNER" ] || owner=(-H "x-amz-expected-bucket-owner: $STATE_OWNER")
  printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' \
    "$(json_get AccessKeyId <<<"$doc")" "$(json_get SecretAccessKey <<<"$doc")" "$(json_get Token <<<"$doc")" |
    curl -sSf --config - --aws-sigv4 "aws:amz:$region:s3" \
      -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "${owner[@]}" -o "$1" "$STATE_URL/$SCRIPT_KEY"
}

mkdir -p "$ROOT/var/lib/kopsrs"
script="$ROOT/var/lib/kopsrs/bootstrap.sh"
tries=${KOPSRS_FETCH_TRIES:-30}
for i in $(seq 1 "$tries"); do
  fetch "$script" && break
  [ "$i" = "$tries" ] && { log "error: cannot read $SCRIPT_KEY of $CLUSTER_NAME from the state store"; exit 1; }
  sleep "${KOPSRS_POLL_SECONDS:-10}"
done
if ! echo "$SCRIPT_SHA256  $script" | sha256sum -c --quiet - >/dev/null 2>&1; then
  log "error: $SCRIPT_KEY does not match its sha256 $SCRIPT_SHA256: refused (a newer EC2NodeClass replaces this node)"
  exit 1
fi
chmod 0700 "$script"
log "running $SCRIPT_KEY of instance group $GROUP ($SCRIPT_SHA256)"
exec bash "$script" "$@"
