# --- kopsrs node bootstrap (settings above are rendered per instance group) ---
# Turns a stock Ubuntu 24.04 instance into a Kubernetes node with kubeadm. Safe to rerun.
# The same file is installed as /usr/local/sbin/kopsrs-node for the control plane's timers:
#   kopsrs-node [boot|refresh-token|apply-addons|backup-etcd|restore-etcd|approve-nodes]
set -euo pipefail
umask 022
# KOPSRS_* variables only serve the tests: a root directory, a fake metadata service and a
# local package repository.
ROOT="${KOPSRS_ROOT:-}"
IMDS="${KOPSRS_IMDS_URL:-http://169.254.169.254}"
APT_REPO="${KOPSRS_K8S_APT_REPO:-$K8S_APT_REPO}"
STATE="$ROOT/var/lib/kopsrs"
ADMIN="$ROOT/etc/kubernetes/admin.conf"
export KOPSRS_ROOT="$ROOT"

log() { echo "kopsrs-node: $*" >&2; }
# Seconds since the epoch (KOPSRS_NOW: the tests' clock).
now() { echo "${KOPSRS_NOW:-$(date -u +%s)}"; }
# Where the etcd backups and the restore command live in the cluster's folder.
BACKUPS=backups/etcd/main
die() { log "error: $*"; exit 1; }

imds() {
  local token
  token=$(curl -sSf -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' "$IMDS/latest/api/token")
  curl -sSf -H "X-aws-ec2-metadata-token: $token" "$IMDS/latest/$1"
}

json_get() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# Signs a request with the instance role's credentials (SigV4, IMDSv2). A state-store request
# names the bucket's owner (signed, as S3 requires of x-amz-* headers): S3 refuses a bucket
# another account owns.
aws_call() {
  local service=$1 region=$2 url=$3 role doc
  local owner=()
  shift 3
  if [ "$service" = s3 ] && [ -n "$STATE_OWNER" ]; then
    owner=(-H "x-amz-expected-bucket-owner: $STATE_OWNER")
  fi
  role=$(imds meta-data/iam/security-credentials/ | head -n1)
  doc=$(imds "meta-data/iam/security-credentials/$role")
  # The credentials reach curl as a config on stdin (printf is a shell builtin): a command
  # line is readable by every user of the machine (ps, /proc/PID/cmdline).
  printf 'user = "%s:%s"\nheader = "x-amz-security-token: %s"\n' \
    "$(json_get AccessKeyId <<<"$doc")" "$(json_get SecretAccessKey <<<"$doc")" "$(json_get Token <<<"$doc")" |
    curl -sS --config - --aws-sigv4 "aws:amz:$region:$service" \
      -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "${owner[@]}" "$@" "$url"
}

state_region() {
  if [ -z "$STATE_REGION" ]; then
    STATE_REGION=$(curl -sSI "$STATE_URL/" | tr -d '\r' | awk 'tolower($1)=="x-amz-bucket-region:" {print $2}')
    STATE_REGION="${STATE_REGION:-$REGION}"
  fi
  echo "$STATE_REGION"
}

# state_get_etag KEY FILE: fetches KEY into FILE and prints its ETag; 1 when absent (or not
# readable yet); dies otherwise.
state_get_etag() {
  local code headers
  headers=$(mktemp)
  code=$(aws_call s3 "$(state_region)" "$STATE_URL/$1" -o "$2" -D "$headers" -w '%{http_code}')
  case $code in
    200) tr -d '\r' <"$headers" | awk 'tolower($1)=="etag:" {print $2}'; rm -f "$headers" ;;
    403 | 404) rm -f "$2" "$headers"; return 1 ;;
    *) rm -f "$headers"; die "reading $1 from the state store: HTTP $code" ;;
  esac
}

# state_get KEY FILE: 0 when fetched, 1 when absent (or not readable yet), dies otherwise.
state_get() { state_get_etag "$@" >/dev/null; }

# state_put KEY FILE [curl args]: prints the HTTP status.
state_put() {
  local key=$1 file=$2
  shift 2
  aws_call s3 "$(state_region)" "$STATE_URL/$key" -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@$file" -o /dev/null -w '%{http_code}' "$@"
}

# ec2 QUERY: the response. A call the instance role may not make stops the boot with the
# reason, rather than read as "nothing found" and wait.
ec2() {
  local out
  out=$(aws_call ec2 "$REGION" "$EC2_URL/" --data "Version=2016-11-15&$1")
  case $out in
    *"<Code>UnauthorizedOperation</Code>"* | *"<Code>AccessDenied</Code>"* | *"<Code>AuthFailure</Code>"*)
      die "EC2 refused ${1%%&*} to this instance's role: $(sed -n 's:.*<Message>\(.*\)</Message>.*:\1:p' <<<"$out" | head -n1)" ;;
  esac
  printf '%s\n' "$out"
}

wait_for_state() {
  local i
  for i in $(seq 1 180); do
    state_get "$1" "$2" && return 0
    [ "$i" = 1 ] && log "waiting for $1 in the state store"
    sleep "${KOPSRS_POLL_SECONDS:-10}"
  done
  die "$1 did not appear in the state store in 30 minutes"
}

# keyset NAME FILE: writes the trusted certificates (primary first) to FILE.crt and, when
# FILE.key is wanted (private keyset), the primary's private key.
keyset() {
  python3 - "$@" <<'PY'
import base64, os, sys, yaml
os.umask(0o077)  # the private key is written owner-only from its first byte
doc = yaml.safe_load(open(sys.argv[1]))["spec"]
keys = {k["id"]: k for k in doc["keys"]}
primary = keys[doc["primaryID"]]
trusted = [primary] + [k for k in doc["keys"] if k is not primary and not k.get("distrustTimestamp")]
with open(sys.argv[2] + ".crt", "w") as f:
    f.write("".join(base64.b64decode(k["publicMaterial"]).decode() for k in trusted))
if len(sys.argv) > 3:
    with open(sys.argv[2] + ".key", "w") as f:
        f.write(base64.b64decode(primary["privateMaterial"]).decode())
PY
}

# containerd's default configuration on stdin, as kopsrs runs it on stdout: systemd cgroups,
# and under mirrored images (spec.assets) the mirror's pod sandbox image, as kubeadm's are
# (containerd 1.7 calls the setting sandbox_image, 2.x sandbox).
containerd_config() {
  local sandbox=()
  [ -z "$SANDBOX_IMAGE" ] || sandbox=(-e "s|^\([[:space:]]*sandbox\(_image\)*\) = .*|\1 = \"$SANDBOX_IMAGE\"|")
  sed -e 's/SystemdCgroup = false/SystemdCgroup = true/' "${sandbox[@]}"
}

install_packages() {
  local marker="$STATE/packages-$KUBERNETES_VERSION" v
  [ -e "$marker" ] && return 0
  mkdir -p "$ROOT/etc/modules-load.d" "$ROOT/etc/sysctl.d" "$ROOT/etc/apt/keyrings" "$ROOT/etc/apt/sources.list.d" "$ROOT/etc/containerd"
  printf 'overlay\nbr_netfilter\n' >"$ROOT/etc/modules-load.d/kopsrs.conf"
  modprobe overlay
  modprobe br_netfilter
  printf 'net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\nnet.bridge.bridge-nf-call-iptables = 1\nnet.bridge.bridge-nf-call-ip6tables = 1\nfs.inotify.max_user_instances = 8192\n' >"$ROOT/etc/sysctl.d/99-kopsrs.conf"
  sysctl --system >/dev/null
  swapoff -a
  curl -fsSL "$APT_REPO/Release.key" | gpg --batch --yes --dearmor -o "$ROOT/etc/apt/keyrings/kubernetes.gpg"
  echo "deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] $APT_REPO/ /" >"$ROOT/etc/apt/sources.list.d/kubernetes.list"
  apt-get update -q
  v=$(apt-cache madison kubeadm | awk -v want="$KUBERNETES_VERSION-" 'index($3, want) == 1 {print $3; exit}')
  [ -n "$v" ] || die "kubeadm $KUBERNETES_VERSION is not in $APT_REPO"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q containerd "kubelet=$v" "kubeadm=$v" "kubectl=$v"
  apt-mark hold containerd kubelet kubeadm kubectl
  containerd config default | containerd_config >"$ROOT/etc/containerd/config.toml"
  systemctl restart containerd
  systemctl enable kubelet
  mkdir -p "$STATE"
  touch "$marker"
}

instance_facts() {
  INSTANCE_ID=$(imds meta-data/instance-id)
  NODE_IP=$(imds meta-data/local-ipv4)
  NODE_NAME=$(imds meta-data/local-hostname)
  ZONE=$(imds meta-data/placement/availability-zone)
}

api_host() {
  if [ -n "$API_DNS_NAME" ]; then
    echo "$API_DNS_NAME"
  elif [ -n "$API_LB_NAME" ]; then
    aws_call elasticloadbalancing "$REGION" "$ELB_URL/" --data "Version=2015-12-01&Action=DescribeLoadBalancers&Names.member.1=$API_LB_NAME" |
      sed -n 's:.*<DNSName>\(.*\)</DNSName>.*:\1:p' | head -n1
  else
    echo "$NODE_IP"
  fi
}

# The etcd member's EBS volume of this zone, attached and mounted at /var/lib/etcd.
mount_etcd_volume() {
  local listing vol dev i
  [ -n "$ETCD_VOLUME_TAG" ] || return 0
  grep -qs " $ROOT/var/lib/etcd " /proc/mounts && return 0
  for i in $(seq 1 60); do
    listing=$(ec2 "Action=DescribeVolumes&Filter.1.Name=tag:KubernetesCluster&Filter.1.Value.1=$CLUSTER_NAME&Filter.2.Name=tag-key&Filter.2.Value.1=$ETCD_VOLUME_TAG&Filter.3.Name=availability-zone&Filter.3.Value.1=$ZONE")
    vol=$(python3 -c '
import sys, xml.etree.ElementTree as ET
me = sys.argv[1]; free = mine = ""
for v in ET.fromstring(sys.stdin.read()).iter():
    if not v.tag.endswith("}item") or v.find("{*}volumeId") is None: continue
    vid = v.find("{*}volumeId").text
    owners = [a.text for a in v.iter() if a.tag.endswith("}instanceId")]
    if me in owners: mine = vid
    elif v.find("{*}status").text == "available" and not free: free = vid
print(mine or ("+" + free if free else ""))' "$INSTANCE_ID" <<<"$listing")
    case $vol in
      +*) vol=${vol#+}; ec2 "Action=AttachVolume&VolumeId=$vol&InstanceId=$INSTANCE_ID&Device=/dev/xvdu" >/dev/null; break ;;
      vol-*) break ;;
    esac
    log "no free etcd volume in $ZONE yet (the replaced instance may still hold it)"
    sleep "${KOPSRS_POLL_SECONDS:-10}"
  done
  [ -n "$vol" ] || die "no etcd volume tagged $ETCD_VOLUME_TAG in $ZONE"
  for i in $(seq 1 60); do
    for dev in "$ROOT/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${vol/-/}" "$ROOT/dev/xvdu"; do
      [ -e "$dev" ] && break 2
    done
    sleep 2
  done
  [ -e "$dev" ] || die "volume $vol attached but no device appeared"
  blkid "$dev" >/dev/null || mkfs.ext4 -q -L etcd "$dev"
  mkdir -p "$ROOT/var/lib/etcd"
  mount "$dev" "$ROOT/var/lib/etcd"
}

# Whether the volume holds a replaced member's data.
etcd_data_on_volume() { [ -d "$ROOT/var/lib/etcd/data/member" ]; }

# Before joining: a replaced member's data is kept aside (etcd replaces members by remove +
# add; the new member syncs from the others; kubeadm wants an empty data directory).
ASIDE=""
set_aside_etcd_data() {
  if etcd_data_on_volume; then
    ASIDE="$ROOT/var/lib/etcd/replaced-$(now)"
    mv "$ROOT/var/lib/etcd/data" "$ASIDE"
  fi
}

# A join that failed puts the member's data back where it was: the cluster may be gone, and
# then that data is what it is recovered from.
put_back_etcd_data() {
  [ -n "$ASIDE" ] || return 0
  if [ -e "$ROOT/var/lib/etcd/data" ]; then
    mv "$ROOT/var/lib/etcd/data" "$ROOT/var/lib/etcd/failed-join-$(now)"
  fi
  mv "$ASIDE" "$ROOT/var/lib/etcd/data"
  ASIDE=""
}

place_pki() {
  local pki="$ROOT/etc/kubernetes/pki" tmp
  tmp=$(mktemp -d)
  mkdir -p "$pki/etcd"
  chmod 0700 "$pki"
  for ks in kubernetes-ca:ca etcd-ca:etcd/ca apiserver-aggregator-ca:front-proxy-ca service-account:sa; do
    state_get "pki/private/${ks%%:*}/keyset.yaml" "$tmp/ks" || die "keyset ${ks%%:*} is not in the state store; run kopsrs update cluster"
    keyset "$tmp/ks" "$pki/${ks#*:}" private
  done
  # Every trusted service-account key verifies tokens: those signed before a rotation too.
  awk -v dir="$tmp" '/BEGIN CERTIFICATE/ {n++} {print > (dir "/sa-" n ".pem")}' "$pki/sa.crt"
  : >"$pki/sa.pub"
  for ks in "$tmp"/sa-*.pem; do
    openssl x509 -in "$ks" -pubkey -noout >>"$pki/sa.pub"
  done
  rm -rf "$tmp" "$pki/sa.crt"
  chmod 0600 "$pki"/*.key "$pki"/etcd/*.key
}

ca_hash() {
  openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform der | sha256sum | awk '{print "sha256:" $1}'
}

render() { # template output
  # The output holds the join token: owner-only from creation (umask), not chmod after.
  (
    umask 077
    sed -e "s|@NODE_NAME@|$NODE_NAME|g" -e "s|@NODE_IP@|$NODE_IP|g" -e "s|@API_HOST@|$API_HOST|g" \
      -e "s|@JOIN_TOKEN@|${JOIN_TOKEN:-}|g" -e "s|@CA_HASH@|${CA_HASH:-}|g" "$1" >"$2"
  )
  chmod 0600 "$2"
}

# Whether the cluster's API answers at all (any HTTP status): a join token is only worth
# something while it does. KOPSRS_API_URL: the tests' API.
api_alive() {
  local code
  code=$(curl -sk --max-time 5 -o /dev/null -w '%{http_code}' "${KOPSRS_API_URL:-https://$API_HOST:6443}/livez" || true)
  [ "${code:-000}" != 000 ]
}

publish_token() {
  local file
  file=$(mktemp)
  echo "JOIN_TOKEN=$1" >"$file"
  [ "$(state_put bootstrap/node/join.env "$file")" = 200 ] || die "cannot publish the join token"
  rm -f "$file"
}

# A worker's join token is its own, bound to this instance: it writes a new token where only
# this instance's role can write (bootstrap/instances/ROLEID:INSTANCEID, IAM's
# ${aws:userid}, which STS reports), and a control plane makes it a bootstrap token whose
# certificates carry this instance's EC2 name and no other (approve_nodes). Workers cannot
# read the cluster's shared token.
request_node_token() {
  local userid file
  userid=$(aws_call sts "$REGION" "$STS_URL/" --data 'Action=GetCallerIdentity&Version=2011-06-15' | grep -o '<UserId>[^<]*' | cut -c9-)
  [[ $userid == *:"$INSTANCE_ID" ]] || die "STS names this instance's session '$userid', not ...:$INSTANCE_ID"
  JOIN_TOKEN=$(kubeadm token generate)
  file=$(mktemp)
  echo "JOIN_TOKEN=$JOIN_TOKEN" >"$file"
  [ "$(state_put "bootstrap/instances/${userid/:/%3A}" "$file")" = 200 ] || die "cannot write this instance's join-token request (bootstrap/instances/$userid)"
  rm -f "$file"
  log "asked the control plane for a join token bound to $INSTANCE_ID"
}

# state_list PREFIX: the keys under PREFIX in the cluster's folder, relative to the folder.
state_list() {
  local rest bucket folder
  rest=${STATE_URL#*://*/}
  bucket=${rest%%/*}
  folder=${rest#"$bucket"}
  folder="${folder#/}${folder:+/}"
  aws_call s3 "$(state_region)" "${STATE_URL%"/$rest"}/$bucket?list-type=2&prefix=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$folder$1")" |
    grep -o '<Key>[^<]*' | cut -c6- | while read -r key; do echo "${key#"$folder"}"; done
}

state_delete() { aws_call s3 "$(state_region)" "$STATE_URL/$1" -X DELETE -o /dev/null -w '%{http_code}'; }

# The EC2 name of a running instance of this cluster; 1 when there is none.
instance_name() {
  ec2 "Action=DescribeInstances&InstanceId.1=$1" | python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
for i in root.iter():
    if not i.tag.endswith("}item") or i.find("{*}instanceId") is None or i.find("{*}instanceState") is None:
        continue
    state = i.find("{*}instanceState/{*}name").text
    tags = {t.find("{*}key").text: t.find("{*}value").text for t in i.findall("{*}tagSet/{*}item")}
    name = i.find("{*}privateDnsName").text or ""
    if state in ("pending", "running") and tags.get("KubernetesCluster") == sys.argv[1] and name:
        print(name)
        sys.exit(0)
sys.exit(1)' "$CLUSTER_NAME"
}

# Control plane, every few seconds: each instance's join-token request becomes a bootstrap
# token (15 minutes, for that instance's EC2 name), and kubelet client certificates asked
# for with such a token are approved for that name only and denied for any other.
approve_nodes() {
  [ -e "$ADMIN" ] || return 0
  local tmp key instance token name
  tmp=$(mktemp -d)
  for key in $(state_list bootstrap/instances/); do
    key=${key//%3A/:}
    instance=${key##*:}
    got=0
    request_get "${key/:/%3A}" "$tmp/request" || got=$?
    [ "$got" = 1 ] && continue
    token=$(sed -n 's/^JOIN_TOKEN=//p' "$tmp/request" 2>/dev/null || true)
    if [ "$got" = 2 ]; then
      log "join-token request $key: over $REQUEST_MAX bytes, not a request; dropped"
    elif [[ ! $token =~ ^[a-z0-9]{6}\.[a-z0-9]{16}$ ]]; then
      log "join-token request $key: not a token; dropped"
    elif ! name=$(instance_name "$instance") || [[ ! $name =~ ^[a-z0-9.-]+$ ]]; then
      log "join-token request $key: $instance is no running instance of $CLUSTER_NAME; dropped"
    else
      issued=0
      issue_node_token "$token" "$instance" "$name" "$tmp/create.err" || issued=$?
      case $issued in
        0) log "join token for $instance, node $name" ;;
        1) log "join-token request $key: token ID ${token%%.*} is in use; dropped" ;;
        *)
          log "join-token request $key: the API refused the token ($(head -c 300 "$tmp/create.err")); kept for the next round"
          continue
          ;;
      esac
    fi
    state_delete "${key/:/%3A}" >/dev/null
  done
  approve_node_certificates "$tmp"
  rm -rf "$tmp"
}

NODE_GROUP=system:bootstrappers:kopsrs:nodes
# A request holds one line of 22 characters; anything much bigger is not one, and is never
# downloaded whole (every control plane reads the requests every few seconds).
REQUEST_MAX=1024

# request_get KEY FILE: a worker's join-token request. 0 fetched, 1 absent, 2 bigger than
# REQUEST_MAX (curl stops at the announced size; the size is checked again after).
request_get() {
  local code rc=0
  code=$(aws_call s3 "$(state_region)" "$STATE_URL/$1" -o "$2" -w '%{http_code}' --max-filesize "$REQUEST_MAX") || rc=$?
  # 63: curl's "maximum file size exceeded"; any other failure is the network's, and the
  # request stays for the next round.
  case $rc in
    0) ;;
    63) rm -f "$2"; return 2 ;;
    *) rm -f "$2"; die "reading $1 from the state store: curl exit $rc" ;;
  esac
  case $code in
    200) [ "$(wc -c <"$2")" -le "$REQUEST_MAX" ] || { rm -f "$2"; return 2; } ;;
    403 | 404) rm -f "$2"; return 1 ;;
    *) die "reading $1 from the state store: HTTP $code" ;;
  esac
}

# issue_node_token TOKEN INSTANCE NODE_NAME ERRFILE: the token, and what a joining kubelet
# may do with it (kubeadm grants the same to its own token's group). The Secret is created,
# never applied: a worker chooses its token's ID, and must not overwrite kubeadm's shared
# token or another worker's. 1 when the ID is in use, 2 when the API refused otherwise
# (ERRFILE says why).
issue_node_token() {
  local b kind
  {
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: bootstrap-token-%s\n  namespace: kube-system\n' "${1%%.*}"
    printf '  labels: {kopsrs.k8s.io/instance: "%s"}\n  annotations: {kopsrs.k8s.io/node-name: "%s"}\n' "$2" "$3"
    printf 'type: bootstrap.kubernetes.io/token\nstringData:\n  description: "kopsrs: join token of instance %s (node %s)"\n' "$2" "$3"
    printf '  token-id: "%s"\n  token-secret: "%s"\n  expiration: "%s"\n' "${1%%.*}" "${1#*.}" "$(date -u -d '+15 min' +%Y-%m-%dT%H:%M:%SZ)"
    printf '  usage-bootstrap-authentication: "true"\n  usage-bootstrap-signing: "true"\n  auth-extra-groups: %s\n' "$NODE_GROUP"
  } | kctl create -f - >/dev/null 2>"$4" || {
    grep -q AlreadyExists "$4" && return 1
    return 2
  }
  {
    for b in ClusterRole:system:node-bootstrapper ClusterRole:kubeadm:get-nodes Role:kubeadm:nodes-kubeadm-config Role:kubeadm:kubelet-config; do
      kind=${b%%:*}
      printf -- '---\napiVersion: rbac.authorization.k8s.io/v1\nkind: %sBinding\nmetadata: {name: "kopsrs:%s"%s}\n' "$kind" "${b#*:}" "$([ "$kind" = Role ] && echo ', namespace: kube-system')"
      printf 'roleRef: {apiGroup: rbac.authorization.k8s.io, kind: %s, name: "%s"}\n' "$kind" "${b#*:}"
      printf 'subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: "%s"}]\n' "$NODE_GROUP"
    done
  } | kctl apply -f - >/dev/null
}

# Pending kubelet client certificate requests made with a kopsrs node token: approved when the
# subject is exactly that token's node, denied otherwise. Others (kubeadm's own token, used by
# control planes; renewals) are left to the controller manager.
approve_node_certificates() {
  local dir=$1 csr name pem subject
  kctl get csr -o json >"$dir/csrs.json"
  kctl -n kube-system get secrets -l kopsrs.k8s.io/instance -o json >"$dir/tokens.json"
  python3 - "$dir" <<'PY' |
import base64, json, os, sys
d = sys.argv[1]
prefix = "bootstrap-token-"
names = {s["metadata"]["name"][len(prefix):]: s["metadata"]["annotations"]["kopsrs.k8s.io/node-name"]
         for s in json.load(open(os.path.join(d, "tokens.json")))["items"]}
for c in json.load(open(os.path.join(d, "csrs.json")))["items"]:
    spec, status = c["spec"], c.get("status") or {}
    token = spec.get("username", "").removeprefix("system:bootstrap:")
    if status.get("conditions") or spec.get("signerName") != "kubernetes.io/kube-apiserver-client-kubelet":
        continue
    if not spec.get("username", "").startswith("system:bootstrap:") or token not in names:
        continue
    pem = os.path.join(d, c["metadata"]["name"] + ".pem")
    open(pem, "wb").write(base64.b64decode(spec["request"]))
    print(c["metadata"]["name"], names[token], pem)
PY
    while read -r csr name pem; do
      # The subject's attributes, sorted: exactly the node's name in the group of nodes.
      subject=$(openssl req -in "$pem" -noout -subject -nameopt RFC2253 | sed 's/^subject=//' | tr ',' '\n' | sort | paste -sd, -)
      if [ "$subject" = "CN=system:node:$name,O=system:nodes" ]; then
        kctl certificate approve "$csr" >/dev/null
        log "approved $csr for node $name"
      else
        kctl certificate deny "$csr" >/dev/null
        log "denied $csr: it asks for '$subject' with the token of node $name"
      fi
    done
}

# Whether EC2 says instance $1 is gone: terminated, stopping, stopped or unknown. An API error
# is no answer (1): the caller keeps waiting rather than start a second cluster.
instance_gone() {
  ec2 "Action=DescribeInstances&InstanceId.1=$1" | python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
codes = [e.text for e in root.iter() if e.tag == "Code"]
if "InvalidInstanceID.NotFound" in codes or "InvalidInstanceID.Malformed" in codes:
    sys.exit(0)
states = [s.find("{*}name").text for s in root.iter() if s.tag.endswith("}instanceState")]
sys.exit(0 if states and states[0] not in ("pending", "running") else 1)'
}

# How long an election holder may take to initialise before the others stop waiting for it.
INIT_TIMEOUT=${KOPSRS_INIT_TIMEOUT:-1200}

# Whether the election's holder will never give the cluster a live API: it recorded a failed
# `kubeadm init`, its instance is gone, or it has held the record for INIT_TIMEOUT seconds and
# no API answers.
election_abandoned() {
  local holder=$1 state=$2
  [ "$state" = failed ] && return 0
  instance_gone "$holder" && return 0
  [[ $state =~ ^[0-9]+$ ]] && [ $(($(now) - state)) -gt "$INIT_TIMEOUT" ]
}

# A control plane that lost the election waits for a join token of a live cluster (0,
# JOIN_TOKEN set). When no API has answered for a minute and the election is abandoned
# (above), it takes the
# election over with a write conditional on the record it read (1: this node initialises,
# or recovers the cluster from its data), so neither an instance that died during
# `kubeadm init` nor the token of a cluster that is gone blocks the control plane for good.
await_join_token() {
  local file holder state etag i dead=0
  file=$(mktemp)
  for i in $(seq 1 180); do
    if api_alive; then
      dead=0
      if state_get bootstrap/node/join.env "$file"; then
        JOIN_TOKEN=$(sed -n 's/^JOIN_TOKEN=//p' "$file")
        rm -f "$file"
        return 0
      fi
    else
      dead=$((dead + 1))
    fi
    # An API that a load balancer's hiccup hides for a moment is not a dead cluster: six polls
    # in a row (a minute) before anything is taken over.
    if [ "$dead" -ge 6 ] && etag=$(state_get_etag bootstrap/init-lock "$file"); then
      read -r holder state <"$file" || true
      if [ "$holder" != "$INSTANCE_ID" ] && election_abandoned "$holder" "${state:-}"; then
        echo "$INSTANCE_ID $(now)" >"$file"
        if [ "$(state_put bootstrap/init-lock "$file" -H "If-Match: $etag")" = 200 ]; then
          log "the election's holder $holder is gone${state:+ ($state)} and no API answers; taking over"
          # The old cluster's token: nobody may join with it once this node initialises.
          state_delete bootstrap/node/join.env >/dev/null
          rm -f "$file"
          return 1
        fi
      fi
    fi
    [ "$i" = 1 ] && log "waiting for the join token of a live API"
    sleep "${KOPSRS_POLL_SECONDS:-10}"
  done
  die "no join token for a live API after 30 minutes"
}

# The election record names this instance (a restored single control plane holds it).
claim_election() {
  local file
  file=$(mktemp)
  echo "$INSTANCE_ID $(now)" >"$file"
  [ "$(state_put bootstrap/init-lock "$file")" = 200 ] || die "cannot write the election record"
  rm -f "$file"
}

# Exactly one control-plane node initialises: the first to create bootstrap/init-lock. The
# record names the holder and when it took the election (or `failed`, written when its
# `kubeadm init` failed).
elect() {
  local file code holder
  file=$(mktemp)
  echo "$INSTANCE_ID $(now)" >"$file"
  while true; do
    code=$(state_put bootstrap/init-lock "$file" -H 'If-None-Match: *')
    case $code in
      200) rm -f "$file"; echo init; return ;;
      412)
        if state_get bootstrap/init-lock "$file"; then
          read -r holder _ <"$file" || true
          if [ "$holder" = "$INSTANCE_ID" ]; then echo init; else echo join; fi
          rm -f "$file"
          return
        fi
        ;;
      409 | 5*) sleep 2 ;;
      *) die "election: HTTP $code from the state store" ;;
    esac
  done
}

kctl() { kubectl --kubeconfig "$ADMIN" "$@"; }

etcdctl() {
  kctl -n kube-system exec "etcd-$NODE_NAME" -- etcdctl --endpoints=https://127.0.0.1:2379 \
    --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt \
    --key=/etc/kubernetes/pki/etcd/healthcheck-client.key "$@"
}

# Removes etcd members whose address no control-plane node has any more (a replaced
# instance), so a minority loss never turns into lost quorum.
prune_etcd_members() {
  local nodes
  nodes=$(kctl get nodes -l node-role.kubernetes.io/control-plane -o jsonpath='{.items[*].status.addresses[?(@.type=="InternalIP")].address}')
  etcdctl member list -w json | python3 -c '
import json, sys
alive = set(sys.argv[1].split())
for m in json.load(sys.stdin).get("members", []):
    ips = {u.split("//")[1].rsplit(":", 1)[0] for u in m.get("peerURLs", [])}
    if m.get("name") and not ips & alive:
        print("%x" % m["ID"])' "$nodes" | while read -r id; do
    log "removing etcd member $id (its instance is gone)"
    etcdctl member remove "$id"
  done
}

# A restored member still advertises the replaced instance's address: point it here, so that
# members joining later can reach it.
repoint_etcd_member() {
  local id
  id=$(etcdctl member list -w json | python3 -c '
import json, sys
here = "//%s:" % sys.argv[1]
for m in json.load(sys.stdin).get("members", []):
    if not any(here in u for u in m.get("peerURLs", [])):
        print("%x" % m["ID"])
        break' "$NODE_IP")
  if [ -n "$id" ]; then
    log "etcd member $id now at https://$NODE_IP:2380"
    etcdctl member update "$id" --peer-urls="https://$NODE_IP:2380"
  fi
}

refresh_token() {
  [ -e "$ADMIN" ] || return 0
  publish_token "$(kubeadm token create --ttl 2h0m0s --description 'kopsrs node join')"
}

# Every ETCD_BACKUP_SECONDS on each control plane; only the etcd leader acts: a snapshot to
# backups/etcd/main/TIME.db, then its metadata TIME.json (what `toolbox etcd list-backups`
# reads: a snapshot without metadata is a failed backup), then `latest` naming it, then the
# backups older than ETCD_BACKUP_RETENTION_DAYS are deleted (one listing).
backup_etcd() {
  local status members name snap sum size tmp
  [ -e "$ADMIN" ] || return 0
  instance_facts
  status=$(etcdctl endpoint status -w json)
  python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; sys.exit(s["header"]["member_id"] != s["leader"])' <<<"$status" || return 0
  members=$(etcdctl member list -w json | python3 -c 'import json,sys; print(len(json.load(sys.stdin).get("members", [])))')
  name=$(date -u -d "@$(now)" +%Y-%m-%dT%H%M%SZ)
  snap="$ROOT/var/lib/etcd/data/kopsrs-snapshot.db"
  etcdctl snapshot save /var/lib/etcd/data/kopsrs-snapshot.db >/dev/null
  sum=$(sha256sum <"$snap" | cut -c1-64)
  size=$(wc -c <"$snap")
  tmp=$(mktemp)
  [ "$(state_put "$BACKUPS/$name.db" "$snap")" = 200 ] || { rm -f "$snap" "$tmp"; die "backup $name: the snapshot upload failed"; }
  rm -f "$snap"
  python3 - "$status" "$name" "$sum" "$size" "$members" "$KUBERNETES_VERSION" "$NODE_NAME" "$(now)" >"$tmp" <<'PY'
import json, sys
status, name, sha, size, members, k8s, node, taken = sys.argv[1:]
s = json.loads(status)[0]["Status"]
print(json.dumps({"name": name, "takenAt": int(taken), "etcdVersion": s["version"],
                  "revision": s["header"]["revision"], "members": int(members),
                  "kubernetesVersion": k8s, "size": int(size), "sha256": sha, "takenBy": node}))
PY
  [ "$(state_put "$BACKUPS/$name.json" "$tmp")" = 200 ] || { rm -f "$tmp"; die "backup $name: the metadata upload failed"; }
  [ "$(state_put "$BACKUPS/latest" "$tmp")" = 200 ] || log "backup $name: cannot update $BACKUPS/latest"
  rm -f "$tmp"
  log "etcd backup $name: $size bytes, sha256 $sum"
  prune_backups
}

# Deletes the backups older than the retention: one listing, whose first page holds the
# oldest keys (time-ordered names), so a run removes up to 1,000 and the next goes on. The
# listing is read to its end (a reader that stops early would have it killed by SIGPIPE,
# which pipefail reports as a failed backup).
prune_backups() {
  local cutoff key stamp
  cutoff=$(date -u -d "@$(($(now) - ETCD_BACKUP_RETENTION_DAYS * 86400))" +%Y-%m-%dT%H%M%SZ)
  state_list "$BACKUPS/" | while read -r key; do
    stamp=${key#"$BACKUPS/"}
    stamp=${stamp%.*}
    [[ $stamp =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{6}Z$ ]] || continue
    [[ $stamp < "$cutoff" ]] || continue
    if [ "$(state_delete "$key")" = 204 ]; then
      log "backup $key: older than $ETCD_BACKUP_RETENTION_DAYS days, deleted"
    fi
  done
}

# etcdutl ARGS...: etcd's own etcdutl, from the image etcd runs (kubeadm's), with the volume
# mounted at /var/lib/etcd.
etcdutl() {
  local image
  image=$(etcd_image)
  [ -n "$image" ] || die "cannot tell which etcd image this control plane runs"
  # (grep reads the whole list: one that stops at the first match has ctr killed by SIGPIPE.)
  ctr -n k8s.io images ls -q | grep -xF "$image" >/dev/null || ctr -n k8s.io images pull "$image" >/dev/null
  ctr -n k8s.io run --rm --mount "type=bind,src=$ROOT/var/lib/etcd,dst=/var/lib/etcd,options=rbind:rw" \
    "$image" "kopsrs-etcdutl-$$" etcdutl "$@"
}

# The etcd image: the static pod's (also when set aside for a restore), else kubeadm's choice
# for this Kubernetes version.
etcd_image() {
  local manifest
  for manifest in "$ROOT/etc/kubernetes/manifests/etcd.yaml" "$ROOT/etc/kubernetes/stopped-for-restore/etcd.yaml"; do
    if [ -e "$manifest" ]; then
      awk '/^[ -]*image:/ && !n++ {sub(/^[ -]*image: */, ""); print}' "$manifest"
      return
    fi
  done
  kubeadm config images list --kubernetes-version "v$KUBERNETES_VERSION" 2>/dev/null | awk '/\/etcd:/ && !n++'
}

# restore_snapshot DB ID INITIAL_CLUSTER [--skip-hash-check]: DB (under /var/lib/etcd) becomes
# this member's data, as a new cluster of INITIAL_CLUSTER; the data it replaces is kept as
# before-restore-ID.
restore_snapshot() {
  local db=$1 id=$2 initial=$3
  shift 3
  rm -rf "$ROOT/var/lib/etcd/restore-$id"
  etcdutl snapshot restore "/var/lib/etcd/$db" --data-dir "/var/lib/etcd/restore-$id" --name "$NODE_NAME" \
    --initial-cluster "$initial" --initial-cluster-token "kopsrs-$id" \
    --initial-advertise-peer-urls "https://$NODE_IP:2380" "$@"
  [ -d "$ROOT/var/lib/etcd/restore-$id/member" ] || die "etcdutl restored nothing from $db"
  if [ -e "$ROOT/var/lib/etcd/data" ]; then
    mv "$ROOT/var/lib/etcd/data" "$ROOT/var/lib/etcd/before-restore-$id"
  fi
  mv "$ROOT/var/lib/etcd/restore-$id" "$ROOT/var/lib/etcd/data"
}

# The running control-plane instances of the cluster, one line each: node name, peer URL.
control_plane_members() {
  ec2 "Action=DescribeInstances&Filter.1.Name=tag:KubernetesCluster&Filter.1.Value.1=$CLUSTER_NAME&Filter.2.Name=tag:k8s.io/role/control-plane&Filter.2.Value.1=1&Filter.3.Name=instance-state-name&Filter.3.Value.1=running&Filter.3.Value.2=pending" | python3 -c '
import sys, xml.etree.ElementTree as ET
out = set()
for i in ET.fromstring(sys.stdin.read()).iter():
    if i.tag.endswith("}item") and i.find("{*}instanceId") is not None and i.find("{*}privateDnsName") is not None:
        name, ip = i.find("{*}privateDnsName").text, i.find("{*}privateIpAddress").text
        if name and ip:
            out.add("%s https://%s:2380" % (name, ip))
print("\n".join(sorted(out)))'
}

# Acts on `toolbox etcd restore-backup`'s command (every 30 s on each control plane, and at
# boot): the first control plane to act records the members (the running control planes),
# each listed one checks the snapshot's sha256, stops its API server and etcd, restores the
# snapshot as its member of a new cluster of those members, starts them again and reports
# done. A marker on the etcd volume makes it once per volume.
restore_etcd() {
  local tmp id backup sum code initial manifests="$ROOT/etc/kubernetes/manifests" stopped="$ROOT/etc/kubernetes/stopped-for-restore"
  [ -n "$ETCD_VOLUME_TAG" ] || return 0
  tmp=$(mktemp -d)
  if ! state_get "$BACKUPS/restore/command.json" "$tmp/command"; then
    rm -rf "$tmp"
    return 0
  fi
  read -r id backup sum < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["id"], c["backup"], c["sha256"])' "$tmp/command")
  [[ $id =~ ^[A-Za-z0-9-]+$ && $backup =~ ^[0-9TZ-]+$ && $sum =~ ^[0-9a-f]{64}$ ]] || die "the restore command in the state store is malformed"
  if [ -e "$ROOT/var/lib/etcd/restored-$id" ]; then
    rm -rf "$tmp"
    return 0
  fi
  instance_facts
  if ! state_get "$BACKUPS/restore/$id/members" "$tmp/members"; then
    control_plane_members >"$tmp/members"
    code=$(state_put "$BACKUPS/restore/$id/members" "$tmp/members" -H 'If-None-Match: *')
    case $code in
      200) log "restore $id: members $(cut -d' ' -f1 "$tmp/members" | paste -sd, -)" ;;
      412) state_get "$BACKUPS/restore/$id/members" "$tmp/members" || die "restore $id: cannot read its members" ;;
      *) die "restore $id: cannot record its members (HTTP $code)" ;;
    esac
  fi
  if ! grep -q "^$NODE_NAME " "$tmp/members"; then
    log "restore $id: $NODE_NAME is not among its members; left to them"
    rm -rf "$tmp"
    return 0
  fi
  initial=$(tr ' ' '=' <"$tmp/members" | paste -sd, -)
  log "restore $id: restoring etcd from backup $backup"
  state_get "$BACKUPS/$backup.db" "$ROOT/var/lib/etcd/restore-$id.db" || die "restore $id: backup $backup is not in the state store"
  echo "$sum  $ROOT/var/lib/etcd/restore-$id.db" | sha256sum -c --quiet - >/dev/null 2>&1 || {
    rm -f "$ROOT/var/lib/etcd/restore-$id.db"
    die "restore $id: backup $backup does not match its sha256 $sum; nothing changed"
  }
  # The kubelet stops static pods whose manifests go away.
  mkdir -p "$stopped"
  for pod in kube-apiserver etcd; do
    if [ -e "$manifests/$pod.yaml" ]; then mv "$manifests/$pod.yaml" "$stopped/$pod.yaml"; fi
  done
  for _ in $(seq 1 60); do
    [ -z "$(crictl ps -q --name '^(etcd|kube-apiserver)$' 2>/dev/null)" ] && break
    sleep 2
  done
  restore_snapshot "restore-$id.db" "$id" "$initial"
  rm -f "$ROOT/var/lib/etcd/restore-$id.db"
  touch "$ROOT/var/lib/etcd/restored-$id"
  for pod in etcd kube-apiserver; do
    if [ -e "$stopped/$pod.yaml" ]; then mv "$stopped/$pod.yaml" "$manifests/$pod.yaml"; fi
  done
  echo "$NODE_NAME $(now)" >"$tmp/done"
  [ "$(state_put "$BACKUPS/restore/$id/done/$NODE_NAME" "$tmp/done")" = 200 ] || log "restore $id: cannot report done"
  log "restore $id: etcd restarted from backup $backup"
  rm -rf "$tmp"
}

# This node holds the election: a new cluster starts empty; a cluster whose whole control
# plane was lost (no API answers, the election abandoned and taken over) restarts from the
# newest of this volume's own etcd data and the newest backup, as a one-member cluster the
# others then join. An empty etcd only when there is neither.
recover_control_plane() {
  local tmp db="" skip=() volume_time=0 backup_time=0 backup="" sum=""
  tmp=$(mktemp -d)
  if [ -e "$ROOT/var/lib/etcd/data/member/snap/db" ]; then
    volume_time=$(stat -c %Y "$ROOT/var/lib/etcd/data/member/snap/db")
  fi
  if state_get "$BACKUPS/latest" "$tmp/latest"; then
    read -r backup_time backup sum < <(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["takenAt"], m["name"], m["sha256"])' "$tmp/latest")
  fi
  if [ "$volume_time" = 0 ] && [ -z "$backup" ]; then
    rm -rf "$tmp"
    init_control_plane
    return
  fi
  if [ "$volume_time" -ge "$backup_time" ]; then
    log "recovering the cluster from this volume's etcd data (newer than any backup)"
    cp "$ROOT/var/lib/etcd/data/member/snap/db" "$ROOT/var/lib/etcd/recover.db"
    skip=(--skip-hash-check)
  else
    log "recovering the cluster from backup $backup (newer than this volume's data)"
    state_get "$BACKUPS/$backup.db" "$ROOT/var/lib/etcd/recover.db" || die "backup $backup is not in the state store"
    echo "$sum  $ROOT/var/lib/etcd/recover.db" | sha256sum -c --quiet - >/dev/null 2>&1 || die "backup $backup does not match its sha256"
  fi
  db="recover-$(now)"
  restore_snapshot recover.db "$db" "$NODE_NAME=https://$NODE_IP:2380" "${skip[@]}"
  rm -f "$ROOT/var/lib/etcd/recover.db" "$tmp/latest"
  rm -rf "$tmp"
  init_control_plane restore
}

# The manifests on stdin with every container image renamed to the mirror's (spec.assets;
# the rules of kopsrs-bootstrap's assets.rs), on stdout. Without a mirror, unchanged.
remap_images() {
  if [ -z "$IMAGE_REGISTRY$IMAGE_PROXY" ]; then
    cat
    return
  fi
  python3 -c '
import sys, yaml
registry, proxy = sys.argv[1], sys.argv[2]
def mirror(image):
    if registry:
        if image.startswith(registry + "/"):
            return image
        for p in ("registry.k8s.io/", "k8s.gcr.io/"):
            if image.startswith(p):
                image = image[len(p):]
                break
        ref = image.find("@") if "@" in image else len(image)
        slash = image.rfind("/", 0, ref) + 1
        colon = image.find(":", slash, ref)
        end = colon if colon >= 0 else ref
        return registry + "/" + image[:end].replace("/", "-").replace(":", "-") + image[end:]
    if image.startswith(proxy + "/"):
        return image
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return proxy + "/" + rest
    return proxy + "/" + image
def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(value, list):
                for c in value:
                    if isinstance(c, dict) and isinstance(c.get("image"), str):
                        c["image"] = mirror(c["image"])
            walk(value)
    elif isinstance(node, list):
        for item in node:
            walk(item)
docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]
for d in docs:
    walk(d)
yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
' "$IMAGE_REGISTRY" "$IMAGE_PROXY"
}

# FILE with this instance's account for @ACCOUNT_ID@: a manifest kopsrs writes cannot know it
# (the termination handler's queue address).
# Fails (the apply with it, tried again on the next run) when the account cannot be read.
fill_account() {
  local account=""
  if grep -q '@ACCOUNT_ID@' "$1"; then
    account=$(imds dynamic/instance-identity/document | json_get accountId) || return 1
    [ -n "$account" ] || return 1
  fi
  sed "s/@ACCOUNT_ID@/$account/g" "$1"
}

# Applies the addons the state store's channel lists, each version once per node, and only
# a download whose sha256 matches its pin: the channel's, the one `update cluster` computed,
# or (unpinned entries) the one the first control plane to fetch it recorded in the state
# store (trust on first use, docs/security.md).
apply_addons() {
  local tmp name version kind url pin sum ns file arch seen code applied vsum account
  [ -e "$ADMIN" ] || return 0
  arch=$(dpkg --print-architecture)
  tmp=$(mktemp -d)
  state_get addons/bootstrap-channel.yaml "$tmp/channel.yaml" || { rm -rf "$tmp"; return 0; }
  mkdir -p "$STATE/addons"
  instance_facts
  API_HOST=$(api_host)
  # A chart's values may name this account (a service-account role's ARN).
  account=""
  if grep -q '@ACCOUNT_ID@' "$tmp/channel.yaml"; then
    account=$(imds dynamic/instance-identity/document | json_get accountId) || account=""
  fi
  python3 - "$tmp/channel.yaml" "$tmp" "$API_HOST" "$arch" "$account" <<'PY' >"$tmp/list"
import hashlib, sys, yaml
for a in yaml.safe_load(open(sys.argv[1]))["addons"]:
    values = yaml.safe_dump(a.get("values") or {})
    for mark, value, what in (("@API_HOST@", sys.argv[3], "the API's address"), ("@ACCOUNT_ID@", sys.argv[5], "the account")):
        if mark in values and not value:
            # Applied with an empty address it would break (Cilium): left for the next run.
            print("addon %s: %s is not known yet; applied on a later run" % (a["name"], what), file=sys.stderr)
            break
    else:
        with open("%s/%s.values.yaml" % (sys.argv[2], a["name"]), "w") as f:
            f.write(values.replace("@API_HOST@", sys.argv[3]).replace("@ACCOUNT_ID@", sys.argv[5]))
        pin = (a.get("sha256ByArch") or {}).get(sys.argv[4]) or a.get("sha256") or "-"
        # The values as the channel gives them, before this node's facts are filled in.
        vsum = hashlib.sha256(values.encode()).hexdigest()[:16]
        print(a["name"], a["version"], a["kind"], a["url"], pin, a.get("namespace", "kube-system"), vsum)
PY
  while read -r name version kind url pin ns vsum; do
    # Applied again when its version, its pin or its values (the spec's, for a chart) change.
    applied="$version $pin $vsum"
    [ "$(cat "$STATE/addons/$name" 2>/dev/null)" = "$applied" ] && continue
    file="$tmp/$name.download"
    url=${url//@ARCH@/$arch}
    case $url in
      # An addon kopsrs generated (the Karpenter groups' objects), kept in the state store.
      state:*) state_get "${url#state:}" "$file" || { log "addon $name: cannot read ${url#state:} from the state store"; continue; } ;;
      *) curl -fsSL --retry 5 -o "$file" "$url" || { log "addon $name: cannot download $url"; continue; } ;;
    esac
    sum=$pin
    if [ "$sum" = - ]; then
      seen="addons/first-seen/$(printf '%s' "$url" | sha256sum | cut -c1-64)"
      if ! state_get "$seen" "$tmp/$name.seen"; then
        sha256sum <"$file" | cut -c1-64 >"$tmp/$name.seen"
        code=$(state_put "$seen" "$tmp/$name.seen" -H 'If-None-Match: *')
        case $code in
          200) log "addon $name: $url has no pin; recorded its sha256 $(cat "$tmp/$name.seen") (trust on first use)" ;;
          412) state_get "$seen" "$tmp/$name.seen" || { log "addon $name: cannot read $seen"; continue; } ;;
          *) log "addon $name: cannot record the sha256 of $url (HTTP $code)"; continue ;;
        esac
      fi
      sum=$(cat "$tmp/$name.seen")
    fi
    echo "$sum  $file" | sha256sum -c --quiet - >/dev/null 2>&1 || { log "addon $name: $url does not match its sha256 $sum: refused"; continue; }
    # An apply that fails (an addon whose CRDs are not installed yet) is tried again on the
    # next run; the addons after it still go on.
    case $url in
      # kopsrs's own objects: applied as the field manager `kopsrs`, and those the previous
      # version had and this one has not are deleted (pruned), if kopsrs manages them.
      state:*)
        fill_account "$file" | remap_images | kctl apply --server-side --force-conflicts --field-manager=kopsrs -f - || { log "addon $name: apply failed; tried again on the next run"; continue; }
        object_names <"$file" >"$tmp/$name.objects"
        if [ -e "$STATE/addons/$name.objects" ]; then
          grep -vxF -f "$tmp/$name.objects" "$STATE/addons/$name.objects" | prune_objects "$name" || true
        fi
        cp "$tmp/$name.objects" "$STATE/addons/$name.objects"
        kind=applied
        ;;
    esac
    case $kind in
      applied) ;;
      manifest) fill_account "$file" | remap_images | kctl apply --server-side --force-conflicts -f - || { log "addon $name: apply failed; tried again on the next run"; continue; } ;;
      chart) helm template "$name" "$file" --namespace "$ns" -f "$tmp/$name.values.yaml" | remap_images | kctl apply --server-side --force-conflicts -f - || { log "addon $name: apply failed; tried again on the next run"; continue; } ;;
      helm)
        tar -xzf "$file" -C "$tmp"
        install -m 0755 "$tmp"/linux-*/helm "$ROOT/usr/local/bin/helm"
        ;;
    esac
    echo "$applied" >"$STATE/addons/$name"
    log "addon $name $version applied"
  done <"$tmp/list"
  # A generated addon no longer in the channel (the termination handler turned off, the
  # last Karpenter group deleted): its objects go.
  for file in "$STATE"/addons/*.objects; do
    [ -e "$file" ] || continue
    name=$(basename "$file" .objects)
    if ! grep -qx -- "- name: $name" "$tmp/channel.yaml"; then
      prune_objects "$name" <"$file" && rm -f "$file" "$STATE/addons/$name"
    fi
  done
  rm -rf "$tmp"
}

# The objects of a manifest on stdin, one per line: `TYPE NAMESPACE NAME` (TYPE as kubectl
# takes it: `kind.version.group`, or the kind of the core group; NAMESPACE `-` when none).
object_names() {
  python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if not d:
        continue
    group, _, version = d["apiVersion"].rpartition("/")
    kind = d["kind"].lower() + ("." + version + "." + group if group else "")
    print(kind, d["metadata"].get("namespace", "-"), d["metadata"]["name"])'
}

# Deletes the objects listed on stdin (object_names's lines) of the generated addon NAME that
# are kopsrs's: annotated kopsrs.io/addon=NAME and managed by the field manager `kopsrs`. An
# object of the same name that lacks either (made by someone else) stays.
prune_objects() {
  local type ns object owner addon managers scope
  while read -r type ns object; do
    scope=()
    [ "$ns" = - ] || scope=(-n "$ns")
    owner=$(kctl get "$type" "$object" "${scope[@]}" --ignore-not-found -o jsonpath='{.metadata.annotations.kopsrs\.io/addon}|{.metadata.managedFields[*].manager}') || return 1
    [ -n "$owner" ] || continue
    addon=${owner%%|*}
    managers=${owner#*|}
    if [ "$addon" = "$1" ] && [[ " $managers " == *" kopsrs "* ]]; then
      kctl delete "$type" "$object" "${scope[@]}" --ignore-not-found >/dev/null && log "addon $1: deleted $type $object, no longer in it"
    else
      log "addon $1: $type $object is no longer in it but is not kopsrs's (annotation kopsrs.io/addon=$1 and field manager kopsrs): left"
    fi
  done
}

install_timers() {
  local unit="$ROOT/etc/systemd/system" job every delay
  mkdir -p "$unit" "$ROOT/usr/local/sbin" "$ROOT/usr/local/bin"
  [ "$0" -ef "$ROOT/usr/local/sbin/kopsrs-node" ] || install -m 0700 "$0" "$ROOT/usr/local/sbin/kopsrs-node"
  for job in refresh-token:30min:30s apply-addons:2min:30s "backup-etcd:${ETCD_BACKUP_SECONDS}s:30s" restore-etcd:30s:5s approve-nodes:10s:0; do
    every=${job#*:}
    delay=${every#*:}
    every=${every%:*}
    job=${job%%:*}
    printf '[Unit]\nDescription=kopsrs %s\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/kopsrs-node %s\n' "$job" "$job" >"$unit/kopsrs-$job.service"
    printf '[Unit]\nDescription=kopsrs %s every %s\n[Timer]\nOnBootSec=%s\nOnUnitActiveSec=%s\nAccuracySec=1s\nRandomizedDelaySec=%s\n[Install]\nWantedBy=timers.target\n' "$job" "$every" "$every" "$every" "$delay" >"$unit/kopsrs-$job.timer"
    systemctl enable --now "kopsrs-$job.timer"
  done
  systemctl daemon-reload
}

# After a control-plane instance comes back at a newer spec.kubernetesVersion (rolling
# update after `upgrade cluster`), the first one upgrades the cluster, the others follow.
upgrade_control_plane() {
  local running
  running=$(kctl -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' | sed -n 's/^kubernetesVersion: *//p')
  if [ "$running" != "v$KUBERNETES_VERSION" ]; then
    log "cluster runs $running; upgrading to v$KUBERNETES_VERSION"
    kubeadm upgrade apply "v$KUBERNETES_VERSION" --yes
  fi
}

# The API server's flags of a kubeadm configuration on stdin, one `name=value` a line.
api_server_args() {
  python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    for a in ((d or {}).get("apiServer") or {}).get("extraArgs") or []:
        print("%s=%s" % (a["name"], a["value"]))'
}

# A control plane that joins with other API server flags than the cluster's kubeadm
# configuration holds (a spec change since `kubeadm init`, such as IRSA's issuer): its own API
# server gets its flags, and the cluster's configuration records them for the control planes
# that join after it. A roll of the control plane so brings every API server to the spec.
reconcile_api_server() {
  local desired="$ROOT/etc/kopsrs/kubeadm-desired.yaml" want have i
  write_kubeadm_init "$desired.in"
  JOIN_TOKEN=$(kubeadm token generate) render "$desired.in" "$desired"
  want=$(api_server_args <"$desired")
  # The node has joined: nothing here may end the boot. An API that does not answer leaves
  # the flags to the next control plane that joins.
  for i in 1 2 3 4 5; do
    have=$(kctl -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' | api_server_args) && break
    have="?"
    sleep $((i * 2))
  done
  if [ "$have" = "?" ]; then
    log "cannot read the cluster's kubeadm configuration; its API server flags are left as they are"
  elif [ "$want" != "$have" ]; then
    log "the API server's flags differ from the cluster's configuration: taking this node's"
    if ! { kubeadm init phase control-plane apiserver --config "$desired" &&
      kubeadm init phase upload-config kubeadm --config "$desired"; }; then
      log "taking this node's API server flags failed; the next control plane that joins tries again"
    fi
  fi
  rm -f "$desired" "$desired.in"
}

# kubeadm init, then the join token for everyone else. `restore`: etcd starts from the data on
# the volume (a replaced single control plane) instead of a new cluster.
init_control_plane() {
  local flags=()
  JOIN_TOKEN=$(kubeadm token generate)
  write_kubeadm_init "$ROOT/etc/kopsrs/kubeadm-init.yaml.in"
  render "$ROOT/etc/kopsrs/kubeadm-init.yaml.in" "$ROOT/etc/kopsrs/kubeadm.yaml"
  if [ "${1:-}" = restore ]; then
    log "restarting the cluster's etcd from the data on its volume"
    flags=(--ignore-preflight-errors=DirAvailable--var-lib-etcd)
  fi
  if ! kubeadm init --config "$ROOT/etc/kopsrs/kubeadm.yaml" --skip-token-print "${flags[@]}"; then
    # The others stop waiting for this node (election_abandoned).
    echo "$INSTANCE_ID failed" >"$ROOT/etc/kopsrs/init-failed"
    state_put bootstrap/init-lock "$ROOT/etc/kopsrs/init-failed" >/dev/null
    die "kubeadm init failed; the election record says so, and another control plane takes over"
  fi
  if [ "${1:-}" = restore ]; then
    repoint_etcd_member
  fi
  publish_token "$JOIN_TOKEN"
}

# Warm pools (spec.warmPool), as kops does them: an instance launched into its group's warm
# pool installs the packages, completes the group's launch hook and is stopped by the group;
# when the group puts it into service it starts again and the boot unit left behind joins it
# (user-data runs only at the first start), completing the hook once more.
warming() {
  local state
  [ -n "${WARM_POOL_ASG:-}" ] || return 1
  state=$(imds meta-data/autoscaling/target-lifecycle-state 2>/dev/null) || return 1
  [[ $state == Warmed:* ]]
}

complete_launch_hook() {
  local out
  [ -n "${WARM_POOL_HOOK:-}" ] || return 0
  out=$(aws_call autoscaling "$REGION" "$AUTOSCALING_URL/" --data "Version=2011-01-01&Action=CompleteLifecycleAction&AutoScalingGroupName=$WARM_POOL_ASG&LifecycleHookName=$WARM_POOL_HOOK&InstanceId=$INSTANCE_ID&LifecycleActionResult=CONTINUE")
  case $out in
    *"<Error>"*)
      log "completing the launch hook $WARM_POOL_HOOK of $WARM_POOL_ASG failed: $(sed -n 's:.*<Message>\(.*\)</Message>.*:\1:p' <<<"$out" | head -n1)"
      return 1
      ;;
  esac
}

install_boot_unit() {
  local unit="$ROOT/etc/systemd/system"
  mkdir -p "$unit" "$ROOT/usr/local/sbin"
  [ "$0" -ef "$ROOT/usr/local/sbin/kopsrs-node" ] || install -m 0700 "$0" "$ROOT/usr/local/sbin/kopsrs-node"
  printf '[Unit]\nDescription=kopsrs boot of a warm-pool instance going into service\nWants=network-online.target\nAfter=network-online.target\nConditionPathExists=!/etc/kubernetes/kubelet.conf\n[Service]\nType=oneshot\nExecStart=/usr/local/sbin/kopsrs-node boot\n[Install]\nWantedBy=multi-user.target\n' >"$unit/kopsrs-boot.service"
  systemctl enable kopsrs-boot.service
}

boot() {
  [ -n "$STATE_URL" ] || die "the cluster's state store is not on S3, so instances cannot read it; use an s3:// state store"
  mkdir -p "$STATE" "$ROOT/etc/kopsrs"
  if [ "$ROLE" != control-plane ] && warming; then
    install_packages
    instance_facts
    install_boot_unit
    complete_launch_hook || die "the group would abandon this warm-pool instance"
    log "warm-pool instance $INSTANCE_ID of $GROUP prepared; it joins $CLUSTER_NAME when its group puts it into service"
    return 0
  fi
  install_packages
  instance_facts
  if [ -e "$ROOT/etc/kubernetes/kubelet.conf" ]; then
    log "already a member of $CLUSTER_NAME"
  elif [ "$ROLE" = control-plane ]; then
    mount_etcd_volume
    API_HOST=$(api_host)
    [ -n "$API_HOST" ] || die "cannot find the API endpoint"
    place_pki
    if [ "$(elect)" = init ]; then
      # A new cluster (nothing to recover from), or this node's rerun after it took the
      # election over.
      recover_control_plane
    elif [ "$ETCD_MEMBERS" = 1 ] && etcd_data_on_volume; then
      # The single control plane was replaced: the cluster's only etcd data is on this
      # volume, which no other instance holds, and no API serves the cluster.
      claim_election
      init_control_plane restore
    elif ! await_join_token; then
      recover_control_plane
    else
      set_aside_etcd_data
      CA_HASH=$(ca_hash "$ROOT/etc/kubernetes/pki/ca.crt")
      write_kubeadm_join "$ROOT/etc/kopsrs/kubeadm-join.yaml.in"
      render "$ROOT/etc/kopsrs/kubeadm-join.yaml.in" "$ROOT/etc/kopsrs/kubeadm.yaml"
      if ! kubeadm join --config "$ROOT/etc/kopsrs/kubeadm.yaml"; then
        put_back_etcd_data
        die "kubeadm join failed; this volume's etcd data is back in place"
      fi
      upgrade_control_plane
      reconcile_api_server
      prune_etcd_members
    fi
  else
    API_HOST=$(api_host)
    [ -n "$API_HOST" ] || die "cannot find the API endpoint"
    request_node_token
    local tmp
    tmp=$(mktemp -d)
    wait_for_state pki/issued/kubernetes-ca/keyset.yaml "$tmp/ks"
    keyset "$tmp/ks" "$tmp/ca"
    CA_HASH=$(ca_hash "$tmp/ca.crt")
    write_kubeadm_join "$ROOT/etc/kopsrs/kubeadm-join.yaml.in"
    render "$ROOT/etc/kopsrs/kubeadm-join.yaml.in" "$ROOT/etc/kopsrs/kubeadm.yaml"
    kubeadm join --config "$ROOT/etc/kopsrs/kubeadm.yaml"
    # The kubelet trusts every CA that is not distrusted, so a rotation breaks no node.
    install -m 0644 "$tmp/ca.crt" "$ROOT/etc/kubernetes/pki/ca.crt"
    rm -rf "$tmp"
    systemctl restart kubelet
  fi
  if [ "$ROLE" != control-plane ]; then
    complete_launch_hook || log "the group may abandon this instance at the hook's timeout"
  fi
  if [ "$ROLE" = control-plane ]; then
    install_timers
    apply_addons
  fi
  log "node $NODE_NAME ($ROLE, instance group $GROUP) ready for $CLUSTER_NAME"
}

case "${1:-boot}" in
  boot) boot ;;
  refresh-token) instance_facts; refresh_token ;;
  apply-addons) apply_addons ;;
  backup-etcd) backup_etcd ;;
  restore-etcd) restore_etcd ;;
  approve-nodes) approve_nodes ;;
  *) die "unknown command $1 (boot, refresh-token, apply-addons, backup-etcd, restore-etcd, approve-nodes)" ;;
esac
