#!/usr/bin/env python3
"""A fake Kubernetes API server for kopsrs's end-to-end tests, with a node simulator fed by EC2.

It answers kubectl and client libraries over plain HTTP on 127.0.0.1 and follows the real
kube-apiserver's semantics (not what a client hopes for), so that a client that works against it
has handled what a real cluster does:

* Discovery: /version, /api, /api/v1, /apis and every /apis/GROUP/VERSION it serves (plain JSON;
  clients asking for aggregated discovery fall back, as they do with older servers). /openapi/v2
  answers 404; /openapi/v3 is a minimal document (each kind's PATCH operation with its query
  parameters, no schemas): enough for kubectl to see that the server validates fields, so that
  `kubectl apply/create` work without --validate=false (kubectl then computes patches from its
  compiled-in types). The server does not check fields against schemas (fieldValidation=Strict
  accepts unknown fields). /healthz, /livez and /readyz answer "ok".
* A table-driven store: core v1 namespaces, nodes, pods, services, configmaps, secrets,
  serviceaccounts, events; apps/v1 deployments, replicasets, daemonsets, statefulsets; policy/v1
  poddisruptionbudgets; coordination.k8s.io/v1 leases; rbac.authorization.k8s.io/v1 (cluster)roles
  and (cluster)rolebindings; storage.k8s.io/v1 storageclasses; scheduling.k8s.io/v1
  priorityclasses; apiextensions.k8s.io/v1 customresourcedefinitions. A CRD is Established after
  0.3 s, and from then on its group/versions/plural are served (conversion-free: one stored
  object per name, shown under the version asked for).
* get, list (labelSelector =, ==, !=, in, notin, exists, !key, gt, lt; fieldSelector with = and !=
  on the fields the real server supports, else 400; limit/continue), create (409 AlreadyExists,
  generateName, 404 when the namespace does not exist, 403 NamespaceTerminating, dryRun=All),
  update (409 on a stale resourceVersion; custom resources require one; a no-op update keeps the
  resourceVersion; generation moves with everything but metadata and status), patch (strategic
  merge with the patch merge keys of k8s.io/api: containers/env/volumes by name, ports by
  containerPort or port, ownerReferences by uid, conditions by type, finalizers as a set; node
  spec.taints and tolerations have no patch strategy there, so a patch replaces them whole:
  kubectl taint merges by key itself and sends the whole list; $patch, $setElementOrder,
  $retainKeys, $deleteFromPrimitiveList; 415 for custom resources, as the real server; JSON merge
  patch; JSON patch; server-side apply), delete (propagationPolicy Background/Foreground/Orphan,
  preconditions, finalizers, graceful pod deletion: a pod lingers --grace seconds with its
  deletionTimestamp, namespaces terminate and empty themselves), deletecollection. Status
  subresources change only status; the main resource ignores status. scale subresources of
  deployments, replicasets and statefulsets. Lists and gets answer a server-side Table when asked
  (Accept ...;as=Table;g=meta.k8s.io;v=v1, as kubectl get does): nodes, pods, deployments,
  budgets and namespaces with kubectl's usual columns, custom resources with their CRD's
  additionalPrinterColumns (simple JSONPath: fields, escaped dots, [?(@.k=="v")] filters; date
  columns as ages), other kinds Name and Created At. Errors
  are Status objects as the real server writes them (as the real server, the 500 for a pod
  matched by several budgets has no reason or details). Request bodies are JSON (or YAML):
  protobuf bodies get a 415 (the real server accepts them; kubectl's `create KIND` generators
  send protobuf, `create -f`, `apply`, `drain`, `cordon`, `taint`... send JSON).
* Server-side apply: fieldManager is required; body JSON or YAML (if PyYAML is importable);
  creates when missing (201); merges associative lists by their keys; records
  metadata.managedFields (Apply and Update entries, fieldsV1 format); fields a manager applied
  before and no longer applies are removed unless another manager owns them; conflicts: a field
  owned by another manager whose value would change is a 409 with FieldManagerConflict causes
  unless force=true (then ownership moves). Simplified: custom resources' lists are atomic; the
  internal controllers do not record managed fields.
* Watch (minimal but real, not a 405): watch=true streams ADDED/MODIFIED/DELETED events from an
  in-memory history of the last 20000 changes (410 Expired as an ERROR event when the
  resourceVersion is older), honours selectors (objects leaving the selection are DELETED),
  timeoutSeconds, and sendInitialEvents (with the initial-events-end BOOKMARK). No periodic
  bookmarks; watch events carry objects, not Table rows.
* Eviction (POST .../pods/NAME/eviction) as pkg/registry/core/pod/storage/eviction.go: terminal,
  Pending or already deleting pods are deleted without budgets; more than one matching budget is
  a 500; a budget not yet observed (status.observedGeneration < generation) is a 429 with
  Retry-After 10; no disruptions allowed is a 429 with a DisruptionBudget cause; an unready pod is
  deleted without spending the budget when the budget is met (or unhealthyPodEvictionPolicy is
  AlwaysAllow); otherwise disruptionsAllowed is decremented, the pod recorded in disruptedPods and
  deleted (201, Status Success).
* Controllers, asynchronously after every change (as the real ones, a few ms late): the
  disruption controller (expectedPods, currentHealthy, desiredHealthy with Kubernetes's rounding,
  disruptionsAllowed, observedGeneration, DisruptionAllowed condition, disruptedPods expiry), the
  deployment controller (a ReplicaSet per pod template, rolling updates with maxSurge and
  maxUnavailable, Recreate; status), the replica set controller (pods named RS-xxxxx, a missing
  pod is recreated --reschedule-after seconds later), the daemon set controller (a pod per
  eligible node), a scheduler (Ready, schedulable, untainted or tolerated nodes matching
  nodeSelector and required node affinity, fewest pods first; else Pending), a kubelet (pods on a
  Ready node are Running and Ready, NotReady when the node is not), the pod garbage collector
  (pods of vanished nodes), the garbage collector (ownerReferences), the namespace controller, a
  "default" ServiceAccount and kube-root-ca.crt per namespace, node lifecycle taints
  (node.kubernetes.io/not-ready, unreachable, network-unavailable). StatefulSets are stored only.
  Nodes created through the API (POST /api/v1/nodes) have no simulated kubelet: they keep the
  status they were given (only /__fake/nodes/NAME/condition changes it).
* Node simulator (with --aws-endpoint and --cluster): every --sync-interval one paginated EC2
  DescribeInstances filtered by tag-key kubernetes.io/cluster/CLUSTER in pending/running; each
  running instance that is not a bastion becomes a Node named after its PrivateDnsName, with
  providerID aws:///AZ/ID, hostname/zone/region/instance-type/arch/os labels,
  kops.k8s.io/instancegroup (from the instance tag, else the ASG name without ".CLUSTER"),
  karpenter.sh/nodepool (from the instance tag Karpenter gives its instances), the
  instance group's node labels and taints (the k8s.io/cluster-autoscaler/node-template/* tags
  kopsrs propagates), and role labels from k8s.io/role/* tags (control-plane: the control-plane
  role label, kubernetes.io/role=master and the control-plane NoSchedule taint). A node is NotReady
  (NetworkUnavailable) until --ready-after seconds after it first appeared. A node whose instance
  is gone or not running is deleted with its pods; a node deleted through the API whose instance
  still runs re-registers after reregister_after seconds (10, as a kubelet would). Control-plane
  nodes get mirror pods in kube-system (kube-apiserver, kube-controller-manager, kube-scheduler,
  etcd; NAME-NODE), Running and Ready when the node is Ready. A DaemonSet kube-system/cilium
  (tolerating everything) puts a pod on every node.
* pods/exec (GET or POST .../pods/NAME/exec?command=..&container=..&stdout=1&stderr=1) over a
  WebSocket, as kube-apiserver serves it: v5.channel.k8s.io or v4.channel.k8s.io (in the
  client's order; kubectl 1.32 offers v5 only, kube-rs v5 then v4; no base64 variants, no
  SPDY), binary messages whose first byte is the channel (1 stdout, 2 stderr, 3 the error
  channel), an empty message first on the lowest writable channel, the command's metav1.Status
  on channel 3 ({"metadata":{},"status":"Success"}, or NonZeroExitCode with an ExitCode cause),
  then a normal closure. Before the upgrade, the API server's own checks are HTTP Status errors:
  404 for a missing pod; 400 for no command, an invalid or unnamed container (when the pod has
  several), a pod without a node, a request that is not an upgrade or offers no protocol served.
  After it, the kubelet's errors come as an InternalError Status on channel 3: a container not
  running ("unable to upgrade connection: container not found"), a node gone or Unknown ("error
  dialing backend"), an executable the image lacks (containerd's "executable file not found in
  $PATH"). The etcd container of a control-plane node's etcd mirror pod has etcdctl; other
  containers have echo, true, false and sleep. Calls are counted as "get pods/exec" (GET) or
  "create pods/exec" (POST), with 101 for an upgrade.
* etcd, simulated (kubeadm's stacked etcd): a control-plane node with a simulated kubelet (EC2
  or /__fake/nodes) runs an etcd member once it is Ready: name = the node, a random 64-bit ID
  (top bit set), peerURLs https://INTERNAL_IP:2380, clientURLs https://INTERNAL_IP:2379; the
  first one makes the cluster. Later ones join under etcd's strict reconfiguration check: the
  healthy members must be a quorum of the size after the add (a second member may always join a
  single one; no peer URL twice; the replacement of a single control plane whose member is down
  restores it from the etcd volume: same name and ID, its URLs moved); until then the join is
  retried and the node's etcd mirror pod
  stays Running but not Ready (a `kubeadm join` stuck on its member add), as it is while its
  member is unhealthy. A member whose machine vanished (its instance gone, or DELETE
  /__fake/nodes/NAME) stays a member, unreachable; a Node deleted through the API while its
  machine runs keeps its member healthy; a removed member's node never rejoins. `etcdctl` in
  kube-system/etcd-NODE (container etcd) answers as etcd 3.5's does: version; member list;
  member remove HEXID ("Member %16x removed from cluster %16x"; "etcdserver: member not found";
  refused when the healthy members left would not be a quorum of what is left); member update
  HEXID --peer-urls; endpoint health [--cluster]; endpoint status [--cluster]; -w simple|json
  with etcdctl's JSON (IDs as uint64 numbers; member list's header has no revision; health
  entries {endpoint, health, took, error}); errors as `Error: ...` on stderr with exit 1 (128
  for a bad argument). It connects only to https://127.0.0.1:2379 (or a member's client URL)
  with --cacert, --cert and --key naming kubeadm's files in /etc/kubernetes/pki/etcd; else, or
  when that member is unhealthy or absent, "context deadline exceeded". Without a quorum
  (healthy <= members / 2) everything linearizable fails with "context deadline exceeded":
  member list, remove, update, endpoint health (each endpoint) and the member list of --cluster.
  Timeouts are reported at once, with "took" = --command-timeout (5s by default).

Control, on the same port (no Kubernetes path starts like this):
  POST   /__fake/nodes {"name": "n1", "role": "node"|"control-plane", "labels": {..}, "taints":
                        [..], "zone": "us-east-1a", "instance_group": "nodes", "ready_after": 0,
                        "unschedulable": false}
                                                  adds a Node without AWS, Ready after ready_after s
  DELETE /__fake/nodes/NAME                       removes a node as if its machine vanished
  POST   /__fake/nodes/NAME/condition {"Ready": "False"|"True"|"Unknown"|null}
                                                  a sticky override of the Ready condition
                                                  (null returns to the simulated one)
  POST   /__fake/static-pods/NODE/COMPONENT {"present": false, "ready": false}
                                                  sticky: removes a mirror pod or keeps it unready
  GET    /__fake/config, POST /__fake/config {"ready_after": 5, "reschedule_after": 1,
                        "grace": 0.2, "sync_interval": 0.5, "reregister_after": 10,
                        "crd_establish_after": 0.3, "pdb_controller_paused": false,
                        "control_plane_components": [..], "etcd_strict_reconfig": true}
                                                  (etcd_strict_reconfig false: etcd's
                                                  --strict-reconfig-check=false, joins never
                                                  wait)
  GET    /__fake/etcd    {"cluster_id": HEX, "leader": HEX|null, "quorum": bool, "members":
                          [{"id": HEX, "ID": N, "name", "peerURLs", "clientURLs", "healthy",
                          "node"}], "waiting": {"NODE": "why its member add is refused"},
                          "fail_removes": N, "stall": S}; the POSTs below answer the same
  POST   /__fake/etcd/members/NAME {"healthy": false|true|null}
                                                  a sticky override of the health of the
                                                  member(s) named NAME (null: back to simulated)
  POST   /__fake/etcd/fail-removes {"count": N}   the next N member removes fail
                                                  ("etcdserver: request timed out", exit 1)
  POST   /__fake/etcd/stall {"seconds": S}        every etcdctl answers S seconds late (0: off)
  GET    /__fake/calls   {"total": N, "by_call": {"list pods": N, "create pods/eviction": N},
                          "by_status": {"create pods/eviction 429": N}}; DELETE resets
  GET    /__fake/pdb-min-healthy  {"budgets": {"NS/NAME": {"minCurrentHealthy": N,
                          "desiredHealthy": N, "currentHealthy": N}}, "deployments": {"NS/NAME":
                          {"minReady": N, "replicas": N, "ready": N}}}: minimums over every store
                          change since the budget/deployment appeared or the last DELETE (which
                          restarts them from the current values)

Usage: fake_kube.py [-p PORT] [--port-file F] [--cluster NAME] [--aws-endpoint URL] [--region R]
                    [--ready-after S] [--reschedule-after S] [--grace S] [--sync-interval S]
                    [--kubernetes-version vX.Y.Z] [-v]
Port 0 picks a free port; --port-file receives it once the server listens. SIGTERM/SIGINT stop it.
"""

import argparse
import base64
import collections
import copy
import datetime
import gzip
import hashlib
import json
import math
import os
import random
import re
import signal
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    import yaml  # optional: YAML bodies for server-side apply
except ImportError:  # pragma: no cover
    yaml = None

ALPHANUMS = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
DISRUPTION_DELETION_TIMEOUT = 120.0  # disruption controller's DeletionTimeout
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
ROLE_CONTROL_PLANE = "control-plane"

# Strategic merge patch keys (the patchMergeKey tags of k8s.io/api), by field name.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "imagePullSecrets": "name", "resourceClaims": "name",
    "schedulingGates": "name", "volumeMounts": "mountPath", "volumeDevices": "devicePath",
    "ownerReferences": "uid", "conditions": "type", "hostAliases": "ip",
    "podIPs": "ip", "hostIPs": "ip", "topologySpreadConstraints": "topologyKey",
}
PRIMITIVE_SETS = ("finalizers", "podCIDRs")
# Not here, as in k8s.io/api: node spec.taints and pod spec.tolerations are atomic lists (no
# patchStrategy): a patch replaces them whole. kubectl taint merges by key on its side and sends
# the full list.


def now_ts():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(value):
    return copy.deepcopy(value)


def rand_suffix(n=5):
    return "".join(random.choice(ALPHANUMS) for _ in range(n))


def safe_encode(text):
    return "".join(ALPHANUMS[ord(c) % len(ALPHANUMS)] for c in text)


def fnv32a(data):
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def meta(obj):
    return obj.setdefault("metadata", {})


def labels_of(obj):
    return (obj.get("metadata") or {}).get("labels") or {}


def controller_ref(obj):
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def scaled(value, total, round_up):
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        pct = int(text[:-1])
        return math.ceil(pct * total / 100) if round_up else math.floor(pct * total / 100)
    return int(text)


# ---------------------------------------------------------------------------------------------
# Errors, as apimachinery/pkg/api/errors builds them


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, retry_after=0):
        super().__init__(message)
        self.code = code
        self.status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                       "message": message}
        if reason:
            self.status["reason"] = reason
        if details is not None:
            self.status["details"] = details
        self.status["code"] = code
        self.retry_after = retry_after


def qualified(rt):
    return rt.plural if not rt.group else f"{rt.plural}.{rt.group}"


def details(rt, name, **extra):
    d = {"name": name}
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    d.update(extra)
    return d


def not_found(rt, name):
    return ApiError(404, "NotFound", f'{qualified(rt)} "{name}" not found', details(rt, name))


def already_exists(rt, name):
    return ApiError(409, "AlreadyExists", f'{qualified(rt)} "{name}" already exists',
                    details(rt, name))


def conflict(rt, name, why="the object has been modified; please apply your changes to the "
             "latest version and try again", causes=None):
    d = details(rt, name)
    if causes:
        d["causes"] = causes
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on {qualified(rt)} "{name}": '
                    f"{why}", d)


def invalid(rt, name, causes):
    """causes: [(field, reason, message)]."""
    kind = rt.kind if not rt.group else f"{rt.kind}.{rt.group}"
    text = ", ".join(f"{f}: {m}" for f, _, m in causes)
    d = {"name": name}
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.kind
    d["causes"] = [{"reason": r, "message": m, "field": f} for f, r, m in causes]
    return ApiError(422, "Invalid", f'{kind} "{name}" is invalid: {text}', d)


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def path_not_found():
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def method_not_allowed():
    return ApiError(405, "MethodNotAllowed",
                    "the server does not allow this method on the requested resource", {})


def unsupported_media(allowed):
    return ApiError(415, "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted media types "
                    "include: " + ", ".join(allowed), {})


# ---------------------------------------------------------------------------------------------
# Resource types


class RType:
    def __init__(self, group, version, plural, singular, kind, namespaced, short=(),
                 status=False, scale=False, fields=(), crd=False, create_on_update=False,
                 categories=(), versions=None, columns=None):
        self.columns = columns or []
        self.group = group
        self.versions = versions or [version]
        self.plural = plural
        self.singular = singular
        self.kind = kind
        self.namespaced = namespaced
        self.short = list(short)
        self.status = status
        self.scale = scale
        self.fields = ("metadata.name",) + (("metadata.namespace",) if namespaced else ()) + \
            tuple(fields)
        self.crd = crd
        self.create_on_update = create_on_update
        self.categories = list(categories)

    @property
    def key(self):
        return (self.group, self.plural)

    def api_version(self, version=None):
        v = version or self.versions[0]
        return v if not self.group else f"{self.group}/{v}"


POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
              "spec.serviceAccountName", "spec.hostNetwork", "status.phase", "status.podIP",
              "status.podIPs", "status.nominatedNodeName")
EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "involvedObject.apiVersion",
                "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                "reportingComponent", "source", "type")

# One line per kind.
BUILTINS = [
    RType("", "v1", "namespaces", "namespace", "Namespace", False, ["ns"], status=True,
          fields=("status.phase",)),
    RType("", "v1", "nodes", "node", "Node", False, ["no"], status=True,
          fields=("spec.unschedulable",)),
    RType("", "v1", "pods", "pod", "Pod", True, ["po"], status=True, fields=POD_FIELDS,
          categories=["all"]),
    RType("", "v1", "services", "service", "Service", True, ["svc"], status=True,
          categories=["all"]),
    RType("", "v1", "configmaps", "configmap", "ConfigMap", True, ["cm"]),
    RType("", "v1", "secrets", "secret", "Secret", True, fields=("type",)),
    RType("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", True, ["sa"]),
    RType("", "v1", "events", "event", "Event", True, ["ev"], fields=EVENT_FIELDS,
          create_on_update=True),
    RType("", "v1", "endpoints", "endpoints", "Endpoints", True, ["ep"], create_on_update=True),
    RType("apps", "v1", "deployments", "deployment", "Deployment", True, ["deploy"],
          status=True, scale=True, categories=["all"]),
    RType("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, ["rs"], status=True,
          scale=True, fields=("status.replicas",), categories=["all"]),
    RType("apps", "v1", "daemonsets", "daemonset", "DaemonSet", True, ["ds"], status=True,
          categories=["all"]),
    RType("apps", "v1", "statefulsets", "statefulset", "StatefulSet", True, ["sts"],
          status=True, scale=True, categories=["all"]),
    RType("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", True),
    RType("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget",
          True, ["pdb"], status=True),
    RType("coordination.k8s.io", "v1", "leases", "lease", "Lease", True,
          create_on_update=True),
    RType("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole",
          False),
    RType("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding",
          "ClusterRoleBinding", False),
    RType("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", True),
    RType("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", True),
    RType("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", False,
          ["sc"]),
    RType("scheduling.k8s.io", "v1", "priorityclasses", "priorityclass", "PriorityClass", False,
          ["pc"]),
    RType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition",
          "CustomResourceDefinition", False, ["crd", "crds"], status=True),
]
GROUP_ORDER = ["", "apps", "policy", "coordination.k8s.io", "rbac.authorization.k8s.io",
               "storage.k8s.io", "scheduling.k8s.io", "apiextensions.k8s.io"]


def discovery_entries(rt, version):
    verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
             "kind": rt.kind, "verbs": verbs}
    if rt.short:
        entry["shortNames"] = rt.short
    if rt.categories:
        entry["categories"] = rt.categories
    out = [entry]
    if rt.status:
        out.append({"name": rt.plural + "/status", "singularName": "",
                    "namespaced": rt.namespaced, "kind": rt.kind,
                    "verbs": ["get", "patch", "update"]})
    if rt.scale:
        out.append({"name": rt.plural + "/scale", "singularName": "", "namespaced": True,
                    "group": "autoscaling", "version": "v1", "kind": "Scale",
                    "verbs": ["get", "patch", "update"]})
    if rt.key == ("", "pods"):
        out.append({"name": "pods/eviction", "singularName": "", "namespaced": True,
                    "group": "policy", "version": "v1", "kind": "Eviction",
                    "verbs": ["create"]})
        out.append({"name": "pods/exec", "singularName": "", "namespaced": True,
                    "kind": "PodExecOptions", "verbs": ["create", "get"]})
    if rt.key == ("", "namespaces"):
        out.append({"name": "namespaces/finalize", "singularName": "", "namespaced": False,
                    "kind": "Namespace", "verbs": ["update"]})
    return out


# ---------------------------------------------------------------------------------------------
# Selectors


def split_top(text):
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse_label_selector(text):
    """[(key, op, values)] with op in =, !=, in, notin, exists, !, gt, lt."""
    reqs = []
    for term in split_top(text or ""):
        m = re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", term)
        if m:
            values = [v.strip() for v in m.group(3).split(",") if v.strip()]
            reqs.append((m.group(1), m.group(2), values))
            continue
        if term.startswith("!"):
            reqs.append((term[1:].strip(), "!", []))
            continue
        for op, name in (("!=", "!="), ("==", "="), ("=", "="), (">", "gt"), ("<", "lt")):
            if op in term:
                key, value = term.split(op, 1)
                reqs.append((key.strip(), name, [value.strip()]))
                break
        else:
            reqs.append((term, "exists", []))
    for key, op, values in reqs:
        if not key or not re.match(r"^([A-Za-z0-9.\-]+/)?[A-Za-z0-9]([A-Za-z0-9._\-]*)?$", key):
            raise bad_request(f"unable to parse requirement: invalid label key \"{key}\"")
        if op in ("gt", "lt") and not re.match(r"^-?\d+$", values[0]):
            raise bad_request(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                              f"must be an integer")
    return reqs


def selector_requirements(sel):
    """A metav1.LabelSelector as requirements; None selects nothing."""
    if sel is None:
        return None
    reqs = [(k, "=", [str(v)]) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in sel.get("matchExpressions") or []:
        reqs.append((expr.get("key"), ops.get(expr.get("operator"), "in"),
                     [str(v) for v in expr.get("values") or []]))
    return reqs


def labels_match(reqs, labels):
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op == "=" and (not present or value != values[0]):
            return False
        if op == "!=" and present and value == values[0]:
            return False
        if op == "in" and (not present or value not in values):
            return False
        if op == "notin" and present and value in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
        if op in ("gt", "lt"):
            try:
                n = int(value)
            except (TypeError, ValueError):
                return False
            if (op == "gt" and not n > int(values[0])) or (op == "lt" and not n < int(values[0])):
                return False
    return True


def parse_field_selector(text, rt):
    reqs = []
    for term in split_top(text or ""):
        for op, name in (("!=", "!="), ("==", "="), ("=", "=")):
            if op in term:
                field, value = term.split(op, 1)
                field = field.strip()
                break
        else:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{term}'")
        if field not in rt.fields:
            raise bad_request(f'field label not supported: {field}')
        reqs.append((field, name, value.strip()))
    return reqs


def field_value(obj, field):
    cur = obj
    for part in field.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(part)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    if isinstance(cur, list):  # status.podIPs
        return ",".join(i.get("ip", "") if isinstance(i, dict) else str(i) for i in cur)
    return str(cur)


def fields_match(reqs, obj):
    for field, op, value in reqs:
        actual = field_value(obj, field)
        if op == "=" and actual != value:
            return False
        if op == "!=" and actual == value:
            return False
    return True


def tolerates(tolerations, taint):
    for tol in tolerations or []:
        effect = tol.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        op = tol.get("operator") or "Equal"
        key = tol.get("key")
        if not key:
            if op == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if op == "Exists" or (tol.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def node_selector_term_matches(term, node):
    labels = labels_of(node)
    for expr in term.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        v = labels.get(key)
        if op == "In" and v not in values:
            return False
        if op == "NotIn" and v in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op in ("Gt", "Lt"):
            try:
                n, bound = int(v), int(values[0])
            except (TypeError, ValueError, IndexError):
                return False
            if (op == "Gt" and not n > bound) or (op == "Lt" and not n < bound):
                return False
    for expr in term.get("matchFields") or []:
        if expr.get("key") == "metadata.name":
            name = node["metadata"]["name"]
            if expr.get("operator") == "In" and name not in (expr.get("values") or []):
                return False
            if expr.get("operator") == "NotIn" and name in (expr.get("values") or []):
                return False
    return True


# ---------------------------------------------------------------------------------------------
# Patches


class _Delete:
    pass


DELETE = _Delete()


def merge_key(names):
    field = names[-1] if names else ""
    if field == "ports":
        if len(names) >= 2 and names[-2] in ("containers", "initContainers",
                                             "ephemeralContainers"):
            return "containerPort"
        return "port"
    if field == "addresses":
        return "type" if len(names) >= 2 and names[-2] == "status" else None
    return MERGE_KEYS.get(field)


def strategic_merge(orig, patch, names=()):
    if not isinstance(patch, dict):
        return clone(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return DELETE
    if directive == "replace":
        return {k: clone(v) for k, v in patch.items() if not k.startswith("$")}
    out = clone(orig) if isinstance(orig, dict) else {}
    orders = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list):
                out[field] = [v for v in out[field] if v not in (value or [])]
            continue
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            merged = strategic_merge(out.get(key), value, names + (key,))
            if merged is DELETE:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = merge_list(out.get(key), value, names + (key,))
        else:
            out[key] = value
    for field, order in orders.items():
        if isinstance(out.get(field), list):
            out[field] = apply_order(out[field], order, merge_key(names + (field,)))
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"] or [])
        out = {k: v for k, v in out.items() if k in keep}
    return out


def merge_list(orig, patch, names):
    key = merge_key(names)
    field = names[-1]
    if key is None:
        if field in PRIMITIVE_SETS and isinstance(orig, list):
            return clone(orig) + [v for v in patch if v not in orig]
        return [clone(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [strategic_merge({}, v, names) for v in patch
                if not (isinstance(v, dict) and "$patch" in v)]
    out = [clone(v) for v in orig] if isinstance(orig, list) else []
    for item in patch:
        if not isinstance(item, dict):
            out.append(clone(item))
            continue
        match = next((i for i, o in enumerate(out)
                      if isinstance(o, dict) and o.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            out = [o for o in out if not (isinstance(o, dict) and o.get(key) == item.get(key))]
            continue
        if match is None:
            merged = strategic_merge({}, item, names)
            if merged is not DELETE:
                out.append(merged)
        else:
            merged = strategic_merge(out[match], item, names)
            if merged is DELETE:
                out.pop(match)
            else:
                out[match] = merged
    return out


def apply_order(items, order, key):
    def ident(v):
        return v.get(key) if key and isinstance(v, dict) else json.dumps(v, sort_keys=True)
    wanted = [ident(o) for o in order]
    listed = [i for i in items if ident(i) in wanted]
    listed.sort(key=lambda i: wanted.index(ident(i)))
    rest = [i for i in items if ident(i) not in wanted]
    return listed + rest


def merge_patch(orig, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return clone(patch)
    out = clone(orig) if isinstance(orig, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _resolve(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, list):
            cur = cur[int(p)]
        elif isinstance(cur, dict):
            cur = cur[p]
        else:
            raise KeyError(p)
    return cur


def _add(doc, parts, value):
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if idx > len(parent):
            raise IndexError(last)
        parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise KeyError(last)
    return doc


def _remove(doc, parts):
    parent = _resolve(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        return parent.pop(int(last))
    return parent.pop(last)


def json_patch(doc, ops):
    """RFC 6902."""
    doc = clone(doc)
    if not isinstance(ops, list):
        raise ValueError("a JSON patch is a list of operations")
    for op in ops:
        kind = op.get("op")
        parts = _pointer(op.get("path", ""))
        if kind == "add":
            doc = _add(doc, parts, clone(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _resolve(doc, parts)
            if not parts:
                doc = clone(op.get("value"))
            else:
                _remove(doc, parts)
                doc = _add(doc, parts, clone(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = _remove(doc, src) if kind == "move" else clone(_resolve(doc, src))
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _resolve(doc, parts) != op.get("value"):
                raise ValueError(f"testing value {op.get('path')} failed")
        else:
            raise ValueError(f"Unexpected kind: {kind}")
    return doc


# ---------------------------------------------------------------------------------------------
# Server-side apply: field sets as tuples of path elements (f:name, k:{...}, v:value, .)

SSA_SKIP_META = ("name", "namespace", "uid", "resourceVersion", "generation",
                 "creationTimestamp", "managedFields", "deletionTimestamp",
                 "deletionGracePeriodSeconds", "selfLink")


def ssa_keys(names, typed):
    if not typed or not names:
        return None
    key = merge_key(names)
    return (key,) if key else None


def item_id(item, keys):
    return "k:" + json.dumps({k: item[k] for k in keys if k in item}, sort_keys=True,
                             separators=(",", ":"))


def fieldset(obj, typed, skip_status):
    out = set()
    for key, value in obj.items():
        if key in ("apiVersion", "kind") or (key == "status" and skip_status):
            continue
        if key == "metadata" and isinstance(value, dict):
            for mk, mv in value.items():
                if mk not in SSA_SKIP_META:
                    _fields(mv, ("metadata", mk), ("f:metadata", "f:" + mk), typed, out)
            continue
        _fields(value, (key,), ("f:" + key,), typed, out)
    return out


def _fields(value, names, prefix, typed, out):
    if isinstance(value, dict):
        if not value:
            out.add(prefix)
        for k, v in value.items():
            _fields(v, names + (k,), prefix + ("f:" + k,), typed, out)
        return
    if isinstance(value, list):
        keys = ssa_keys(names, typed)
        if keys and value and all(isinstance(i, dict) for i in value):
            for item in value:
                iid = item_id(item, keys)
                out.add(prefix + (iid, "."))
                for k, v in item.items():
                    _fields(v, names + (k,), prefix + (iid, "f:" + k), typed, out)
            return
        if typed and names[-1] in PRIMITIVE_SETS and value:
            for item in value:
                out.add(prefix + ("v:" + json.dumps(item),))
            return
    out.add(prefix)


def _step(cur, elem):
    """One path element down; (found, value)."""
    if elem.startswith("f:"):
        if isinstance(cur, dict) and elem[2:] in cur:
            return True, cur[elem[2:]]
        return False, None
    if elem.startswith("k:"):
        want = json.loads(elem[2:])
        for item in cur if isinstance(cur, list) else []:
            if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
                return True, item
        return False, None
    if elem.startswith("v:"):
        value = json.loads(elem[2:])
        return (isinstance(cur, list) and value in cur), value
    return True, cur  # "."


def get_path(obj, path):
    cur = obj
    for elem in path:
        found, cur = _step(cur, elem)
        if not found:
            return False, None
    return True, cur


def remove_path(obj, path):
    if not path:
        return
    if path[-1] == ".":
        parent_ok, parent = get_path(obj, path[:-2])
        found, item = get_path(obj, path[:-1])
        if parent_ok and found and isinstance(parent, list):
            parent.remove(item)
        return
    found, parent = get_path(obj, path[:-1])
    if not found:
        return
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict):
        parent.pop(last[2:], None)
    elif last.startswith("v:") and isinstance(parent, list):
        value = json.loads(last[2:])
        if value in parent:
            parent.remove(value)


def fields_to_v1(paths):
    root = {}
    for path in sorted(paths):
        cur = root
        for elem in path:
            cur = cur.setdefault(elem, {})
    return root


def v1_to_fields(tree, prefix=()):
    out = set()
    for key, sub in (tree or {}).items():
        if key == ".":
            out.add(prefix + (".",))
        elif sub:
            out |= v1_to_fields(sub, prefix + (key,))
        else:
            out.add(prefix + (key,))
    return out


def apply_merge(live, applied, names, typed):
    if isinstance(applied, dict) and isinstance(live, dict):
        out = clone(live)
        for key, value in applied.items():
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = apply_merge(out[key], value, names + (key,), typed)
            else:
                out[key] = clone(value)
        return out
    if isinstance(applied, list) and isinstance(live, list):
        keys = ssa_keys(names, typed)
        if keys and all(isinstance(i, dict) for i in applied + live):
            out = clone(live)
            for item in applied:
                idx = next((i for i, o in enumerate(out)
                            if all(o.get(k) == item.get(k) for k in keys)), None)
                if idx is None:
                    out.append(clone(item))
                else:
                    out[idx] = apply_merge(out[idx], item, names, typed)
            return out
        if typed and names and names[-1] in PRIMITIVE_SETS:
            return clone(live) + [v for v in applied if v not in live]
    return clone(applied)


def field_text(path):
    parts = []
    for elem in path:
        if elem.startswith("f:"):
            parts.append("." + elem[2:])
        elif elem.startswith("k:"):
            parts.append("[" + ",".join(f"{k}={json.dumps(v)}"
                                        for k, v in json.loads(elem[2:]).items()) + "]")
        elif elem.startswith("v:"):
            parts.append("[" + elem[2:] + "]")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------
# The store


class Config:
    def __init__(self, args):
        self.ready_after = args.ready_after
        self.reschedule_after = args.reschedule_after
        self.grace = args.grace
        self.sync_interval = args.sync_interval
        self.reregister_after = 10.0
        self.crd_establish_after = 0.3
        self.pdb_controller_paused = False
        self.control_plane_components = ["kube-apiserver", "kube-controller-manager",
                                         "kube-scheduler", "etcd"]
        self.etcd_strict_reconfig = True

    KEYS = ("ready_after", "reschedule_after", "grace", "sync_interval", "reregister_after",
            "crd_establish_after", "pdb_controller_paused", "control_plane_components",
            "etcd_strict_reconfig")

    def as_dict(self):
        return {k: getattr(self, k) for k in self.KEYS}

    def update(self, values):
        for key, value in values.items():
            if key not in self.KEYS:
                raise ValueError(f"unknown setting {key}")
            setattr(self, key, value)


class Store:
    def __init__(self, config, version):
        self.cfg = config
        self.version = version
        self.lock = threading.Condition(threading.RLock())
        self.rv = 1
        self.types = {}
        self.data = {}
        self.history = collections.deque(maxlen=20000)
        self.stopping = False
        self.changes = 0
        # calls
        self.calls = collections.Counter()
        self.call_status = collections.Counter()
        self.total_calls = 0
        # controllers' memory
        self.delete_at = {}  # pod uid -> monotonic time of the end of its grace
        self.min_budget = {}
        self.min_deploy = {}
        self.ip_counter = 10
        self.svc_counter = 10
        for rt in BUILTINS:
            self.register(rt)

    # -- registry

    def register(self, rt):
        self.types[rt.key] = rt
        self.data.setdefault(rt.key, {})

    def unregister(self, key):
        self.types.pop(key, None)
        self.data.pop(key, None)

    def rtype(self, group, version, plural):
        rt = self.types.get((group, plural))
        if rt is None or version not in rt.versions:
            return None
        return rt

    def groups(self):
        names = []
        for rt in self.types.values():
            if rt.group and rt.group not in names:
                names.append(rt.group)
        return sorted(names, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g))

    # -- low-level writes (lock held; objects are never mutated once stored)

    def next_rv(self):
        self.rv += 1
        return str(self.rv)

    def items(self, key, ns=None):
        objs = self.data.get(key, {})
        if ns is None:
            return [objs[k] for k in sorted(objs)]
        return [objs[k] for k in sorted(objs) if k[0] == ns]

    def find(self, key, ns, name):
        return self.data.get(key, {}).get((ns or "", name))

    def find_uid(self, uid):
        for key, objs in self.data.items():
            for obj in objs.values():
                if obj["metadata"].get("uid") == uid:
                    return key, obj
        return None, None

    def _record(self, key, kind, obj, old):
        self.history.append((self.rv, key, kind, obj, old))
        self.changes += 1
        self.track_health(key)
        self.lock.notify_all()

    def put_new(self, rt, obj):
        m = meta(obj)
        m["resourceVersion"] = self.next_rv()
        self.data[rt.key][(m.get("namespace", ""), m["name"])] = obj
        self._record(rt.key, "ADDED", obj, None)
        return obj

    def put(self, rt, old, new):
        """Stores NEW in place of OLD; a no-op update writes nothing (as etcd3 storage)."""
        if strip_rv(old) == strip_rv(new):
            return old
        m = meta(new)
        m["resourceVersion"] = self.next_rv()
        self.data[rt.key][(m.get("namespace", ""), m["name"])] = new
        self._record(rt.key, "MODIFIED", new, old)
        return new

    def drop(self, rt, obj):
        m = obj["metadata"]
        if self.data[rt.key].pop((m.get("namespace", ""), m["name"]), None) is None:
            return
        gone = clone(obj)
        gone["metadata"]["resourceVersion"] = self.next_rv()
        self.delete_at.pop(m.get("uid"), None)
        self._record(rt.key, "DELETED", gone, obj)

    # -- health tracking for "a budget is never violated" assertions

    def track_health(self, key):
        if key not in (("", "pods"), ("policy", "poddisruptionbudgets"), ("apps", "deployments"),
                       ("apps", "replicasets")):
            return
        for pdb in self.items(("policy", "poddisruptionbudgets")):
            ident = pdb["metadata"]["namespace"] + "/" + pdb["metadata"]["name"]
            pods = self.pdb_pods(pdb)
            healthy = sum(1 for p in pods if healthy_pod(p))
            desired = (pdb.get("status") or {}).get("desiredHealthy", 0)
            entry = self.min_budget.get(ident)
            if entry is None or entry.get("uid") != pdb["metadata"]["uid"]:
                entry = self.min_budget[ident] = {"uid": pdb["metadata"]["uid"],
                                                  "minCurrentHealthy": healthy}
            entry["minCurrentHealthy"] = min(entry["minCurrentHealthy"], healthy)
            entry["currentHealthy"] = healthy
            entry["desiredHealthy"] = desired
        for d in self.items(("apps", "deployments")):
            ident = d["metadata"]["namespace"] + "/" + d["metadata"]["name"]
            ready = sum(1 for p in self.deployment_pods(d) if healthy_pod(p))
            entry = self.min_deploy.get(ident)
            if entry is None or entry.get("uid") != d["metadata"]["uid"]:
                entry = self.min_deploy[ident] = {"uid": d["metadata"]["uid"], "minReady": ready}
            entry["minReady"] = min(entry["minReady"], ready)
            entry["ready"] = ready
            entry["replicas"] = d["spec"].get("replicas", 1)

    def reset_health(self):
        self.min_budget.clear()
        self.min_deploy.clear()
        self.track_health(("", "pods"))

    def pdb_pods(self, pdb):
        reqs = selector_requirements((pdb.get("spec") or {}).get("selector"))
        if reqs is None:
            return []
        return [p for p in self.items(("", "pods"), pdb["metadata"]["namespace"])
                if labels_match(reqs, labels_of(p))]

    def owned(self, key, owner, ns):
        uid = owner["metadata"]["uid"]
        return [o for o in self.items(key, ns)
                if any(r.get("uid") == uid and r.get("controller")
                       for r in o["metadata"].get("ownerReferences") or [])]

    def deployment_pods(self, d):
        ns = d["metadata"]["namespace"]
        pods = []
        for rs in self.owned(("apps", "replicasets"), d, ns):
            pods += self.owned(("", "pods"), rs, ns)
        return pods


def strip_rv(obj):
    o = dict(obj)
    m = dict(o.get("metadata") or {})
    m.pop("resourceVersion", None)
    o["metadata"] = m
    return o


def pod_ready(pod):
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def healthy_pod(pod):
    return not pod["metadata"].get("deletionTimestamp") and pod_ready(pod)


def node_ready(node):
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_active(pod):
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


# ---------------------------------------------------------------------------------------------
# Defaulting and validation (what the real registry strategies and admission do)

NAME_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAME_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def validate_name(rt, name):
    if rt.group == "rbac.authorization.k8s.io":
        if name in (".", "..") or "/" in name or "%" in name:
            return f'may not contain "/" or "%", nor be "." or ".."'
        return None
    if rt.key in (("", "namespaces"), ("", "services")):
        if len(name) > 63 or not NAME_LABEL.match(name):
            return ("a lowercase RFC 1123 label must consist of lower case alphanumeric "
                    "characters or '-', and must start and end with an alphanumeric character")
        return None
    if len(name) > 253 or not NAME_SUBDOMAIN.match(name):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character")
    return None


def default_containers(spec):
    for field in ("containers", "initContainers"):
        for c in spec.get(field) or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            image = c.get("image", "")
            tag = image.rsplit("/", 1)[-1]
            latest = ":" not in tag or tag.endswith(":latest")
            c.setdefault("imagePullPolicy",
                         "Always" if latest and "@" not in tag else "IfNotPresent")
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                port.setdefault("protocol", "TCP")


def default_pod_spec(spec):
    default_containers(spec)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")


def pod_qos(spec):
    requests = limits = False
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        requests = requests or bool(res.get("requests"))
        limits = limits or bool(res.get("limits"))
    return "Burstable" if (requests or limits) else "BestEffort"


def default_object(store, rt, obj, creating):
    """Defaults that the real server applies on every write (decode) or on create."""
    spec = obj.get("spec")
    key = rt.key
    if key == ("", "pods"):
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        if creating:
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("serviceAccount", spec["serviceAccountName"])
            spec.setdefault("enableServiceLinks", True)
            pc = spec.get("priorityClassName")
            if pc in SYSTEM_PRIORITIES:
                spec["priority"] = SYSTEM_PRIORITIES[pc]
            elif pc:
                found = store.find(("scheduling.k8s.io", "priorityclasses"), "", pc)
                if found is not None:
                    spec["priority"] = found.get("value", 0)
            else:
                spec.setdefault("priority", 0)
            tols = spec.setdefault("tolerations", [])
            for taint_key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
                if not any(t.get("key") == taint_key and t.get("effect") in (None, "NoExecute")
                           for t in tols) and not any(not t.get("key") and
                                                      t.get("operator") == "Exists"
                                                      for t in tols):
                    tols.append({"key": taint_key, "operator": "Exists", "effect": "NoExecute",
                                 "tolerationSeconds": 300})
    elif key in (("apps", "deployments"), ("apps", "replicasets"), ("apps", "statefulsets"),
                 ("apps", "daemonsets")):
        spec = obj.setdefault("spec", {})
        if key != ("apps", "daemonsets"):
            spec.setdefault("replicas", 1)
        tmpl = spec.setdefault("template", {})
        default_pod_spec(tmpl.setdefault("spec", {}))
        if key == ("apps", "deployments"):
            strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
            if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                strategy.setdefault("type", "RollingUpdate")
                ru = strategy.setdefault("rollingUpdate", {})
                ru.setdefault("maxUnavailable", "25%")
                ru.setdefault("maxSurge", "25%")
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
        if key == ("apps", "daemonsets"):
            us = spec.setdefault("updateStrategy", {"type": "RollingUpdate"})
            if us.get("type") == "RollingUpdate":
                us.setdefault("rollingUpdate", {"maxUnavailable": 1, "maxSurge": 0})
            spec.setdefault("revisionHistoryLimit", 10)
    elif key == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if creating and spec.get("clusterIP") is None and spec["type"] != "ExternalName":
            store.svc_counter += 1
            n = store.svc_counter
            spec["clusterIP"] = f"100.64.{n // 250}.{n % 250 + 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    elif key == ("", "secrets"):
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if string_data:
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
    elif key == ("", "namespaces"):
        m = meta(obj)
        m.setdefault("labels", {})["kubernetes.io/metadata.name"] = m["name"]
        if creating:
            obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
    elif key == ("policy", "poddisruptionbudgets"):
        pass
    return obj


def validate_object(rt, obj):
    name = obj["metadata"]["name"]
    causes = []
    spec = obj.get("spec") or {}
    if rt.key in (("apps", "deployments"), ("apps", "replicasets"), ("apps", "daemonsets"),
                  ("apps", "statefulsets")):
        sel = spec.get("selector")
        if not sel:
            causes.append(("spec.selector", "FieldValueRequired", "Required value"))
        else:
            tl = labels_of(spec.get("template") or {})
            reqs = selector_requirements(sel)
            if not reqs or not labels_match(reqs, tl):
                causes.append(("spec.template.metadata.labels", "FieldValueInvalid",
                               f"Invalid value: {json.dumps(tl)}: `selector` does not match "
                               f"template `labels`"))
        if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
            causes.append(("spec.template.spec.containers", "FieldValueRequired",
                           "Required value"))
    if rt.key == ("", "pods") and not spec.get("containers"):
        causes.append(("spec.containers", "FieldValueRequired", "Required value"))
    if rt.key == ("policy", "poddisruptionbudgets"):
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            causes.append(("spec", "FieldValueInvalid",
                           "Invalid value: minAvailable and maxUnavailable cannot be both set"))
    if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        names = spec.get("names") or {}
        if name != f"{names.get('plural')}.{spec.get('group')}":
            causes.append(("metadata.name", "FieldValueInvalid",
                           f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
        if not spec.get("versions"):
            causes.append(("spec.versions", "FieldValueRequired", "Required value"))
        if not names.get("kind"):
            causes.append(("spec.names.kind", "FieldValueRequired", "Required value"))
    if causes:
        raise invalid(rt, name, causes)


def prepare_create_status(rt, obj):
    """Registry strategies' PrepareForCreate: most kinds drop a status given on create."""
    key = rt.key
    if key == ("", "pods"):
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos(obj.get("spec") or {})}
    elif key == ("", "namespaces"):
        obj["status"] = {"phase": "Active"}
    elif key == ("apiextensions.k8s.io", "customresourcedefinitions"):
        obj["status"] = {"conditions": [], "acceptedNames": {"plural": "", "kind": ""},
                         "storedVersions": []}
    elif key == ("", "nodes"):
        pass  # nodes keep the status they are created with
    elif rt.crd:
        if rt.status:
            obj.pop("status", None)
    elif rt.status:
        obj["status"] = {} if key != ("", "services") else {"loadBalancer": {}}


def spec_part(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


# ---------------------------------------------------------------------------------------------
# The API


class Api:
    def __init__(self, store):
        self.s = store

    # -- helpers

    def out(self, rt, obj, version=None):
        o = clone(obj)
        o["apiVersion"] = rt.api_version(version)
        o["kind"] = rt.kind
        return o

    def ensure_namespace(self, rt, ns, name, creating=True):
        if not rt.namespaced:
            return
        nsobj = self.s.find(("", "namespaces"), "", ns)
        if nsobj is None:
            raise ApiError(404, "NotFound", f'namespaces "{ns}" not found',
                           {"name": ns, "kind": "namespaces"})
        if creating and nsobj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden",
                           f'{qualified(rt)} "{name}" is forbidden: unable to create new '
                           f"content in namespace {ns} because it is being terminated",
                           details(rt, name, causes=[{"reason": "NamespaceTerminating",
                                                      "message": f"namespace {ns} is being "
                                                                 f"terminated",
                                                      "field": "metadata.namespace"}]))

    def get_obj(self, rt, ns, name):
        obj = self.s.find(rt.key, ns, name)
        if obj is None:
            raise not_found(rt, name)
        return obj

    def check_body_kind(self, rt, version, body):
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        api_version = body.get("apiVersion")
        kind = body.get("kind")
        if api_version and api_version not in [rt.api_version(v) for v in rt.versions]:
            raise bad_request(f"the API version in the data ({api_version}) does not match the "
                              f"expected API version ({rt.api_version(version)})")
        if kind and kind != rt.kind:
            raise bad_request(f"{rt.api_version(version)}, Kind={kind} is not a {rt.kind}")

    # -- managed fields

    def record_update(self, rt, old, new, manager, subresource=None, version=None):
        typed = not rt.crd
        old_set = fieldset(old, typed, rt.status) if old else set()
        new_set = fieldset(new, typed, rt.status)
        if subresource == "status":
            old_set = {p for p in fieldset(old, typed, False) if p[0] == "f:status"}
            new_set = {p for p in fieldset(new, typed, False) if p[0] == "f:status"}
        changed = {p for p in new_set
                   if p not in old_set or get_path(old, p) != get_path(new, p)}
        removed = old_set - new_set
        entries = clone(new["metadata"].get("managedFields") or [])
        result, mine = [], None
        for e in entries:
            paths = v1_to_fields(e.get("fieldsV1")) - removed
            if e.get("manager") == manager and e.get("operation") == "Update" and \
                    e.get("subresource") == subresource:
                mine = (e, paths)
                continue
            paths -= changed
            if paths:
                e["fieldsV1"] = fields_to_v1(paths)
                result.append(e)
        own = (mine[1] if mine else set()) | changed
        if mine and not changed and own == v1_to_fields(mine[0].get("fieldsV1")):
            # nothing this manager owns changed: its entry, time included, stays as it was,
            # so a no-op update stays a no-op (the API server does not bump the timestamp)
            result.append(mine[0])
        elif own:
            entry = {"manager": manager, "operation": "Update",
                     "apiVersion": rt.api_version(version), "time": now_ts(),
                     "fieldsType": "FieldsV1", "fieldsV1": fields_to_v1(own)}
            if subresource:
                entry["subresource"] = subresource
            result.append(entry)
        if result:
            new["metadata"]["managedFields"] = result
        else:
            new["metadata"].pop("managedFields", None)

    # -- verbs

    def list(self, rt, version, ns, params):
        lsel = parse_label_selector(params.get("labelSelector"))
        fsel = parse_field_selector(params.get("fieldSelector"), rt)
        items = [o for o in self.s.items(rt.key, ns)
                 if labels_match(lsel, labels_of(o)) and fields_match(fsel, o)]
        start = params.get("continue")
        if start:
            try:
                token = json.loads(base64.b64decode(start))
                after = tuple(token["k"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid: bad format")
            items = [o for o in items
                     if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after]
        lmeta = {"resourceVersion": str(self.s.rv)}
        limit = int(params.get("limit") or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            lmeta["continue"] = base64.b64encode(json.dumps(
                {"k": [last.get("namespace", ""), last["name"]], "rv": self.s.rv}).encode()
            ).decode()
            if not lsel and not fsel:
                lmeta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        out_items = []
        for o in items:
            item = self.out(rt, o, version)
            if not rt.crd:  # built-in list items carry no apiVersion/kind
                item.pop("apiVersion")
                item.pop("kind")
            out_items.append(item)
        return {"kind": rt.kind + "List", "apiVersion": rt.api_version(version),
                "metadata": lmeta, "items": out_items}

    def create(self, rt, version, ns, body, params, manager, internal=False):
        self.check_body_kind(rt, version, body)
        obj = clone(body)
        m = meta(obj)
        if rt.namespaced:
            if m.get("namespace") and m["namespace"] != ns:
                raise bad_request("the namespace of the provided object does not match the "
                                  "namespace sent on the request")
            m["namespace"] = ns
        else:
            m.pop("namespace", None)
        if not m.get("name"):
            if m.get("generateName"):
                for _ in range(20):
                    candidate = m["generateName"] + rand_suffix()
                    if self.s.find(rt.key, ns, candidate) is None:
                        break
                m["name"] = candidate
            else:
                raise invalid(rt, "", [("metadata.name", "FieldValueRequired",
                                        "Required value: name or generateName is required")])
        name = m["name"]
        problem = validate_name(rt, name)
        if problem:
            raise invalid(rt, name, [("metadata.name", "FieldValueInvalid",
                                      f'Invalid value: "{name}": {problem}')])
        self.ensure_namespace(rt, ns, name)
        if self.s.find(rt.key, ns, name) is not None:
            raise already_exists(rt, name)
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "selfLink"):
            m.pop(field, None)
        m["uid"] = str(uuid.uuid4())
        m["creationTimestamp"] = now_ts()
        m["generation"] = 1
        obj["apiVersion"] = rt.api_version(version)
        obj["kind"] = rt.kind
        if not internal:
            prepare_create_status(rt, obj)
        default_object(self.s, rt, obj, creating=True)
        validate_object(rt, obj)
        if rt.key == ("apiextensions.k8s.io", "customresourcedefinitions"):
            fin = m.setdefault("finalizers", [])
            if "customresourcecleanup.apiextensions.k8s.io" not in fin:
                fin.append("customresourcecleanup.apiextensions.k8s.io")
        m.pop("managedFields", None)
        if manager:
            self.record_update(rt, None, obj, manager, version=version)
        if params.get("dryRun") == "All":
            return self.out(rt, obj, version)
        stored = self.s.put_new(rt, obj)
        return self.out(rt, stored, version)

    def finish_update(self, rt, version, old, new, manager, subresource=None, params=None,
                      check_rv=True, managed=None):
        """Applies the strategy of an update of OLD to NEW and stores it."""
        params = params or {}
        name = old["metadata"]["name"]
        self.check_body_kind(rt, version, new)
        nm = meta(new)
        if nm.get("name", name) != name:
            raise bad_request(f"the name of the object ({nm.get('name')}) does not match the name "
                              f"on the URL ({name})")
        if rt.namespaced and nm.get("namespace", old["metadata"]["namespace"]) != \
                old["metadata"]["namespace"]:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        rv = nm.get("resourceVersion")
        if check_rv:
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if not rv and rt.crd:
                raise invalid(rt, name, [("metadata.resourceVersion", "FieldValueInvalid",
                                          "Invalid value: 0x0: must be specified for an update")])
        if subresource == "status":
            result = clone(old)
            result["status"] = clone(new.get("status"))
            if result["status"] is None:
                result.pop("status")
        else:
            result = clone(new)
            if rt.status:
                if "status" in old:
                    result["status"] = clone(old["status"])
                else:
                    result.pop("status", None)
        rm = meta(result)
        om = old["metadata"]
        for field in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation"):
            if field in om:
                rm[field] = om[field]
            else:
                rm.pop(field, None)
        rm["name"] = name
        if rt.namespaced:
            rm["namespace"] = om["namespace"]
        rm["resourceVersion"] = om["resourceVersion"]
        rm["managedFields"] = clone(om.get("managedFields") or []) if managed is None else managed
        if not rm["managedFields"]:
            rm.pop("managedFields")
        result["apiVersion"] = rt.api_version(version)
        result["kind"] = rt.kind
        default_object(self.s, rt, result, creating=False)
        validate_object(rt, result)
        if spec_part(result) != spec_part(old) and subresource != "status":
            rm["generation"] = om.get("generation", 1) + 1
        if manager:
            self.record_update(rt, old, result, manager, subresource, version)
        if params.get("dryRun") == "All":
            return self.out(rt, result, version), 200
        if om.get("deletionTimestamp") and not rm.get("finalizers") and \
                rt.key != ("", "namespaces") and not self.lingering(rt, old):
            self.s.drop(rt, result)
            return self.out(rt, result, version), 200
        stored = self.s.put(rt, old, result)
        return self.out(rt, stored, version), 200

    def lingering(self, rt, obj):
        """A pod still in its grace period."""
        if rt.key != ("", "pods"):
            return False
        end = self.s.delete_at.get(obj["metadata"]["uid"])
        return end is not None and time.monotonic() < end

    def update(self, rt, version, ns, name, body, params, manager, subresource=None):
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not a JSON object")
        old = self.s.find(rt.key, ns, name)
        if old is None:
            if rt.create_on_update and subresource is None:
                body = clone(body)
                meta(body).setdefault("name", name)
                return self.create(rt, version, ns, body, params, manager), 201
            raise not_found(rt, name)
        return self.finish_update(rt, version, old, body, manager, subresource, params)

    def patch(self, rt, version, ns, name, raw, content_type, params, manager, subresource=None):
        ctype = content_type.split(";")[0].strip()
        if ctype == "application/apply-patch+yaml":
            if subresource not in (None, "status"):
                raise method_not_allowed()
            return self.apply(rt, version, ns, name, raw, params, subresource)
        try:
            patch = json.loads(raw or b"null")
        except ValueError as e:
            raise bad_request(f"error decoding patch: {e}")
        old = self.s.find(rt.key, ns, name)
        if old is None:
            raise not_found(rt, name)
        current = self.out(rt, old, version)
        try:
            if ctype == "application/strategic-merge-patch+json":
                if rt.crd:
                    raise unsupported_media(["application/json-patch+json",
                                             "application/merge-patch+json",
                                             "application/apply-patch+yaml"])
                if not isinstance(patch, dict):
                    raise bad_request("error decoding patch: the patch is not a JSON object")
                result = strategic_merge(current, patch)
            elif ctype == "application/merge-patch+json":
                result = merge_patch(current, patch)
            elif ctype == "application/json-patch+json":
                result = json_patch(current, patch)
            else:
                raise unsupported_media(["application/json-patch+json",
                                         "application/merge-patch+json",
                                         "application/strategic-merge-patch+json",
                                         "application/apply-patch+yaml"])
        except ApiError:
            raise
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in "
                           f"our request: {e}", details(rt, name))
        if not isinstance(result, dict):
            raise bad_request("the patch produced something that is not an object")
        rv = (result.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        return self.finish_update(rt, version, old, result, manager, subresource, params,
                                  check_rv=False)

    def apply(self, rt, version, ns, name, raw, params, subresource=None):
        manager = params.get("fieldManager")
        if not manager:
            raise bad_request("PATCH " + rt.plural + ": fieldManager is required for apply "
                              "requests")
        text = (raw or b"").decode("utf-8", "replace")
        try:
            applied = json.loads(text)
        except ValueError:
            if yaml is None:
                raise unsupported_media(["application/apply-patch+yaml (JSON only: PyYAML "
                                         "is not installed)"])
            try:
                applied = yaml.safe_load(text)
            except yaml.YAMLError as e:
                raise bad_request(f"error decoding YAML: {e}")
        if not isinstance(applied, dict):
            raise bad_request("the applied configuration is not an object")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("invalid object type: /, Kind=")
        self.check_body_kind(rt, version, applied)
        am = meta(applied)
        if am.get("name") and am["name"] != name:
            raise bad_request(f"the name of the object ({am['name']}) does not match the name on "
                              f"the URL ({name})")
        force = params.get("force") == "true"
        typed = not rt.crd
        applied_body = clone(applied)
        if subresource == "status":
            applied_body = {"apiVersion": applied["apiVersion"], "kind": applied["kind"],
                            "metadata": {"name": name}, "status": applied.get("status") or {}}
        elif rt.status:
            applied_body.pop("status", None)
        new_set = fieldset(applied_body, typed, False)
        live = self.s.find(rt.key, ns, name)
        entry_base = {"manager": manager, "operation": "Apply",
                      "apiVersion": rt.api_version(version), "time": now_ts(),
                      "fieldsType": "FieldsV1", "fieldsV1": fields_to_v1(new_set)}
        if subresource:
            entry_base["subresource"] = subresource
        if live is None:
            if subresource:
                raise not_found(rt, name)
            body = clone(applied_body)
            meta(body)["name"] = name
            created = self.create(rt, version, ns, body, params, None)
            if params.get("dryRun") == "All":
                return created, 201
            obj = self.s.find(rt.key, ns, name)
            new = clone(obj)
            new["metadata"]["managedFields"] = [entry_base]
            stored = self.s.put(rt, obj, new)
            return self.out(rt, stored, version), 201
        live_out = self.out(rt, live, version)
        entries = clone(live["metadata"].get("managedFields") or [])
        mine, others = set(), []
        for e in entries:
            paths = v1_to_fields(e.get("fieldsV1"))
            if e.get("manager") == manager and e.get("operation") == "Apply" and \
                    e.get("subresource") == subresource:
                mine = paths
            else:
                others.append((e, paths))
        if not force:
            conflicts = []
            for e, paths in others:
                if e.get("manager") == manager:
                    continue
                for p in sorted(paths & new_set):
                    if p[-1] == ".":  # the item itself: both have it
                        continue
                    if get_path(live_out, p) != get_path(applied_body, p):
                        conflicts.append((e, p))
            if conflicts:
                causes = [{"reason": "FieldManagerConflict",
                           "message": f'conflict with "{e["manager"]}"'
                                      + (" using " + e.get("apiVersion", "")
                                         if e.get("operation") == "Update" else ""),
                           "field": field_text(p)} for e, p in conflicts]
                lines = "\n".join(f'- {c["message"]}: {c["field"]}' for c in causes)
                raise conflict(rt, name, f"Apply failed with {len(conflicts)} conflict"
                               f"{'s' if len(conflicts) > 1 else ''}: {lines}", causes)
        merged_src = clone(applied_body)
        merged_src.pop("apiVersion", None)
        merged_src.pop("kind", None)
        merged_src.get("metadata", {}).pop("resourceVersion", None)
        merged = apply_merge(live_out, merged_src, (), typed)
        owned_by_others = set()
        for _, paths in others:
            owned_by_others |= paths
        for p in sorted(mine - new_set - owned_by_others, key=len, reverse=True):
            remove_path(merged, p)
        result_entries = []
        for e, paths in others:
            if force:
                paths = paths - new_set
            if paths:
                e["fieldsV1"] = fields_to_v1(paths)
                result_entries.append(e)
        result_entries.append(entry_base)
        rv = am.get("resourceVersion")
        if rv and rv != live["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        merged["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"]
        return self.finish_update(rt, version, live, merged, None, subresource, params,
                                  check_rv=False, managed=result_entries)

    def delete_options(self, params, raw):
        opts = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise bad_request(f"error decoding DeleteOptions: {e}")
            if isinstance(body, dict):
                opts.update(body)
        for key in ("propagationPolicy", "gracePeriodSeconds", "dryRun", "orphanDependents"):
            if key in params:
                opts[key] = params[key]
        if isinstance(opts.get("dryRun"), list):
            opts["dryRun"] = "All" if "All" in opts["dryRun"] else ""
        if opts.get("gracePeriodSeconds") is not None:
            opts["gracePeriodSeconds"] = int(opts["gracePeriodSeconds"])
        if str(opts.get("orphanDependents")).lower() == "true" and \
                not opts.get("propagationPolicy"):
            opts["propagationPolicy"] = "Orphan"
        policy = opts.get("propagationPolicy")
        if policy and policy not in ("Background", "Foreground", "Orphan"):
            raise invalid_delete(policy)
        return opts

    def delete(self, rt, version, ns, name, opts, manager=None):
        obj = self.get_obj(rt, ns, name)
        om = obj["metadata"]
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != om.get("uid"):
            raise conflict(rt, name, f"Precondition failed: UID in precondition: {pre['uid']}, "
                           f"UID in object meta: {om.get('uid')}")
        if pre.get("resourceVersion") and pre["resourceVersion"] != om.get("resourceVersion"):
            raise conflict(rt, name, f"Precondition failed: ResourceVersion in precondition: "
                           f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                           f"{om.get('resourceVersion')}")
        dry = opts.get("dryRun") == "All"
        if rt.key == ("", "namespaces"):
            if name in IMMORTAL_NAMESPACES:
                raise ApiError(403, "Forbidden", f'namespaces "{name}" is forbidden: this '
                               f"namespace may not be deleted",
                               {"name": name, "kind": "namespaces"})
            if dry or om.get("deletionTimestamp"):
                return self.out(rt, obj, version), 200
            new = clone(obj)
            new["metadata"]["deletionTimestamp"] = now_ts()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new.setdefault("status", {})["phase"] = "Terminating"
            stored = self.s.put(rt, obj, new)
            return self.out(rt, stored, version), 200
        policy = opts.get("propagationPolicy") or "Background"
        if rt.key == ("", "pods"):
            return self.delete_pod(rt, version, obj, opts, dry)
        finalizers = list(om.get("finalizers") or [])
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        if om.get("deletionTimestamp"):
            if dry:
                return self.out(rt, obj, version), 200
            new = clone(obj)
            new["metadata"]["finalizers"] = finalizers
            stored = self.s.put(rt, obj, new)
            return self.out(rt, stored, version), 200
        if finalizers:
            new = clone(obj)
            nm = new["metadata"]
            nm["finalizers"] = finalizers
            nm["deletionTimestamp"] = now_ts()
            nm["deletionGracePeriodSeconds"] = 0
            if "generation" in nm:
                nm["generation"] += 1
            if dry:
                return self.out(rt, new, version), 200
            stored = self.s.put(rt, obj, new)
            return self.out(rt, stored, version), 200
        if not dry:
            self.s.drop(rt, obj)
        result = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": details(rt, name, uid=om.get("uid"))}
        return result, 200

    def delete_pod(self, rt, version, pod, opts, dry):
        pm = pod["metadata"]
        spec = pod.get("spec") or {}
        grace = opts.get("gracePeriodSeconds")
        if grace is None or grace < 0:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        phase = (pod.get("status") or {}).get("phase")
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            grace = 0
        if dry:
            if grace == 0 and not pm.get("finalizers"):
                return self.out(rt, pod, version), 200
            new = clone(pod)
            new["metadata"].setdefault("deletionTimestamp", ts_in(grace))
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            return self.out(rt, new, version), 200
        if grace == 0:
            if pm.get("finalizers"):
                new = clone(pod)
                new["metadata"].setdefault("deletionTimestamp", now_ts())
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                self.s.delete_at[pm["uid"]] = time.monotonic()
                stored = self.s.put(rt, pod, new)
                return self.out(rt, stored, version), 200
            self.s.drop(rt, pod)
            return self.out(rt, pod, version), 200
        if pm.get("deletionTimestamp"):
            current = pm.get("deletionGracePeriodSeconds", grace)
            if grace >= current:
                return self.out(rt, pod, version), 200
        new = clone(pod)
        nm = new["metadata"]
        nm["deletionTimestamp"] = ts_in(grace)
        nm["deletionGracePeriodSeconds"] = grace
        linger = min(float(grace), float(self.s.cfg.grace))
        end = time.monotonic() + linger
        self.s.delete_at[pm["uid"]] = min(end, self.s.delete_at.get(pm["uid"], end))
        stored = self.s.put(rt, pod, new)
        return self.out(rt, stored, version), 200

    def delete_collection(self, rt, version, ns, params, opts):
        lsel = parse_label_selector(params.get("labelSelector"))
        fsel = parse_field_selector(params.get("fieldSelector"), rt)
        items = [o for o in self.s.items(rt.key, ns)
                 if labels_match(lsel, labels_of(o)) and fields_match(fsel, o)]
        out = []
        for o in items:
            m = o["metadata"]
            self.delete(rt, version, m.get("namespace", ""), m["name"], opts)
            item = self.out(rt, o, version)
            if not rt.crd:
                item.pop("apiVersion")
                item.pop("kind")
            out.append(item)
        return {"kind": rt.kind + "List", "apiVersion": rt.api_version(version),
                "metadata": {"resourceVersion": str(self.s.rv)}, "items": out}, 200

    # -- eviction (pkg/registry/core/pod/storage/eviction.go)

    def evict(self, ns, name, body, params):
        rt = self.s.types[("", "pods")]
        if not isinstance(body, dict):
            raise bad_request("the body of the request is not an Eviction")
        if body.get("kind") not in (None, "Eviction") or body.get("apiVersion") not in (
                None, "policy/v1", "policy/v1beta1"):
            raise bad_request(f"not a Eviction object: {body.get('apiVersion')}, "
                              f"Kind={body.get('kind')}")
        if (body.get("metadata") or {}).get("name") != name:
            raise bad_request("name in URL does not match name in Eviction object")
        opts = dict(body.get("deleteOptions") or {})
        dry_body = opts.get("dryRun") or []
        dry_param = params.get("dryRun")
        if dry_body and dry_param and dry_body != [dry_param]:
            raise bad_request(f"Non-matching dry-run options in request and content: "
                              f"[{dry_param}] and {dry_body}")
        dry = "All" in dry_body or dry_param == "All"
        opts["dryRun"] = "All" if dry else ""
        if opts.get("gracePeriodSeconds") is not None:
            opts["gracePeriodSeconds"] = int(opts["gracePeriodSeconds"])
        self.ensure_namespace(rt, ns, name)
        pod = self.get_obj(rt, ns, name)
        phase = (pod.get("status") or {}).get("phase")
        success = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                   "code": 201}
        if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
            self.delete(rt, "v1", ns, name, opts)
            return success, 201
        pdb_rt = self.s.types[("policy", "poddisruptionbudgets")]
        pdbs = []
        for pdb in self.s.items(pdb_rt.key, ns):
            reqs = selector_requirements((pdb.get("spec") or {}).get("selector"))
            if reqs is None:
                continue
            if labels_match(reqs, labels_of(pod)):
                pdbs.append(pdb)
        if len(pdbs) > 1:
            raise ApiError(500, None, "This pod has more than one PodDisruptionBudget, which the "
                           "eviction subresource does not support.")
        if pdbs:
            pdb = pdbs[0]
            st = pdb.get("status") or {}
            pname = pdb["metadata"]["name"]
            skip_budget = False
            if not pod_ready(pod):
                policy = (pdb.get("spec") or {}).get("unhealthyPodEvictionPolicy")
                if policy == "AlwaysAllow":
                    skip_budget = True
                elif st.get("currentHealthy", 0) >= st.get("desiredHealthy", 0) and \
                        st.get("desiredHealthy", 0) > 0:
                    skip_budget = True
            if not skip_budget:
                if st.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1):
                    raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate "
                                   "the pod's disruption budget.",
                                   {"causes": [{"reason": "DisruptionBudget",
                                                "message": f"The disruption budget {pname} is "
                                                           f"still being processed by the "
                                                           f"server."}],
                                    "retryAfterSeconds": 10}, retry_after=10)
                if st.get("disruptionsAllowed", 0) < 0:
                    raise ApiError(403, "Forbidden", f'poddisruptionbudgets.policy "{pname}" is '
                                   f"forbidden: pdb disruptions allowed is negative",
                                   {"name": pname, "group": "policy",
                                    "kind": "poddisruptionbudgets"})
                if st.get("disruptionsAllowed", 0) == 0:
                    raise ApiError(429, "TooManyRequests", "Cannot evict pod as it would violate "
                                   "the pod's disruption budget.",
                                   {"causes": [{"reason": "DisruptionBudget",
                                                "message": f"The disruption budget {pname} needs "
                                                           f"{st.get('desiredHealthy', 0)} "
                                                           f"healthy pods and has "
                                                           f"{st.get('currentHealthy', 0)} "
                                                           f"currently"}]})
                if not dry:
                    new = clone(pdb)
                    ns_st = new.setdefault("status", {})
                    ns_st["disruptionsAllowed"] = st.get("disruptionsAllowed", 0) - 1
                    ns_st.setdefault("disruptedPods", {})[name] = now_ts()
                    if ns_st["disruptionsAllowed"] == 0:
                        set_pdb_condition(new)
                    self.s.put(pdb_rt, pdb, new)
            else:
                pre = opts.setdefault("preconditions", {})
                pre.setdefault("resourceVersion", pod["metadata"]["resourceVersion"])
        self.delete(rt, "v1", ns, name, opts)
        return success, 201

    # -- scale subresource

    def scale_of(self, rt, obj):
        spec = obj.get("spec") or {}
        sel = selector_requirements(spec.get("selector")) or []
        text = ",".join(f"{k}={v[0]}" if op == "=" else
                        (f"{k} {op} ({','.join(v)})" if op in ("in", "notin") else
                         (k if op == "exists" else "!" + k)) for k, op, v in sel)
        m = obj["metadata"]
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                             "resourceVersion": m["resourceVersion"],
                             "creationTimestamp": m["creationTimestamp"]},
                "spec": {"replicas": spec.get("replicas", 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": text}}

    def scale_update(self, rt, ns, name, scale, manager):
        obj = self.get_obj(rt, ns, name)
        if not isinstance(scale, dict) or "spec" not in scale:
            raise bad_request("the body of the request is not a Scale")
        rv = (scale.get("metadata") or {}).get("resourceVersion")
        if rv and rv != obj["metadata"]["resourceVersion"]:
            raise conflict(rt, name)
        new = clone(obj)
        new["spec"]["replicas"] = int(scale["spec"].get("replicas", 0))
        out, _ = self.finish_update(rt, rt.versions[0], obj, new, manager, check_rv=False)
        return self.scale_of(rt, self.s.find(rt.key, ns, name) or out), 200


def invalid_delete(policy):
    return ApiError(422, "Invalid", f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: '
                    f'Unsupported value: "{policy}": supported values: "Foreground", '
                    f'"Background", "Orphan", "nil"',
                    {"kind": "DeleteOptions", "group": "meta.k8s.io"})


def set_pdb_condition(pdb):
    st = pdb.setdefault("status", {})
    allowed = st.get("disruptionsAllowed", 0) > 0
    cond = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
            "reason": "SufficientPods" if allowed else "InsufficientPods", "message": "",
            "observedGeneration": st.get("observedGeneration", 0)}
    conds = [c for c in st.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
    old = next((c for c in st.get("conditions") or [] if c.get("type") == "DisruptionAllowed"),
               None)
    cond["lastTransitionTime"] = old["lastTransitionTime"] if old and \
        old.get("status") == cond["status"] else now_ts()
    st["conditions"] = conds + [cond]


# ---------------------------------------------------------------------------------------------
# Controllers


def pod_template_hash(template):
    return safe_encode(str(fnv32a(json.dumps(template, sort_keys=True).encode())))


class Controllers:
    """Every controller the tests need, run in one thread after each change and every 0.1 s."""

    def __init__(self, store, api):
        self.s = store
        self.api = api
        self.deficit_since = {}  # (owner uid, slot) -> monotonic time a pod first went missing
        self.node_seen = {}  # node name -> (monotonic time first seen, ready_after)
        self.node_override = {}  # node name -> {"Ready": "False"}
        self.static_override = {}  # (node, component) -> {"present": bool, "ready": bool}
        self.crd_seen = {}  # crd uid -> monotonic time first seen
        self.crd_pending = set()  # uids of CRDs not yet Established
        self.aws_nodes = {}  # node name -> instance id (nodes of the node simulator)
        self.simulated = set()  # nodes whose kubelet is simulated (from EC2 or /__fake/nodes)
        self.ds_placed = set()  # (daemon set uid, node) that had their pod
        self.etcd = Etcd()

    def rt(self, group, plural):
        return self.s.types[(group, plural)]

    def timers_pending(self, now):
        """Whether something is due soon without a change (then tick every 0.1 s, else 1 s)."""
        return bool(self.s.delete_at or self.deficit_since or self.crd_pending or any(
            name in self.simulated and now - seen < after
            for name, (seen, after) in self.node_seen.items()))

    def run(self, stop):
        last = -1
        while not stop.is_set():
            with self.s.lock:
                if self.s.changes == last:
                    deadline = time.monotonic() + (
                        0.1 if self.timers_pending(time.monotonic()) else 1.0)
                    while self.s.changes == last and not stop.is_set():
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self.s.lock.wait(min(left, 0.1))
                        if self.timers_pending(time.monotonic()):
                            deadline = min(deadline, time.monotonic() + 0.1)
                if stop.is_set():
                    return
                try:
                    for _ in range(5):  # converge, bounded
                        before = self.s.changes
                        self.reconcile()
                        if self.s.changes == before:
                            break
                except Exception as e:  # keep the server alive; report
                    print(f"fake_kube: controller error: {e!r}", file=sys.stderr)
                    import traceback
                    traceback.print_exc()
                last = self.s.changes

    def reconcile(self):
        now = time.monotonic()
        self.namespaces()
        self.crds(now)
        self.garbage_collect()
        self.terminate_pods(now)
        self.nodes(now)
        self.static_pods()
        self.etcd_members()
        self.deployments()
        self.replicasets(now)
        self.daemonsets(now)
        self.schedule()
        self.kubelet()
        self.pdbs()

    # -- namespaces

    def namespaces(self):
        ns_rt = self.rt("", "namespaces")
        for ns in self.s.items(ns_rt.key):
            name = ns["metadata"]["name"]
            if ns["metadata"].get("deletionTimestamp"):
                left = 0
                for key, rt in list(self.s.types.items()):
                    if not rt.namespaced:
                        continue
                    for obj in self.s.items(key, name):
                        left += 1
                        if not obj["metadata"].get("deletionTimestamp"):
                            self.api.delete(rt, rt.versions[0], name, obj["metadata"]["name"],
                                            {"propagationPolicy": "Background"})
                if left == 0:
                    new = clone(ns)
                    new.setdefault("spec", {})["finalizers"] = []
                    self.s.drop(ns_rt, new)
                continue
            sa_rt = self.rt("", "serviceaccounts")
            if self.s.find(sa_rt.key, name, "default") is None:
                self.api.create(sa_rt, "v1", name, {"metadata": {"name": "default"}}, {}, None,
                                internal=True)
            cm_rt = self.rt("", "configmaps")
            if self.s.find(cm_rt.key, name, "kube-root-ca.crt") is None:
                self.api.create(cm_rt, "v1", name, {
                    "metadata": {"name": "kube-root-ca.crt",
                                 "annotations": {"kubernetes.io/description": "Contains a CA "
                                                 "bundle that can be used to verify the "
                                                 "kube-apiserver when using internal endpoints "
                                                 "such as the internal service IP or "
                                                 "kubernetes.default.svc. No other usage is "
                                                 "guaranteed across distributions of "
                                                 "Kubernetes clusters."}},
                    "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nfake\n"
                                       "-----END CERTIFICATE-----\n"}}, {}, None, internal=True)

    # -- CRDs

    def crds(self, now):
        crd_rt = self.rt("apiextensions.k8s.io", "customresourcedefinitions")
        for crd in self.s.items(crd_rt.key):
            m = crd["metadata"]
            spec = crd.get("spec") or {}
            key = (spec.get("group"), (spec.get("names") or {}).get("plural"))
            if m.get("deletionTimestamp"):
                rt = self.s.types.get(key)
                if rt is not None and rt.crd:
                    for obj in list(self.s.items(key)):
                        self.s.drop(rt, obj)
                    self.s.unregister(key)
                new = clone(crd)
                new["metadata"]["finalizers"] = [
                    f for f in m.get("finalizers") or []
                    if f != "customresourcecleanup.apiextensions.k8s.io"]
                if not new["metadata"]["finalizers"]:
                    self.s.drop(crd_rt, new)
                else:
                    self.s.put(crd_rt, crd, new)
                continue
            first = self.crd_seen.setdefault(m["uid"], now)
            established = any(c.get("type") == "Established" and c.get("status") == "True"
                              for c in (crd.get("status") or {}).get("conditions") or [])
            if not established and now - first < self.s.cfg.crd_establish_after:
                self.crd_pending.add(m["uid"])
                continue
            self.crd_pending.discard(m["uid"])
            served = [v["name"] for v in spec.get("versions") or [] if v.get("served", True)]
            storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
            names = spec.get("names") or {}
            if served and key[0] not in ("", None) and (key not in self.s.types
                                                        or self.s.types[key].crd):
                status_sub = any((v.get("subresources") or {}).get("status") is not None
                                 for v in spec.get("versions") or [])
                existing = self.s.types.get(key)
                rt = RType(key[0], served[0], key[1], names.get("singular") or
                           names.get("kind", "").lower(), names.get("kind"),
                           spec.get("scope") == "Namespaced", names.get("shortNames") or (),
                           status=status_sub, crd=True,
                           categories=names.get("categories") or (), versions=served,
                           columns=next((v.get("additionalPrinterColumns") or []
                                         for v in spec.get("versions") or []
                                         if v.get("name") == served[0]), []))
                if existing is None or existing.versions != rt.versions or \
                        existing.status != rt.status or existing.kind != rt.kind or \
                        existing.columns != rt.columns:
                    self.s.register(rt)
            if not established:
                new = clone(crd)
                st = new.setdefault("status", {})
                st["acceptedNames"] = clone(names)
                st["storedVersions"] = storage or served[:1]
                ts = now_ts()
                st["conditions"] = [
                    {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                     "message": "no conflicts found", "lastTransitionTime": ts},
                    {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                     "message": "the initial names have been accepted", "lastTransitionTime": ts}]
                self.s.put(crd_rt, crd, new)

    # -- garbage collector

    def garbage_collect(self):
        live = set()
        for objs in self.s.data.values():
            for obj in objs.values():
                live.add(obj["metadata"].get("uid"))
        for key, rt in list(self.s.types.items()):
            for obj in list(self.s.items(key)):
                m = obj["metadata"]
                refs = m.get("ownerReferences") or []
                if refs and not any(r.get("uid") in live for r in refs) and \
                        not m.get("deletionTimestamp"):
                    self.api.delete(rt, rt.versions[0], m.get("namespace", ""), m["name"],
                                    {"propagationPolicy": "Background"})
                    continue
                fins = m.get("finalizers") or []
                if m.get("deletionTimestamp") and ("foregroundDeletion" in fins or
                                                   "orphan" in fins):
                    self.finalize_owner(rt, obj)

    def dependents(self, uid):
        out = []
        for key, rt in self.s.types.items():
            for obj in self.s.items(key):
                if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or []):
                    out.append((rt, obj))
        return out

    def finalize_owner(self, rt, obj):
        m = obj["metadata"]
        fins = list(m.get("finalizers") or [])
        deps = self.dependents(m["uid"])
        if "orphan" in fins:
            for drt, dep in deps:
                new = clone(dep)
                new["metadata"]["ownerReferences"] = [
                    r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != m["uid"]]
                if not new["metadata"]["ownerReferences"]:
                    new["metadata"].pop("ownerReferences")
                self.s.put(drt, dep, new)
            fins.remove("orphan")
        elif "foregroundDeletion" in fins:
            if deps:
                for drt, dep in deps:
                    dm = dep["metadata"]
                    if not dm.get("deletionTimestamp"):
                        self.api.delete(drt, drt.versions[0], dm.get("namespace", ""),
                                        dm["name"], {"propagationPolicy": "Foreground"})
                return
            fins.remove("foregroundDeletion")
        new = clone(obj)
        new["metadata"]["finalizers"] = fins
        if not fins:
            self.s.drop(rt, new)
        else:
            self.s.put(rt, obj, new)

    # -- pods: graceful termination ends

    def terminate_pods(self, now):
        rt = self.rt("", "pods")
        for pod in self.s.items(rt.key):
            m = pod["metadata"]
            if not m.get("deletionTimestamp"):
                continue
            end = self.s.delete_at.get(m["uid"])
            if end is None:
                self.s.delete_at[m["uid"]] = now + self.s.cfg.grace
                continue
            if now >= end and not m.get("finalizers"):
                self.s.drop(rt, pod)

    # -- nodes

    def nodes(self, now):
        rt = self.rt("", "nodes")
        pods_rt = self.rt("", "pods")
        names = set()
        for node in self.s.items(rt.key):
            name = node["metadata"]["name"]
            names.add(name)
            override = self.node_override.get(name, {}).get("Ready")
            if name not in self.simulated:
                # created through the API: no kubelet; only the sticky override applies
                if override and override != ("True" if node_ready(node) else "False"):
                    new = clone(node)
                    set_node_condition(new.setdefault("status", {}), "Ready", override,
                                       "Override", "set by /__fake/nodes/NAME/condition")
                    self.s.put(rt, node, new)
                continue
            seen, ready_after = self.node_seen.setdefault(name, (now, self.s.cfg.ready_after))
            network_ok = now - seen >= ready_after
            ready = override if override else ("True" if network_ok else "False")
            new = clone(node)
            st = new.setdefault("status", {})
            set_node_condition(st, "Ready", ready,
                               {"True": "KubeletReady", "False": "KubeletNotReady",
                                "Unknown": "NodeStatusUnknown"}[ready],
                               {"True": "kubelet is posting ready status",
                                "False": "container runtime network not ready: NetworkReady=false"
                                         if not network_ok else "kubelet is not ready",
                                "Unknown": "Kubelet stopped posting node status."}[ready])
            set_node_condition(st, "NetworkUnavailable", "False" if network_ok else "True",
                               "RouteCreated" if network_ok else "NoRouteCreated",
                               "network is ready" if network_ok else "network is not ready")
            for cond in ("MemoryPressure", "DiskPressure", "PIDPressure"):
                set_node_condition(st, cond, "False" if ready != "Unknown" else "Unknown",
                                   "KubeletHasSufficient" + cond.replace("Pressure", ""),
                                   "kubelet has sufficient resources")
            taints = [t for t in (new.get("spec") or {}).get("taints") or []
                      if t.get("key") not in ("node.kubernetes.io/not-ready",
                                              "node.kubernetes.io/unreachable",
                                              "node.kubernetes.io/network-unavailable")]
            if ready == "False":
                taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
            if ready == "Unknown":
                taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"})
            if not network_ok:
                taints.append({"key": "node.kubernetes.io/network-unavailable",
                               "effect": "NoSchedule"})
            old_taints = (node.get("spec") or {}).get("taints") or []
            keep = {taint_id(t) for t in taints}
            merged = [t for t in old_taints if taint_id(t) in keep]
            merged += [t for t in taints if taint_id(t) not in {taint_id(o) for o in merged}]
            if merged:
                new.setdefault("spec", {})["taints"] = merged
            else:
                new.setdefault("spec", {}).pop("taints", None)
            if strip_times(new) != strip_times(node):
                self.s.put(rt, node, new)
        for name in list(self.node_seen):
            if name not in names:
                self.node_seen.pop(name)
                self.simulated.discard(name)
        # pod GC: pods bound to nodes that do not exist
        for pod in self.s.items(pods_rt.key):
            node_name = (pod.get("spec") or {}).get("nodeName")
            if node_name and node_name not in names:
                self.s.drop(pods_rt, pod)

    def static_pods(self):
        rt = self.rt("", "pods")
        wanted = {}
        for node in self.s.items(("", "nodes")):
            labels = labels_of(node)
            name = node["metadata"]["name"]
            if "node-role.kubernetes.io/control-plane" in labels:
                comps = list(self.s.cfg.control_plane_components)
            elif "node-role.kubernetes.io/api-server" in labels:
                comps = ["kube-apiserver"]
            else:
                continue
            for comp in comps:
                if self.static_override.get((name, comp), {}).get("present", True):
                    wanted[f"{comp}-{name}"] = (node, comp)
        for pod in self.s.items(rt.key, "kube-system"):
            m = pod["metadata"]
            if MIRROR_ANNOTATION in (m.get("annotations") or {}) and m["name"] not in wanted:
                self.s.drop(rt, pod)
        for pod_name, (node, comp) in wanted.items():
            node_name = node["metadata"]["name"]
            existing = self.s.find(rt.key, "kube-system", pod_name)
            if existing is None:
                digest = safe_encode(str(fnv32a(pod_name.encode())))[:32]
                body = {
                    "metadata": {
                        "name": pod_name, "namespace": "kube-system",
                        "labels": {"component": comp, "tier": "control-plane",
                                   "k8s-app": comp},
                        "annotations": {MIRROR_ANNOTATION: digest,
                                        "kubernetes.io/config.hash": digest,
                                        "kubernetes.io/config.source": "file",
                                        "kubernetes.io/config.seen": now_ts()},
                        "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                             "name": node_name, "uid": node["metadata"]["uid"],
                                             "controller": True}]},
                    "spec": {"nodeName": node_name, "hostNetwork": True,
                             "priorityClassName": "system-node-critical",
                             "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
                             "containers": [{"name": comp, "image": f"registry.k8s.io/{comp}:"
                                             f"{self.s.version}"}]}}
                self.api.create(rt, "v1", "kube-system", body, {}, None)

    def etcd_members(self):
        """The etcd of each Ready control-plane node whose kubelet is simulated joins the
        cluster, retried while etcd refuses the member add."""
        names = {n["metadata"]["name"] for n in self.s.items(("", "nodes"))}
        self.etcd.forget_waiting(names)
        if "etcd" not in self.s.cfg.control_plane_components:
            return
        for node in self.s.items(("", "nodes")):
            name = node["metadata"]["name"]
            if name not in self.simulated or not node_ready(node) or \
                    "node-role.kubernetes.io/control-plane" not in labels_of(node) or \
                    not self.static_override.get((name, "etcd"), {}).get("present", True):
                continue
            self.etcd.join(name, internal_ip(node), self.s.cfg.etcd_strict_reconfig)

    # -- workloads

    def deployments(self):
        d_rt = self.rt("apps", "deployments")
        rs_rt = self.rt("apps", "replicasets")
        for d in self.s.items(d_rt.key):
            m = d["metadata"]
            if m.get("deletionTimestamp"):
                continue
            ns = m["namespace"]
            spec = d["spec"]
            replicas = spec.get("replicas", 1)
            template = spec.get("template") or {}
            phash = pod_template_hash(template)
            rss = self.s.owned(rs_rt.key, d, ns)
            new_rs = next((r for r in rss if labels_of(r).get("pod-template-hash") == phash), None)
            old = sorted([r for r in rss if r is not new_rs],
                         key=lambda r: r["metadata"]["creationTimestamp"])
            revisions = [int((r["metadata"].get("annotations") or {}).get(
                "deployment.kubernetes.io/revision", "0")) for r in rss]
            strategy = spec.get("strategy") or {}
            recreate = strategy.get("type") == "Recreate"
            ru = strategy.get("rollingUpdate") or {}
            surge = scaled(ru.get("maxSurge", "25%"), replicas, True)
            unavailable = scaled(ru.get("maxUnavailable", "25%"), replicas, False)
            if surge == 0 and unavailable == 0:
                unavailable = 1
            if new_rs is None:
                tmpl = clone(template)
                tmpl.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = \
                    phash
                sel = clone(spec.get("selector") or {})
                sel.setdefault("matchLabels", {})["pod-template-hash"] = phash
                start = 0 if (recreate and any(r["spec"].get("replicas") for r in old)) else \
                    (replicas if not old else min(replicas, max(0, replicas + surge - sum(
                        r["spec"].get("replicas", 0) for r in old))))
                rev = str(max(revisions + [0]) + 1)
                body = {"metadata": {
                    "name": f"{m['name']}-{phash}", "namespace": ns,
                    "labels": dict(tmpl["metadata"]["labels"]),
                    "annotations": {"deployment.kubernetes.io/revision": rev,
                                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                                    "deployment.kubernetes.io/max-replicas": str(replicas + surge)},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": m["name"], "uid": m["uid"], "controller": True,
                                         "blockOwnerDeletion": True}]},
                    "spec": {"replicas": start, "selector": sel, "template": tmpl,
                             "minReadySeconds": spec.get("minReadySeconds", 0)}}
                try:
                    self.api.create(rs_rt, "v1", ns, body, {}, None)
                except ApiError:
                    continue
                new = clone(d)
                new["metadata"].setdefault("annotations", {})[
                    "deployment.kubernetes.io/revision"] = rev
                self.s.put(d_rt, d, new)
                continue
            ready = {r["metadata"]["uid"]: sum(1 for p in self.s.owned(("", "pods"), r, ns)
                                              if healthy_pod(p)) for r in rss}
            want = {r["metadata"]["uid"]: r["spec"].get("replicas", 0) for r in rss}
            nuid = new_rs["metadata"]["uid"]
            if recreate:
                for r in old:
                    want[r["metadata"]["uid"]] = 0
                old_pods = sum(len(self.s.owned(("", "pods"), r, ns)) for r in old)
                want[nuid] = replicas if old_pods == 0 else 0
            else:
                total = sum(want.values())
                if want[nuid] < replicas:
                    allowed = replicas + surge - total
                    if allowed > 0:
                        want[nuid] = min(replicas, want[nuid] + allowed)
                elif want[nuid] > replicas:
                    want[nuid] = replicas
                min_available = replicas - unavailable
                all_pods = sum(want.values())
                new_unavailable = want[nuid] - ready[nuid]
                max_down = all_pods - min_available - new_unavailable
                if max_down > 0:
                    done = 0
                    for r in old:  # unhealthy old replicas first
                        u = r["metadata"]["uid"]
                        if done >= max_down or want[u] == 0 or want[u] == ready[u]:
                            continue
                        cut = min(max_down - done, want[u] - ready[u])
                        want[u] -= cut
                        done += cut
                    available = sum(ready.values())
                    if available > min_available:
                        budget, done = available - min_available, 0
                        for r in old:
                            u = r["metadata"]["uid"]
                            if done >= budget or want[u] == 0:
                                continue
                            cut = min(want[u], budget - done)
                            want[u] -= cut
                            done += cut
            for r in rss:
                u = r["metadata"]["uid"]
                if want[u] != r["spec"].get("replicas", 0):
                    new = clone(r)
                    new["spec"]["replicas"] = want[u]
                    if r is new_rs:
                        new["metadata"].setdefault("annotations", {})[
                            "deployment.kubernetes.io/desired-replicas"] = str(replicas)
                    self.s.put(rs_rt, r, new)
            # status
            pods = [p for r in rss for p in self.s.owned(("", "pods"), r, ns) if pod_active(p)]
            new_pods = [p for p in self.s.owned(("", "pods"), new_rs, ns) if pod_active(p)]
            ready_count = sum(1 for p in pods if pod_ready(p))
            updated_ready = sum(1 for p in new_pods if pod_ready(p))
            st = {"observedGeneration": m.get("generation", 1), "replicas": len(pods),
                  "updatedReplicas": len(new_pods), "readyReplicas": ready_count,
                  "availableReplicas": ready_count,
                  "unavailableReplicas": max(0, replicas - ready_count)}
            for k in ("readyReplicas", "availableReplicas", "unavailableReplicas",
                      "updatedReplicas", "replicas"):
                if not st[k]:
                    st.pop(k)
            available_ok = ready_count >= replicas - unavailable
            complete = updated_ready >= replicas and len(pods) == replicas
            old_st = d.get("status") or {}
            conds = {c.get("type"): c for c in old_st.get("conditions") or []}
            st["conditions"] = [
                keep_transition(conds.get("Available"), {
                    "type": "Available", "status": "True" if available_ok else "False",
                    "reason": "MinimumReplicasAvailable" if available_ok else
                    "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability." if available_ok else
                    "Deployment does not have minimum availability."}),
                keep_transition(conds.get("Progressing"), {
                    "type": "Progressing", "status": "True",
                    "reason": "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    "message": f'ReplicaSet "{new_rs["metadata"]["name"]}" ' +
                    ("has successfully progressed." if complete else "is progressing.")})]
            if st != old_st:
                new = clone(d)
                new["status"] = st
                self.s.put(d_rt, d, new)

    def replicasets(self, now):
        rs_rt = self.rt("apps", "replicasets")
        pods_rt = self.rt("", "pods")
        for rs in self.s.items(rs_rt.key):
            m = rs["metadata"]
            ns = m["namespace"]
            if m.get("deletionTimestamp"):
                continue
            pods = self.s.owned(pods_rt.key, rs, ns)
            active = [p for p in pods if pod_active(p)]
            want = rs["spec"].get("replicas", 1)
            diff = want - len(active)
            slot = (m["uid"], "")
            if diff > 0:
                since = self.deficit_since.setdefault(slot, now)
                if now - since >= self.s.cfg.reschedule_after:
                    self.deficit_since.pop(slot, None)
                    for _ in range(diff):
                        self.create_pod(rs, "ReplicaSet", None)
            else:
                self.deficit_since.pop(slot, None)
                if diff < 0:
                    # as controller.ActivePods: unscheduled, then pending, then unready, then
                    # the newest go first
                    victims = sorted(active, key=lambda p: p["metadata"]["creationTimestamp"],
                                     reverse=True)
                    victims.sort(key=lambda p: (bool((p.get("spec") or {}).get("nodeName")),
                                                (p.get("status") or {}).get("phase") ==
                                                "Running", pod_ready(p)))
                    for p in victims[:-diff]:
                        self.api.delete(pods_rt, "v1", ns, p["metadata"]["name"], {})
            pods = self.s.owned(pods_rt.key, rs, ns)
            active = [p for p in pods if pod_active(p)]
            ready = sum(1 for p in active if pod_ready(p))
            st = {"replicas": len(active), "fullyLabeledReplicas": len(active),
                  "readyReplicas": ready, "availableReplicas": ready,
                  "observedGeneration": m.get("generation", 1)}
            for k in ("fullyLabeledReplicas", "readyReplicas", "availableReplicas"):
                if not st[k]:
                    st.pop(k)
            if st != (rs.get("status") or {}):
                new = clone(rs)
                new["status"] = st
                self.s.put(rs_rt, rs, new)

    def create_pod(self, owner, kind, node_name):
        om = owner["metadata"]
        tmpl = clone(owner["spec"].get("template") or {})
        tm = tmpl.get("metadata") or {}
        spec = tmpl.get("spec") or {}
        labels = dict(tm.get("labels") or {})
        if kind == "DaemonSet":
            labels["controller-revision-hash"] = pod_template_hash(owner["spec"]["template"])
            labels["pod-template-generation"] = str(om.get("generation", 1))
            tols = spec.setdefault("tolerations", [])
            for key, effect in (("node.kubernetes.io/not-ready", "NoExecute"),
                                ("node.kubernetes.io/unreachable", "NoExecute"),
                                ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                                ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                                ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                                ("node.kubernetes.io/unschedulable", "NoSchedule")):
                if not tolerates(tols, {"key": key, "effect": effect}):
                    tols.append({"key": key, "operator": "Exists", "effect": effect})
            if spec.get("hostNetwork") and not tolerates(
                    tols, {"key": "node.kubernetes.io/network-unavailable",
                           "effect": "NoSchedule"}):
                tols.append({"key": "node.kubernetes.io/network-unavailable",
                             "operator": "Exists", "effect": "NoSchedule"})
        pods_rt = self.rt("", "pods")
        for _ in range(20):
            name = f"{om['name']}-{rand_suffix()}"
            if self.s.find(pods_rt.key, om["namespace"], name) is None:
                break
        body = {"metadata": {"name": name, "generateName": om["name"] + "-",
                             "namespace": om["namespace"], "labels": labels,
                             "annotations": dict(tm.get("annotations") or {}),
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": kind,
                                                  "name": om["name"], "uid": om["uid"],
                                                  "controller": True,
                                                  "blockOwnerDeletion": True}]},
                "spec": spec}
        if not body["metadata"]["annotations"]:
            body["metadata"].pop("annotations")
        if node_name:
            spec["nodeName"] = node_name
        else:
            node = self.pick_node(body)
            if node is not None:
                spec["nodeName"] = node
        try:
            self.api.create(pods_rt, "v1", om["namespace"], body, {}, None)
        except ApiError as e:
            print(f"fake_kube: cannot create a pod of {om['name']}: {e}", file=sys.stderr)

    def fits(self, pod, node, ignore_unschedulable=False):
        spec = pod.get("spec") or {}
        if node["metadata"].get("deletionTimestamp"):
            return False
        if not ignore_unschedulable and not node_ready(node):
            return False
        if not ignore_unschedulable and (node.get("spec") or {}).get("unschedulable") and \
                not tolerates(spec.get("tolerations"), {"key": "node.kubernetes.io/unschedulable",
                                                        "effect": "NoSchedule"}):
            return False
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and \
                    not tolerates(spec.get("tolerations"), taint):
                return False
        labels = labels_of(node)
        for k, v in (spec.get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return False
        required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms")
        if required and not any(node_selector_term_matches(t, node) for t in required):
            return False
        return True

    def pick_node(self, pod):
        counts = collections.Counter(
            (p.get("spec") or {}).get("nodeName") for p in self.s.items(("", "pods"))
            if pod_active(p))
        nodes = [n for n in self.s.items(("", "nodes")) if self.fits(pod, n)]
        if not nodes:
            return None
        nodes.sort(key=lambda n: (counts[n["metadata"]["name"]], n["metadata"]["name"]))
        return nodes[0]["metadata"]["name"]

    def daemonsets(self, now):
        ds_rt = self.rt("apps", "daemonsets")
        pods_rt = self.rt("", "pods")
        nodes = self.s.items(("", "nodes"))
        for ds in self.s.items(ds_rt.key):
            m = ds["metadata"]
            ns = m["namespace"]
            if m.get("deletionTimestamp"):
                continue
            probe = {"spec": clone((ds["spec"].get("template") or {}).get("spec") or {})}
            tols = probe["spec"].setdefault("tolerations", [])
            tols += [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                     {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
                     {"key": "node.kubernetes.io/unschedulable", "operator": "Exists"},
                     {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists"}]
            eligible = {n["metadata"]["name"] for n in nodes
                        if self.fits(probe, n, ignore_unschedulable=True)}
            pods = self.s.owned(pods_rt.key, ds, ns)
            by_node = collections.defaultdict(list)
            for p in pods:
                if pod_active(p):
                    by_node[(p.get("spec") or {}).get("nodeName")].append(p)
            for node_name in sorted(eligible):
                slot = (m["uid"], node_name)
                if by_node.get(node_name):
                    self.deficit_since.pop(slot, None)
                    self.ds_placed.add(slot)
                    continue
                if slot not in self.ds_placed:  # a new node gets its pod at once
                    self.ds_placed.add(slot)
                    self.create_pod(ds, "DaemonSet", node_name)
                    continue
                since = self.deficit_since.setdefault(slot, now)  # a replacement waits
                if now - since >= self.s.cfg.reschedule_after:
                    self.deficit_since.pop(slot, None)
                    self.create_pod(ds, "DaemonSet", node_name)
            self.ds_placed = {sl for sl in self.ds_placed if sl[0] != m["uid"] or
                              sl[1] in eligible}
            for node_name, node_pods in by_node.items():
                if node_name not in eligible:
                    for p in node_pods:
                        self.api.delete(pods_rt, "v1", ns, p["metadata"]["name"], {})
            pods = [p for p in self.s.owned(pods_rt.key, ds, ns) if pod_active(p)]
            scheduled = {p["spec"].get("nodeName") for p in pods}
            ready = sum(1 for p in pods if pod_ready(p))
            st = {"currentNumberScheduled": len(scheduled & eligible),
                  "desiredNumberScheduled": len(eligible),
                  "numberMisscheduled": len(scheduled - eligible),
                  "numberReady": ready, "numberAvailable": ready,
                  "numberUnavailable": max(0, len(eligible) - ready),
                  "updatedNumberScheduled": len(scheduled & eligible),
                  "observedGeneration": m.get("generation", 1)}
            for k in ("numberAvailable", "numberUnavailable"):
                if not st[k]:
                    st.pop(k)
            if st != (ds.get("status") or {}):
                new = clone(ds)
                new["status"] = st
                self.s.put(ds_rt, ds, new)

    def schedule(self):
        rt = self.rt("", "pods")
        for pod in self.s.items(rt.key):
            spec = pod.get("spec") or {}
            if spec.get("nodeName") or not pod_active(pod) or \
                    spec.get("schedulerName", "default-scheduler") != "default-scheduler":
                continue
            node = self.pick_node(pod)
            new = clone(pod)
            st = new.setdefault("status", {})
            if node is None:
                set_pod_condition(st, "PodScheduled", "False", "Unschedulable",
                                  "0/%d nodes are available." % len(self.s.items(("", "nodes"))))
            else:
                new["spec"]["nodeName"] = node
                set_pod_condition(st, "PodScheduled", "True")
            if strip_times(new) != strip_times(pod):
                self.s.put(rt, pod, new)

    def kubelet(self):
        rt = self.rt("", "pods")
        nodes = {n["metadata"]["name"]: n for n in self.s.items(("", "nodes"))}
        for pod in self.s.items(rt.key):
            spec = pod.get("spec") or {}
            node = nodes.get(spec.get("nodeName"))
            if node is None or pod["metadata"].get("deletionTimestamp"):
                continue
            st0 = pod.get("status") or {}
            if st0.get("phase") in ("Succeeded", "Failed"):
                continue
            ready = node_ready(node)
            comp = (pod["metadata"].get("labels") or {}).get("component")
            if MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {}) and comp:
                ov = self.static_override.get((spec["nodeName"], comp), {})
                container_ready = ready and ov.get("ready", True)
                if comp == "etcd" and spec["nodeName"] in self.simulated:
                    # Ready once its member joined, while it is healthy
                    container_ready = container_ready and self.etcd.pod_ready(spec["nodeName"])
            else:
                container_ready = ready
            new = clone(pod)
            st = new.setdefault("status", {})
            running = st.get("phase") == "Running" or ready
            if not running:
                continue
            st["phase"] = "Running"
            st.setdefault("startTime", now_ts())
            host_ip = internal_ip(node)
            st["hostIP"] = host_ip
            st["hostIPs"] = [{"ip": host_ip}]
            if "podIP" not in st:
                if spec.get("hostNetwork"):
                    st["podIP"] = host_ip
                else:
                    self.s.ip_counter += 1
                    n = self.s.ip_counter
                    st["podIP"] = f"100.96.{n // 250}.{n % 250 + 1}"
                st["podIPs"] = [{"ip": st["podIP"]}]
            flag = "True" if container_ready else "False"
            set_pod_condition(st, "PodReadyToStartContainers", "True")
            set_pod_condition(st, "Initialized", "True")
            set_pod_condition(st, "Ready", flag, None if container_ready else "ContainersNotReady")
            set_pod_condition(st, "ContainersReady", flag,
                              None if container_ready else "ContainersNotReady")
            set_pod_condition(st, "PodScheduled", "True")
            old_cs = {c["name"]: c for c in st.get("containerStatuses") or []}
            statuses = []
            for c in spec.get("containers") or []:
                prev = old_cs.get(c["name"]) or {}
                statuses.append({
                    "name": c["name"], "image": c.get("image", ""),
                    "imageID": prev.get("imageID", c.get("image", "") + "@sha256:" +
                                        "%064x" % fnv32a(c.get("image", "").encode())),
                    "containerID": prev.get("containerID", "containerd://" +
                                            uuid.uuid4().hex + uuid.uuid4().hex),
                    "ready": container_ready, "started": True, "restartCount": 0,
                    "state": {"running": {"startedAt": (prev.get("state") or {}).get(
                        "running", {}).get("startedAt") or now_ts()}}})
            st["containerStatuses"] = statuses
            if strip_times(new) != strip_times(pod):
                self.s.put(rt, pod, new)

    # -- disruption controller

    def pdbs(self):
        if self.s.cfg.pdb_controller_paused:
            return
        rt = self.rt("policy", "poddisruptionbudgets")
        now = datetime.datetime.now(datetime.timezone.utc)
        for pdb in self.s.items(rt.key):
            pods = self.s.pdb_pods(pdb)
            old_st = pdb.get("status") or {}
            try:
                expected, desired = self.expected(pdb, pods)
            except LookupError as e:
                new = clone(pdb)
                st = new.setdefault("status", {})
                st["disruptionsAllowed"] = 0
                conds = [c for c in st.get("conditions") or [] if c.get("type") !=
                         "DisruptionAllowed"]
                conds.append({"type": "DisruptionAllowed", "status": "False",
                              "reason": "SyncFailed", "message": str(e),
                              "observedGeneration": st.get("observedGeneration", 0),
                              "lastTransitionTime": now_ts()})
                st["conditions"] = conds
                if strip_times(new) != strip_times(pdb):
                    self.s.put(rt, pdb, new)
                continue
            disrupted = {}
            for pod in pods:
                if pod["metadata"].get("deletionTimestamp"):
                    continue
                when = (old_st.get("disruptedPods") or {}).get(pod["metadata"]["name"])
                if when is None:
                    continue
                at = datetime.datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=datetime.timezone.utc)
                if (now - at).total_seconds() < DISRUPTION_DELETION_TIMEOUT:
                    disrupted[pod["metadata"]["name"]] = when
            healthy = sum(1 for p in pods if healthy_pod(p) and
                          p["metadata"]["name"] not in disrupted)
            allowed = healthy - desired
            if expected <= 0 or allowed <= 0:
                allowed = 0
            st = {"currentHealthy": healthy, "desiredHealthy": desired, "expectedPods": expected,
                  "disruptionsAllowed": allowed,
                  "observedGeneration": pdb["metadata"].get("generation", 1),
                  "conditions": old_st.get("conditions") or []}
            if disrupted:
                st["disruptedPods"] = disrupted
            new = clone(pdb)
            new["status"] = st
            set_pdb_condition(new)
            if new != pdb:
                self.s.put(rt, pdb, new)

    def expected(self, pdb, pods):
        spec = pdb.get("spec") or {}
        max_unavailable = spec.get("maxUnavailable")
        min_available = spec.get("minAvailable")
        if max_unavailable is not None:
            expected = self.expected_scale(pods)
            desired = max(0, expected - scaled(max_unavailable, expected, True))
            return expected, desired
        if min_available is not None:
            if isinstance(min_available, int):
                return len(pods), min_available
            expected = self.expected_scale(pods)
            return expected, scaled(min_available, expected, True)
        return 0, 0

    def expected_scale(self, pods):
        scales = {}
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                continue  # unmanaged pods count for nothing (the controller warns)
            ns = pod["metadata"]["namespace"]
            if ref.get("uid") in scales:
                continue
            found = None
            if ref.get("kind") == "ReplicaSet":
                rs = self.s.find(("apps", "replicasets"), ns, ref.get("name"))
                if rs is not None and rs["metadata"]["uid"] == ref.get("uid"):
                    dref = controller_ref(rs)
                    if dref and dref.get("kind") == "Deployment":
                        d = self.s.find(("apps", "deployments"), ns, dref.get("name"))
                        if d is not None and d["metadata"]["uid"] == dref.get("uid"):
                            found = (d["metadata"]["uid"], d["spec"].get("replicas", 1))
                    else:
                        found = (rs["metadata"]["uid"], rs["spec"].get("replicas", 1))
            elif ref.get("kind") == "StatefulSet":
                ss = self.s.find(("apps", "statefulsets"), ns, ref.get("name"))
                if ss is not None and ss["metadata"]["uid"] == ref.get("uid"):
                    found = (ss["metadata"]["uid"], ss["spec"].get("replicas", 1))
            if found is None:
                raise LookupError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            scales[found[0]] = found[1]
        return sum(scales.values())


def taint_id(t):
    return (t.get("key"), t.get("value"), t.get("effect"))


def strip_times(obj):
    """OBJ without the timestamps controllers refresh, to tell real changes."""
    o = clone(obj)
    st = o.get("status") or {}
    for cond in st.get("conditions") or []:
        cond.pop("lastHeartbeatTime", None)
        cond.pop("lastTransitionTime", None)
        cond.pop("lastProbeTime", None)
    return o


def keep_transition(old, cond):
    ts = now_ts()
    cond["lastUpdateTime"] = ts
    cond["lastTransitionTime"] = ts
    if old and old.get("status") == cond["status"]:
        cond["lastTransitionTime"] = old.get("lastTransitionTime", ts)
        if old.get("reason") == cond["reason"]:
            cond["lastUpdateTime"] = old.get("lastUpdateTime", ts)
    return cond


def set_node_condition(st, ctype, status, reason, message):
    conds = st.setdefault("conditions", [])
    ts = now_ts()
    for cond in conds:
        if cond.get("type") == ctype:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = ts
                cond["lastHeartbeatTime"] = ts
            cond.update({"status": status, "reason": reason, "message": message})
            return
    conds.append({"type": ctype, "status": status, "reason": reason, "message": message,
                  "lastHeartbeatTime": ts, "lastTransitionTime": ts})


def set_pod_condition(st, ctype, status, reason=None, message=None):
    conds = st.setdefault("conditions", [])
    for cond in conds:
        if cond.get("type") == ctype:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = now_ts()
            cond["status"] = status
            for k, v in (("reason", reason), ("message", message)):
                if v:
                    cond[k] = v
                else:
                    cond.pop(k, None)
            return
    cond = {"type": ctype, "status": status, "lastProbeTime": None,
            "lastTransitionTime": now_ts()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    conds.append(cond)


# ---------------------------------------------------------------------------------------------
# Nodes: from EC2 (the node simulator) or from the control endpoint


def make_node(store, name, role, labels, taints, zone, region, instance_type, provider_id,
              internal_ip, ig=None, unschedulable=False, version=None):
    version = version or store.version
    all_labels = {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                  "kubernetes.io/hostname": name}
    if zone:
        all_labels["topology.kubernetes.io/zone"] = zone
        all_labels["failure-domain.beta.kubernetes.io/zone"] = zone
    if region:
        all_labels["topology.kubernetes.io/region"] = region
        all_labels["failure-domain.beta.kubernetes.io/region"] = region
    if instance_type:
        all_labels["node.kubernetes.io/instance-type"] = instance_type
        all_labels["beta.kubernetes.io/instance-type"] = instance_type
    if ig:
        all_labels["kops.k8s.io/instancegroup"] = ig
    all_taints = []
    if role == ROLE_CONTROL_PLANE:
        all_labels["node-role.kubernetes.io/control-plane"] = ""
        all_labels["kubernetes.io/role"] = "master"
        all_labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        all_taints.append({"key": "node-role.kubernetes.io/control-plane",
                           "effect": "NoSchedule"})
    elif role == "api-server":
        all_labels["node-role.kubernetes.io/api-server"] = ""
        all_labels["kubernetes.io/role"] = "api-server"
    else:
        all_labels["node-role.kubernetes.io/node"] = ""
        all_labels["kubernetes.io/role"] = "node"
    all_labels.update(labels or {})
    for t in taints or []:
        if not any(o["key"] == t.get("key") and o["effect"] == t.get("effect")
                   for o in all_taints):
            all_taints.append(t)
    node = {"metadata": {"name": name, "labels": all_labels,
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0",
                                         "volumes.kubernetes.io/controller-managed-attach-"
                                         "detach": "true"}},
            "spec": {},
            "status": {
                "addresses": [{"type": "InternalIP", "address": internal_ip},
                              {"type": "Hostname", "address": name},
                              {"type": "InternalDNS", "address": name}],
                "capacity": {"cpu": "2", "memory": "4002356Ki", "pods": "110",
                             "ephemeral-storage": "64000000Ki"},
                "allocatable": {"cpu": "2", "memory": "3899956Ki", "pods": "110",
                                "ephemeral-storage": "58982400Ki"},
                "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version,
                             "architecture": "amd64", "operatingSystem": "linux",
                             "osImage": "Ubuntu 24.04.1 LTS", "kernelVersion": "6.8.0-1016-aws",
                             "containerRuntimeVersion": "containerd://1.7.24",
                             "machineID": uuid.uuid4().hex, "systemUUID": str(uuid.uuid4()),
                             "bootID": str(uuid.uuid4())},
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}}
    if provider_id:
        node["spec"]["providerID"] = provider_id
    if all_taints:
        node["spec"]["taints"] = all_taints
    if unschedulable:
        node["spec"]["unschedulable"] = True
    return node


class NodeSimulator:
    def __init__(self, store, api, controllers, endpoint, cluster, region):
        self.s = store
        self.api = api
        self.c = controllers
        self.endpoint = endpoint
        self.cluster = cluster
        self.region = region
        self.deleted_at = {}  # node name -> monotonic time an API delete removed it
        self.kubelet_versions = {}  # instance ID -> the version its user-data installs
        self.template_versions = {}  # (template ID, version) -> the same

    def client(self):
        import boto3
        return boto3.client(
            "ec2", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
            aws_session_token=os.environ.get("AWS_SESSION_TOKEN"))

    def run(self, stop):
        ec2 = None
        while not stop.is_set():
            started = time.monotonic()
            try:
                if ec2 is None:
                    ec2 = self.client()
                instances = []
                for page in ec2.get_paginator("describe_instances").paginate(Filters=[
                        {"Name": "tag-key", "Values": [f"kubernetes.io/cluster/{self.cluster}"]},
                        {"Name": "instance-state-name", "Values": ["pending", "running"]}]):
                    for res in page.get("Reservations", []):
                        instances += res.get("Instances", [])
                # The kubelet an instance runs is the version its user-data installs (read
                # once per instance, outside the lock).
                # Instances of one launch-template version share it: read once per version
                # (by the template tags EC2 puts on them), else once per instance.
                for inst in instances:
                    if inst["InstanceId"] in self.kubelet_versions:
                        continue
                    tags = {t["Key"]: t.get("Value", "") for t in inst.get("Tags") or []}
                    template = (tags.get("aws:ec2launchtemplate:id"),
                                tags.get("aws:ec2launchtemplate:version"))
                    if None in template:
                        template = inst["InstanceId"]
                    if template not in self.template_versions:
                        self.template_versions[template] = kubelet_version(
                            ec2, inst["InstanceId"])
                    self.kubelet_versions[inst["InstanceId"]] = self.template_versions[template]
                with self.s.lock:
                    self.sync(instances)
            except Exception as e:  # AWS down or throttled: try again next time
                print(f"fake_kube: node simulator: {e!r}", file=sys.stderr)
            stop.wait(max(0.05, self.s.cfg.sync_interval - (time.monotonic() - started)))

    def sync(self, instances):
        rt = self.s.types[("", "nodes")]
        now = time.monotonic()
        running = {}
        for inst in instances:
            if (inst.get("State") or {}).get("Name") != "running":
                continue
            tags = {t["Key"]: t.get("Value", "") for t in inst.get("Tags") or []}
            if "k8s.io/role/bastion" in tags:
                continue
            ip = inst.get("PrivateIpAddress") or "10.0.0.1"
            name = inst.get("PrivateDnsName") or \
                f"ip-{ip.replace('.', '-')}.{self.region}.compute.internal"
            running[name] = (inst, tags)
        # nodes whose instance went away
        for name, instance_id in list(self.c.aws_nodes.items()):
            node = self.s.find(rt.key, "", name)
            if name not in running or running[name][0]["InstanceId"] != instance_id:
                if node is not None:
                    self.s.drop(rt, node)
                self.c.aws_nodes.pop(name)
                self.c.etcd.machine_gone(name)
                self.deleted_at.pop(name, None)
            elif node is None:
                # deleted through the API while its machine runs: the kubelet re-registers
                since = self.deleted_at.setdefault(name, now)
                if now - since >= self.s.cfg.reregister_after:
                    self.c.aws_nodes.pop(name)
                    self.deleted_at.pop(name)
        for name, (inst, tags) in running.items():
            if name in self.c.aws_nodes or self.s.find(rt.key, "", name) is not None:
                continue
            role = "node"
            if "k8s.io/role/control-plane" in tags or "k8s.io/role/master" in tags:
                role = ROLE_CONTROL_PLANE
            elif "k8s.io/role/apiserver" in tags:
                role = "api-server"
            ig = tags.get("kops.k8s.io/instancegroup")
            asg = tags.get("aws:autoscaling:groupName")
            if not ig and asg:
                suffix = "." + self.cluster
                ig = asg[:-len(suffix)] if asg.endswith(suffix) else asg
            labels, taints = {}, []
            # Karpenter tags its instances with their NodePool and labels their Nodes so.
            if tags.get("karpenter.sh/nodepool"):
                labels["karpenter.sh/nodepool"] = tags["karpenter.sh/nodepool"]
            for key, value in tags.items():
                if key.startswith("k8s.io/cluster-autoscaler/node-template/label/"):
                    labels[key.split("/label/", 1)[1]] = value
                elif key.startswith("k8s.io/cluster-autoscaler/node-template/taint/"):
                    tval, _, effect = value.rpartition(":")
                    taint = {"key": key.split("/taint/", 1)[1], "effect": effect}
                    if tval:
                        taint["value"] = tval
                    taints.append(taint)
            az = (inst.get("Placement") or {}).get("AvailabilityZone", "")
            node = make_node(self.s, name, role, labels, taints, az, self.region,
                             inst.get("InstanceType"), f"aws:///{az}/{inst['InstanceId']}",
                             inst.get("PrivateIpAddress") or "10.0.0.1", ig,
                             version=self.kubelet_versions.get(inst["InstanceId"]))
            if inst.get("PublicIpAddress"):
                node["status"]["addresses"].append({"type": "ExternalIP",
                                                    "address": inst["PublicIpAddress"]})
            self.c.node_seen[name] = (now, self.s.cfg.ready_after)
            self.c.simulated.add(name)
            initial_conditions(node)
            self.api.create(rt, "v1", "", node, {}, None, internal=True)
            self.c.aws_nodes[name] = inst["InstanceId"]


def kubelet_version(ec2, instance_id):
    """The Kubernetes version an instance's user-data installs (KUBERNETES_VERSION=...), as
    a kubelet reports it (v1.34.1); None when it names none."""
    try:
        data = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")
        raw = base64.b64decode((data.get("UserData") or {}).get("Value") or "")
        if raw[:2] == b"\x1f\x8b":  # kopsrs gzips user-data
            raw = gzip.decompress(raw)
        text = raw.decode("utf-8", "replace")
    except Exception:  # gone, or throttled: the default version
        return None
    m = re.search(r"^KUBERNETES_VERSION='?v?([0-9][0-9A-Za-z.+-]*)'?$", text, re.M)
    return f"v{m.group(1)}" if m else None


def version_key(version):
    parts = re.findall(r"\d+", version or "")[:3]
    return tuple(int(p) for p in parts)


def internal_ip(node):
    return next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                 if a.get("type") == "InternalIP"), "10.0.0.1")


def initial_conditions(node):
    st = node["status"]
    set_node_condition(st, "Ready", "False", "KubeletNotReady",
                       "container runtime network not ready: NetworkReady=false")
    set_node_condition(st, "NetworkUnavailable", "True", "NoRouteCreated", "network is not ready")


# ---------------------------------------------------------------------------------------------
# etcd, simulated: a member per control-plane node, read and changed with `etcdctl` exec'd in
# the node's mirror pod kube-system/etcd-NODE, as on a kubeadm control plane

ETCD_VERSION = "3.5.16"
ETCD_PKI = "/etc/kubernetes/pki/etcd/"
# The files kubeadm puts in /etc/kubernetes/pki/etcd, which the etcd container mounts.
ETCD_FILES = {ETCD_PKI + f for f in ("ca.crt", "ca.key", "server.crt", "server.key", "peer.crt",
                                     "peer.key", "healthcheck-client.crt",
                                     "healthcheck-client.key")}
# etcdctl's flags that take a value (global, then the commands'); the others are booleans.
ETCDCTL_VALUE_FLAGS = {"endpoints", "cacert", "cert", "key", "command-timeout", "dial-timeout",
                       "keepalive-time", "keepalive-timeout", "write-out", "w", "user",
                       "password", "discovery-srv", "discovery-srv-name", "peer-urls"}
ETCDCTL_BOOL_FLAGS = {"cluster", "hex", "debug", "insecure-transport",
                      "insecure-skip-tls-verify", "insecure-discovery", "learner"}
EXIT_ERROR, EXIT_BAD_ARGS = 1, 128  # etcdctl's cobrautl.ExitError and ExitBadArgs


def etcd_id():
    """A member or cluster ID: random, as etcd's (a hash of URLs and time), with the top bit set
    so that a client reading the JSON numbers as signed or floating-point fails visibly."""
    return random.getrandbits(64) | (1 << 63)


def go_duration(seconds):
    """Go's time.Duration.String() (the two ranges etcdctl's "took" uses)."""
    if seconds < 1:
        return f"{seconds * 1000:.6f}".rstrip("0").rstrip(".") + "ms"
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"


def parse_go_duration(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text or "")
    if not m:
        raise ValueError(f'time: invalid duration "{text}"')
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def compact(obj):
    """JSON as Go's encoding/json writes it (no spaces)."""
    return json.dumps(obj, separators=(",", ":"))


class EtcdctlExit(Exception):
    """etcdctl ending with `Error: MESSAGE` on stderr and CODE (cobrautl.ExitWithError)."""

    def __init__(self, message, code=EXIT_ERROR, stdout="", warning=None):
        super().__init__(message)
        self.code = code
        self.stdout = stdout
        self.stderr = ((compact({"level": "warn", "ts": now_ts(), "logger": "etcd-client",
                                 "caller": "v3@v3.5.16/retry_interceptor.go:62",
                                 "msg": "retrying of unary invoker failed",
                                 "target": "etcd-endpoints://0xc000022000/127.0.0.1:2379",
                                 "attempt": 0, "error": warning}) + "\n")
                       if warning else "") + (f"Error: {message}\n" if message else "")


class Etcd:
    """The cluster's etcd: a member per control-plane node whose kubelet is simulated, joined
    when the node is Ready as `kubeadm join` adds it, under etcd's strict reconfiguration
    check (--strict-reconfig-check, on by default: etcd 3.6's form, healthy members standing
    for started ones). Called with the store's lock held."""

    def __init__(self):
        self.cluster_id = etcd_id()
        self.members = {}  # id -> {"name", "peer", "client", "alive", "node"}, in join order
        self.local = {}  # node -> its etcd's member id (None: removed, never rejoins)
        self.waiting = {}  # node -> why etcd refuses its member add
        self.override = {}  # member name -> healthy (sticky)
        self.fail_removes = 0
        self.stall = 0.0
        self.leader = None
        self.raft_term = 1
        self.revision = 1

    def healthy(self, mid):
        m = self.members.get(mid)
        return m is not None and self.override.get(m["name"], m["alive"])

    def quorum(self):
        healthy = sum(1 for mid in self.members if self.healthy(mid))
        return 2 * healthy > len(self.members)

    def elect(self):
        """A healthy leader while there is a quorum (the term moves with the leader)."""
        if self.quorum() and self.healthy(self.leader):
            return
        leader = next((mid for mid in self.members if self.healthy(mid)), None) \
            if self.quorum() else None
        if leader != self.leader:
            self.leader = leader
            self.raft_term += 1

    def join(self, node, ip, strict):
        """The node's etcd joins (the first one makes the cluster, as kubeadm init): whether a
        member runs there now. A refused add is retried on every call."""
        if node in self.local:
            return self.local[node] is not None
        peer = f"https://{ip}:2380"
        # One control plane: its replacement mounts the etcd volume and restores the member
        # from it (kopsrs's boot script), under its old name and ID, pointed at this node.
        if len(self.members) == 1 and not self.healthy(next(iter(self.members))):
            mid = next(iter(self.members))
            m = self.members[mid]
            m.update(peer=peer, client=f"https://{ip}:2379", alive=True, node=node)
            self.local[node] = mid
            self.waiting.pop(node, None)
            self.elect()
            return True
        if any(m["peer"] == peer for m in self.members.values()):
            self.waiting[node] = "etcdserver: Peer URLs already exists"
            return False
        healthy = sum(1 for mid in self.members if self.healthy(mid))
        size = len(self.members) + 1
        # IsReadyToAddVotingMember (a second member may always join a single one), then the
        # new member counted as unavailable: the healthy ones must be a quorum of the new size.
        if self.members and strict and not (healthy == 1 and size == 2) \
                and healthy < size // 2 + 1:
            self.waiting[node] = "etcdserver: re-configuration failed due to not enough " \
                                 "started members"
            return False
        mid = etcd_id()
        self.members[mid] = {"name": node, "peer": peer, "client": f"https://{ip}:2379",
                             "alive": True, "node": node}
        self.local[node] = mid
        self.waiting.pop(node, None)
        self.revision += 1
        self.elect()
        return True

    def machine_gone(self, node):
        """The node's machine vanished: its member stays, unreachable."""
        mid = self.local.pop(node, None)
        self.waiting.pop(node, None)
        if mid in self.members:
            self.members[mid]["alive"] = False
        self.elect()

    def forget_waiting(self, nodes):
        for node in list(self.waiting):
            if node not in nodes:
                self.waiting.pop(node)

    def pod_ready(self, node):
        return self.healthy(self.local.get(node))

    def state(self):
        return {"cluster_id": "%x" % self.cluster_id,
                "leader": "%x" % self.leader if self.leader else None,
                "quorum": self.quorum(),
                "members": [{"id": "%x" % mid, "ID": mid, "name": m["name"],
                             "peerURLs": [m["peer"]], "clientURLs": [m["client"]],
                             "healthy": self.healthy(mid), "node": m["node"]}
                            for mid, m in self.members.items()],
                "waiting": dict(self.waiting), "fail_removes": self.fail_removes,
                "stall": self.stall}

    # -- etcdctl

    def etcdctl(self, node, args):
        """`etcdctl ARGS` in the etcd container on NODE: (stdout, stderr, exit code)."""
        try:
            return self.run_etcdctl(node, args), "", 0
        except EtcdctlExit as e:
            return e.stdout, e.stderr, e.code

    def run_etcdctl(self, node, args):
        flags, words = {}, []
        rest = list(args)
        while rest:
            arg = rest.pop(0)
            if arg == "--":
                words += rest
                break
            if not arg.startswith("-") or arg == "-":
                words.append(arg)
                continue
            name, eq, value = arg.lstrip("-").partition("=")
            if name in ETCDCTL_VALUE_FLAGS:
                if not eq:
                    if not rest:
                        raise EtcdctlExit(f"flag needs an argument: {arg}")
                    value = rest.pop(0)
            elif name in ETCDCTL_BOOL_FLAGS:
                value = value if eq else "true"
            elif arg.startswith("--"):
                raise EtcdctlExit(f"unknown flag: --{name}")
            else:
                raise EtcdctlExit(f"unknown shorthand flag: '{name[:1]}' in {arg}")
            flags["write-out" if name == "w" else name] = value
        out = flags.get("write-out", "simple")
        if out not in ("simple", "json"):
            raise EtcdctlExit(f'unsupported output format "{out}" (fake_kube: simple or json)')
        try:
            timeout = parse_go_duration(flags.get("command-timeout", "5s"))
        except ValueError as e:
            raise EtcdctlExit(f'invalid argument "{flags["command-timeout"]}" for '
                              f'"--command-timeout" flag: {e}')
        for flag in ("cacert", "cert", "key"):
            if flag in flags and flags[flag] not in ETCD_FILES:
                raise EtcdctlExit(f"open {flags[flag]}: no such file or directory",
                                  EXIT_BAD_ARGS)
        if words == ["version"]:  # no connection needed
            return f"etcdctl version: {ETCD_VERSION}\nAPI version: 3.5\n"
        cmd = words[:2]
        if cmd not in (["member", "list"], ["member", "remove"], ["member", "update"],
                       ["endpoint", "health"], ["endpoint", "status"]):
            raise EtcdctlExit(f'unknown command "{" ".join(words)}" for "etcdctl" (fake_kube '
                              f'answers version, member list/remove/update, endpoint '
                              f'health/status)')
        # arguments are checked before connecting
        mid = self.parse_id(words[2:]) if cmd[0] == "member" and cmd[1] != "list" else None
        if cmd == ["member", "update"] and "peer-urls" not in flags:
            raise EtcdctlExit("member peer urls not provided", EXIT_BAD_ARGS)
        endpoints = flags.get("endpoints", "127.0.0.1:2379").split(",")
        # kubeadm's etcd serves TLS only, to clients with a certificate of its CA
        if not endpoints[0].startswith("https://"):
            why = "error reading server preface: EOF"
        elif not all(f in flags for f in ("cacert", "cert", "key")):
            why = "transport: authentication handshake failed: tls: failed to verify " \
                  "certificate: x509: certificate signed by unknown authority"
        else:
            why = "transport: Error while dialing: dial tcp " + \
                  endpoints[0].split("//", 1)[1] + ": connect: connection refused"
        target = None
        if "connection refused" in why:
            target = next((mid for mid in (self.endpoint_member(node, ep) for ep in endpoints)
                           if mid is not None), None)
        if target is None:
            raise EtcdctlExit("context deadline exceeded", warning="rpc error: code = "
                              "DeadlineExceeded desc = latest balancer error: last connection "
                              "error: connection error: desc = \"" + why + "\"")
        if cmd == ["member", "list"]:
            return self.member_list(target, out)
        if cmd == ["member", "remove"]:
            return self.member_remove(mid)
        if cmd == ["member", "update"]:
            return self.member_update(mid, flags)
        if cmd == ["endpoint", "health"]:
            return self.endpoint_health(node, endpoints, flags, out, timeout)
        return self.endpoint_status(node, endpoints, flags, out)

    def endpoint_member(self, node, endpoint):
        """The member a client URL reaches from NODE (host network), if it answers."""
        if endpoint in ("https://127.0.0.1:2379", "https://localhost:2379"):
            mid = self.local.get(node)
        else:
            mid = next((mid for mid, m in self.members.items() if m["client"] == endpoint),
                       None)
        return mid if self.healthy(mid) else None

    def linearizable(self):
        if not self.quorum():
            raise EtcdctlExit("context deadline exceeded")

    def header(self, mid, revision=True):
        h = {"cluster_id": self.cluster_id, "member_id": mid}
        if revision:
            h["revision"] = self.revision
        h["raft_term"] = self.raft_term
        return h

    def member_list(self, target, out):
        self.linearizable()
        members = [{"ID": mid, "name": m["name"], "peerURLs": [m["peer"]],
                    "clientURLs": [m["client"]]} for mid, m in self.members.items()]
        if out == "json":
            # the cluster server's header has no revision
            return compact({"header": self.header(target, revision=False),
                            "members": members}) + "\n"
        return "".join("%x, started, %s, %s, %s, false\n" % (
            m["ID"], m["name"], ",".join(m["peerURLs"]), ",".join(m["clientURLs"]))
            for m in members)

    def parse_id(self, words):
        if len(words) != 1:
            raise EtcdctlExit("member ID is not provided", EXIT_BAD_ARGS)
        try:
            if not re.fullmatch(r"[0-9a-fA-F]+", words[0]):
                raise ValueError("invalid syntax")
            mid = int(words[0], 16)
            if mid >= 1 << 64:
                raise ValueError("value out of range")
        except ValueError as e:
            raise EtcdctlExit(f'bad member ID arg (strconv.ParseUint: parsing "{words[0]}": '
                              f"{e}), expecting ID in Hex", EXIT_BAD_ARGS)
        return mid

    def member_remove(self, mid):
        self.linearizable()
        if self.fail_removes > 0:
            self.fail_removes -= 1
            raise EtcdctlExit("etcdserver: request timed out")
        if mid not in self.members:
            raise EtcdctlExit("etcdserver: member not found")
        # mayRemoveMember: the healthy members left must be a quorum of what is left.
        left = [other for other in self.members if other != mid]
        if sum(1 for other in left if self.healthy(other)) < len(left) // 2 + 1:
            raise EtcdctlExit("etcdserver: re-configuration failed due to not enough started "
                              "members")
        member = self.members.pop(mid)
        if self.local.get(member["node"]) == mid:
            self.local[member["node"]] = None  # its etcd stops: removed for good
        self.revision += 1
        self.elect()
        return "Member %16x removed from cluster %16x\n" % (mid, self.cluster_id)

    def member_update(self, mid, flags):
        self.linearizable()
        if mid not in self.members:
            raise EtcdctlExit("etcdserver: member not found")
        self.members[mid]["peer"] = flags["peer-urls"].split(",")[0]
        return "Member %16x updated in cluster %16x\n" % (mid, self.cluster_id)

    def cluster_endpoints(self, endpoints, flags):
        if flags.get("cluster") == "true":
            self.linearizable()  # the member list the endpoints come from
            return [m["client"] for m in self.members.values()]
        return endpoints

    def endpoint_health(self, node, endpoints, flags, out, timeout):
        results = []
        for ep in self.cluster_endpoints(endpoints, flags):
            mid = self.endpoint_member(node, ep)
            # a health check reads a key: linearizable, so it needs the quorum too
            if mid is not None and self.quorum():
                results.append({"endpoint": ep, "health": True,
                                "took": go_duration(random.uniform(0.002, 0.02))})
            else:
                results.append({"endpoint": ep, "health": False,
                                "took": go_duration(timeout + random.uniform(0.0005, 0.002)),
                                "error": "context deadline exceeded"})
        # results come as the checks end: the ones that timed out last
        results.sort(key=lambda r: not r["health"])
        stdout, stderr = "", ""
        if out == "json":
            stdout = compact(results) + "\n"
        else:
            for r in results:
                if r["health"]:
                    stdout += f"{r['endpoint']} is healthy: successfully committed proposal: " \
                              f"took = {r['took']}\n"
                else:
                    stderr += f"{r['endpoint']} is unhealthy: failed to commit proposal: " \
                              f"{r['error']}\n"
        if any(not r["health"] for r in results):
            e = EtcdctlExit("unhealthy cluster", stdout=stdout)
            e.stderr = stderr + e.stderr
            raise e
        return stdout

    def endpoint_status(self, node, endpoints, flags, out):
        rows, failed = [], ""
        for ep in self.cluster_endpoints(endpoints, flags):
            mid = self.endpoint_member(node, ep)
            if mid is None:
                failed += f"Failed to get the status of endpoint {ep} (context deadline " \
                          f"exceeded)\n"
                continue
            rows.append({"Endpoint": ep, "Status": {
                "header": self.header(mid), "version": ETCD_VERSION, "dbSize": 2 ** 21,
                "leader": self.leader or 0, "raftIndex": 1000 + self.revision,
                "raftTerm": self.raft_term, "raftAppliedIndex": 1000 + self.revision,
                "dbSizeInUse": 2 ** 20}})
        if out == "json":
            stdout = compact(rows) + "\n"
        else:
            stdout = "".join("%s, %x, %s, 2.1 MB, %s, false, %d, %d, %d, \n" % (
                r["Endpoint"], r["Status"]["header"]["member_id"], ETCD_VERSION,
                str(r["Status"]["header"]["member_id"] == self.leader).lower(),
                self.raft_term, 1000 + self.revision, 1000 + self.revision) for r in rows)
        if failed:
            e = EtcdctlExit(None, stdout=stdout)
            e.stderr = failed
            raise e
        return stdout



# ---------------------------------------------------------------------------------------------
# Tables (what kubectl get asks for: Accept: application/json;as=Table;g=meta.k8s.io;v=v1)


def human_age(ts):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration of the time since TS."""
    try:
        then = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    secs = int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds())
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        return f"{mins}m{secs % 60}s" if secs % 60 else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def node_row(n):
    st = n.get("status") or {}
    ready = next((c.get("status") for c in st.get("conditions") or []
                  if c.get("type") == "Ready"), "Unknown")
    status = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
    if (n.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = labels_of(n)
    roles = {k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")}
    if labels.get("kubernetes.io/role"):
        roles.add(labels["kubernetes.io/role"])
    addr = {a.get("type"): a.get("address") for a in st.get("addresses") or []}
    info = st.get("nodeInfo") or {}
    return [n["metadata"]["name"], status, ",".join(sorted(roles)) or "<none>",
            human_age(n["metadata"].get("creationTimestamp")), info.get("kubeletVersion", ""),
            addr.get("InternalIP", "<none>"), addr.get("ExternalIP", "<none>"),
            info.get("osImage", ""), info.get("kernelVersion", ""),
            info.get("containerRuntimeVersion", "")]


def pod_row(p):
    st = p.get("status") or {}
    statuses = st.get("containerStatuses") or []
    total = len((p.get("spec") or {}).get("containers") or [])
    ready = sum(1 for c in statuses if c.get("ready"))
    status = st.get("reason") or st.get("phase") or "Unknown"
    if p["metadata"].get("deletionTimestamp"):
        status = "Terminating"
    elif status == "Running" and not pod_ready(p):
        status = "Running"
    return [p["metadata"]["name"], f"{ready}/{total}", status,
            sum(c.get("restartCount", 0) for c in statuses),
            human_age(p["metadata"].get("creationTimestamp")), st.get("podIP", "<none>"),
            (p.get("spec") or {}).get("nodeName", "<none>"),
            st.get("nominatedNodeName", "<none>"), "<none>"]


def deployment_row(d):
    st = d.get("status") or {}
    spec = d.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    return [d["metadata"]["name"], f"{st.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0),
            human_age(d["metadata"].get("creationTimestamp")),
            ",".join(c["name"] for c in containers),
            ",".join(c.get("image", "") for c in containers),
            ",".join(f"{k}={v}" for k, v in
                     ((spec.get("selector") or {}).get("matchLabels") or {}).items())]


def pdb_row(b):
    spec = b.get("spec") or {}
    return [b["metadata"]["name"], str(spec.get("minAvailable", "N/A")),
            str(spec.get("maxUnavailable", "N/A")),
            (b.get("status") or {}).get("disruptionsAllowed", 0),
            human_age(b["metadata"].get("creationTimestamp"))]


def col(name, kind="string", priority=0, fmt=""):
    return {"name": name, "type": kind, "format": fmt, "description": name, "priority": priority}


TABLES = {
    ("", "nodes"): ([col("Name", fmt="name"), col("Status"), col("Roles"), col("Age"),
                     col("Version"), col("Internal-IP", priority=1),
                     col("External-IP", priority=1), col("OS-Image", priority=1),
                     col("Kernel-Version", priority=1), col("Container-Runtime", priority=1)],
                    node_row),
    ("", "pods"): ([col("Name", fmt="name"), col("Ready"), col("Status"),
                    col("Restarts", "string"), col("Age"), col("IP", priority=1),
                    col("Node", priority=1), col("Nominated Node", priority=1),
                    col("Readiness Gates", priority=1)], pod_row),
    ("apps", "deployments"): ([col("Name", fmt="name"), col("Ready"),
                               col("Up-to-date", "integer"), col("Available", "integer"),
                               col("Age"), col("Containers", priority=1),
                               col("Images", priority=1), col("Selector", priority=1)],
                              deployment_row),
    ("policy", "poddisruptionbudgets"): ([col("Name", fmt="name"), col("Min Available"),
                                          col("Max Unavailable"),
                                          col("Allowed Disruptions", "integer"), col("Age")],
                                         pdb_row),
    ("", "namespaces"): ([col("Name", fmt="name"), col("Status"), col("Age")],
                         lambda o: [o["metadata"]["name"],
                                    (o.get("status") or {}).get("phase", ""),
                                    human_age(o["metadata"].get("creationTimestamp"))]),
}


def json_path(obj, path):
    """The value at a CRD printer column's JSONPath, as the API server reads the simple forms:
    .a.b, escaped dots (.metadata.labels.a\\.b/c), and [?(@.key=="value")] filters."""
    tokens = re.findall(r'\.((?:\\\.|[^.\[])+)|\[\?\(@\.(\w+)==["\'](.*?)["\']\)\]', path)
    cur = obj
    for name, key, value in tokens:
        if name:
            name = name.replace("\\.", ".")
            cur = cur.get(name) if isinstance(cur, dict) else None
        else:
            cur = next((i for i in cur or [] if isinstance(i, dict) and str(i.get(key)) == value),
                       None) if isinstance(cur, list) else None
        if cur is None:
            return None
    return cur


def crd_columns(rt):
    """A CRD's printer columns (Name first), and its row function."""
    columns = [col("Name", fmt="name")] + [
        col(c["name"], c.get("type", "string"), c.get("priority", 0), c.get("format", ""))
        for c in rt.columns]

    def row(o):
        cells = [o["metadata"]["name"]]
        for c in rt.columns:
            v = json_path(o, c.get("jsonPath", ""))
            if c.get("type") == "date" and isinstance(v, str):
                v = human_age(v)
            cells.append(v)
        return cells
    return columns, row


def as_table(rt, objs, list_meta, include):
    default = ([col("Name", fmt="name"), col("Created At", fmt="date")],
               lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")])
    if rt.crd and rt.columns:
        default = crd_columns(rt)
    columns, row = TABLES.get(rt.key, default)
    rows = []
    for o in objs:
        r = {"cells": row(o)}
        if include == "Object":
            r["object"] = o
        elif include != "None":
            r["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": o["metadata"]}
        rows.append(r)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns, "rows": rows}


def wants_table(headers):
    accept = headers.get("Accept") or ""
    for part in accept.split(","):
        fields = dict(f.strip().split("=", 1) for f in part.split(";")[1:] if "=" in f)
        if fields.get("as") == "Table" and fields.get("g") == "meta.k8s.io" and \
                fields.get("v") in ("v1", "v1beta1"):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# HTTP


class Watch:
    def __init__(self, rt, version, ns, params):
        self.rt = rt
        self.version = version
        self.ns = ns
        self.params = params


class Server:
    def __init__(self, args):
        self.args = args
        self.cfg = Config(args)
        self.store = Store(self.cfg, args.kubernetes_version)
        self.api = Api(self.store)
        self.controllers = Controllers(self.store, self.api)
        self.stop = threading.Event()
        self.seed()

    def seed(self):
        s, api = self.store, self.api
        with s.lock:
            for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
                api.create(s.types[("", "namespaces")], "v1", "", {"metadata": {"name": name}},
                           {}, None)
            for name, value in SYSTEM_PRIORITIES.items():
                api.create(s.types[("scheduling.k8s.io", "priorityclasses")], "v1", "",
                           {"metadata": {"name": name}, "value": value, "globalDefault": False,
                            "preemptionPolicy": "PreemptLowerPriority",
                            "description": "Used for system critical pods that must not be "
                                           "moved from their current node."}, {}, None)
            api.create(s.types[("", "services")], "v1", "default", {
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver",
                                                              "provider": "kubernetes"}},
                "spec": {"clusterIP": "100.64.0.1", "clusterIPs": ["100.64.0.1"],
                         "ports": [{"name": "https", "port": 443, "targetPort": 443}]}}, {}, None)
            api.create(s.types[("apps", "daemonsets")], "v1", "kube-system", {
                "metadata": {"name": "cilium", "labels": {"k8s-app": "cilium"}},
                "spec": {"selector": {"matchLabels": {"k8s-app": "cilium"}},
                         "template": {"metadata": {"labels": {"k8s-app": "cilium"}},
                                      "spec": {"priorityClassName": "system-node-critical",
                                               "hostNetwork": True,
                                               "tolerations": [{"operator": "Exists"}],
                                               "containers": [{
                                                   "name": "cilium-agent",
                                                   "image": "quay.io/cilium/cilium:v1.16.5"}]}}}},
                {}, None)

    # -- routing

    def discovery(self, path):
        s = self.store
        if path == "/version":
            # Behind the API load balancer any API server answers: the oldest control
            # plane's (each runs the API server of its kubelet's version), else the default.
            git = self.args.kubernetes_version
            with s.lock:
                control = [(n.get("status") or {}).get("nodeInfo", {}).get("kubeletVersion")
                           for n in s.items(s.types[("", "nodes")].key)
                           if "node-role.kubernetes.io/control-plane"
                           in (n["metadata"].get("labels") or {})]
            control = [v for v in control if v]
            if control:
                git = min(control, key=version_key)
            v = git.lstrip("v").split(".")
            return 200, {"major": v[0], "minor": v[1], "emulationMajor": v[0],
                         "emulationMinor": v[1], "gitVersion": git,
                         "gitCommit": "0000000000000000000000000000000000000000",
                         "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
                         "goVersion": "go1.23.4", "compiler": "gc", "platform": "linux/amd64"}
        if path == "/api":
            return 200, {"kind": "APIVersions", "versions": ["v1"],
                         "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                         "serverAddress": "127.0.0.1:443"}]}
        if path == "/apis":
            groups = []
            for g in s.groups():
                versions = []
                for rt in s.types.values():
                    if rt.group == g:
                        for v in rt.versions:
                            if v not in versions:
                                versions.append(v)
                gvs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
                groups.append({"name": g, "versions": gvs, "preferredVersion": gvs[0]})
            return 200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        m = re.match(r"^/api/(v1)$|^/apis/([^/]+)/([^/]+)$", path)
        if m:
            group, version = ("", "v1") if m.group(1) else (m.group(2), m.group(3))
            resources = []
            for rt in s.types.values():
                if rt.group == group and version in rt.versions:
                    resources += discovery_entries(rt, version)
            if not resources:
                raise path_not_found()
            return 200, {"kind": "APIResourceList", "apiVersion": "v1",
                         "groupVersion": f"{group}/{version}" if group else version,
                         "resources": resources}
        m = re.match(r"^/apis/([^/]+)$", path)
        if m and m.group(1) in s.groups():
            g = m.group(1)
            versions = []
            for rt in s.types.values():
                if rt.group == g:
                    versions += [v for v in rt.versions if v not in versions]
            gvs = [{"groupVersion": f"{g}/{v}", "version": v} for v in versions]
            return 200, {"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": gvs,
                         "preferredVersion": gvs[0]}
        return None

    def group_versions(self):
        gvs = {}
        for rt in self.store.types.values():
            for v in rt.versions:
                gv = f"apis/{rt.group}/{v}" if rt.group else f"api/{v}"
                gvs.setdefault(gv, []).append((rt, v))
        return gvs

    def openapi_v3(self, gv):
        """A minimal OpenAPI v3: each kind's PATCH operation and its query parameters, no
        schemas. kubectl reads it to learn that the server validates fields (fieldValidation)
        and then leaves validation to the server; without it kubectl wants /openapi/v2."""
        gvs = self.group_versions()
        if not gv:
            paths = {}
            for name, rts in sorted(gvs.items()):
                digest = "%08X" % fnv32a(json.dumps(
                    [(rt.plural, rt.kind, rt.namespaced) for rt, _ in rts]).encode())
                paths[name] = {"serverRelativeURL": f"/openapi/v3/{name}?hash={digest}"}
            return {"paths": paths}
        if gv not in gvs:
            raise path_not_found()
        paths = {}
        params = [{"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                  for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        for rt, v in gvs[gv]:
            scope = "/namespaces/{namespace}" if rt.namespaced else ""
            gvk = {"group": rt.group, "version": v, "kind": rt.kind}
            content = ["application/json-patch+json", "application/merge-patch+json",
                       "application/apply-patch+yaml"]
            if not rt.crd:
                content.append("application/strategic-merge-patch+json")
            paths[f"/{gv}{scope}/{rt.plural}/{{name}}"] = {"patch": {
                "operationId": f"patch{rt.kind}", "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk, "parameters": params,
                "requestBody": {"content": {c: {"schema": {"type": "object"}}
                                            for c in content}},
                "responses": {"200": {"description": "OK"}}}}
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes (fake_kube)", "version":
                                             self.args.kubernetes_version},
                "paths": paths, "components": {"schemas": {}}}

    def resolve(self, path):
        """(rtype, version, namespace, name, subresource) of a resource path, or None."""
        m = re.match(r"^/api/v1/(.*)$", path)
        if m:
            group, version, rest = "", "v1", m.group(1)
        else:
            m = re.match(r"^/apis/([^/]+)/([^/]+)/(.*)$", path)
            if not m:
                return None
            group, version, rest = m.group(1), m.group(2), m.group(3)
        parts = [urllib.parse.unquote(p) for p in rest.split("/") if p != ""]
        if not parts:
            return None
        s = self.store
        ns = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            rt = s.rtype(group, version, parts[2])
            if rt is not None and rt.namespaced:
                ns, parts = parts[1], parts[2:]
        rt = s.rtype(group, version, parts[0])
        if rt is None or len(parts) > 3:
            return None
        if rt.namespaced and ns is None and len(parts) > 1:
            return None  # a namespaced object needs its namespace
        name = parts[1] if len(parts) > 1 else None
        sub = parts[2] if len(parts) > 2 else None
        return rt, version, ns, name, sub

    def handle(self, method, path, params, body, headers):
        """(code, object, verb, resource, extra headers) or a Watch."""
        s, api = self.store, self.api
        if method == "GET":
            found = self.discovery(path)
            if found is not None:
                return found[0], found[1], "get", "discovery", {}
            if path == "/openapi/v3" or path.startswith("/openapi/v3/"):
                return 200, self.openapi_v3(path[len("/openapi/v3"):].lstrip("/")), "get", \
                    "discovery", {}
            if path.startswith("/openapi"):
                raise path_not_found()
        resolved = self.resolve(path)
        if resolved is None:
            raise path_not_found()
        rt, version, ns, name, sub = resolved
        resource = rt.plural + ("/" + sub if sub else "")
        ctype = headers.get("Content-Type", "application/json")
        manager = params.get("fieldManager") or \
            (headers.get("User-Agent") or "unknown").split("/")[0][:128]
        allowed_subs = {"status"} if rt.status else set()
        if rt.scale:
            allowed_subs.add("scale")
        if rt.key == ("", "pods"):
            allowed_subs.add("eviction")
        if rt.key == ("", "namespaces"):
            allowed_subs.add("finalize")
        if sub is not None and sub not in allowed_subs:
            raise path_not_found()

        def parse_body():
            if not body:
                raise bad_request("the body of the request is empty")
            base = ctype.split(";")[0].strip()
            if base in ("application/json", "*/*", ""):
                try:
                    return json.loads(body)
                except ValueError as e:
                    raise bad_request(f"error decoding the body: {e}")
            if base in ("application/yaml", "application/x-yaml") and yaml is not None:
                return yaml.safe_load(body)
            if base == "application/vnd.kubernetes.protobuf":
                raise ApiError(415, "UnsupportedMediaType", "fake_kube does not decode "
                               "protobuf bodies (the real server does): send JSON (kubectl's "
                               "`create KIND` generators send protobuf; `create -f` and "
                               "`apply -f` send JSON)", {})
            raise unsupported_media(["application/json", "application/yaml"])

        with s.lock:
            if method == "GET":
                if name is None:
                    if params.get("watch") in ("true", "1"):
                        parse_label_selector(params.get("labelSelector"))
                        parse_field_selector(params.get("fieldSelector"), rt)
                        return Watch(rt, version, ns, params), "watch", resource
                    listed = api.list(rt, version, ns, params)
                    if wants_table(headers):
                        listed = as_table(rt, [api.out(rt, s.find(rt.key, i["metadata"].get(
                            "namespace"), i["metadata"]["name"]), version)
                            for i in listed["items"]], listed["metadata"],
                            params.get("includeObject"))
                    return 200, listed, "list", resource, {}
                obj = api.get_obj(rt, ns, name)
                if sub == "scale":
                    return 200, api.scale_of(rt, obj), "get", resource, {}
                if sub not in (None, "status"):
                    raise method_not_allowed()
                if wants_table(headers):
                    return 200, as_table(rt, [api.out(rt, obj, version)],
                                         {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                         params.get("includeObject")), "get", resource, {}
                return 200, api.out(rt, obj, version), "get", resource, {}
            if method == "POST":
                if name is None:
                    out = api.create(rt, version, ns, parse_body(), params, manager)
                    return 201, out, "create", resource, {}
                if sub == "eviction":
                    out, code = api.evict(ns, name, parse_body(), params)
                    return code, out, "create", resource, {}
                raise method_not_allowed()
            if method == "PUT":
                if name is None:
                    raise method_not_allowed()
                if sub == "scale":
                    out, code = api.scale_update(rt, ns, name, parse_body(), manager)
                    return code, out, "update", resource, {}
                if sub == "finalize":
                    sub = None
                out, code = api.update(rt, version, ns, name, parse_body(), params, manager, sub)
                return code, out, "update", resource, {}
            if method == "PATCH":
                if name is None:
                    raise method_not_allowed()
                if sub == "scale":
                    obj = api.get_obj(rt, ns, name)
                    scale = api.scale_of(rt, obj)
                    base = ctype.split(";")[0].strip()
                    patch = json.loads(body or b"{}")
                    if base == "application/json-patch+json":
                        patched = json_patch(scale, patch)
                    elif base == "application/merge-patch+json":
                        patched = merge_patch(scale, patch)
                    else:
                        patched = strategic_merge(scale, patch)
                    out, code = api.scale_update(rt, ns, name, patched, manager)
                    return code, out, "patch", resource, {}
                if sub not in (None, "status"):
                    raise method_not_allowed()
                out, code = api.patch(rt, version, ns, name, body, ctype, params,
                                      manager if not ctype.startswith("application/apply")
                                      else None, sub)
                return code, out, "patch", resource, {}
            if method == "DELETE":
                opts = api.delete_options(params, body)
                if name is None:
                    out, code = api.delete_collection(rt, version, ns, params, opts)
                    return code, out, "deletecollection", resource, {}
                if sub is not None:
                    raise method_not_allowed()
                out, code = api.delete(rt, version, ns, name, opts)
                return code, out, "delete", resource, {}
        raise method_not_allowed()

    def watch_events(self, w, send):
        """Streams events to SEND until the watch ends."""
        s = self.store
        params = w.params
        lsel = parse_label_selector(params.get("labelSelector"))
        fsel = parse_field_selector(params.get("fieldSelector"), w.rt)
        timeout = float(params.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout

        def matches(obj):
            if obj is None:
                return False
            if w.ns is not None and obj["metadata"].get("namespace") != w.ns:
                return False
            return labels_match(lsel, labels_of(obj)) and fields_match(fsel, obj)

        def event(kind, obj):
            return {"type": kind, "object": self.api.out(w.rt, obj, w.version)}

        rv = params.get("resourceVersion") or ""
        initial = []
        with s.lock:
            if params.get("sendInitialEvents") == "true" or rv in ("", "0"):
                for obj in s.items(w.rt.key, w.ns):
                    if matches(obj):
                        initial.append(event("ADDED", obj))
                if params.get("sendInitialEvents") == "true":
                    initial.append({"type": "BOOKMARK", "object": {
                        "kind": w.rt.kind, "apiVersion": w.rt.api_version(w.version),
                        "metadata": {"resourceVersion": str(s.rv), "annotations": {
                            "k8s.io/initial-events-end": "true"}}}})
                last = s.rv
            else:
                try:
                    last = int(rv)
                except ValueError:
                    raise bad_request(f"invalid resource version: {rv}")
                oldest = s.history[0][0] if s.history else s.rv
                if last < oldest - 1 and last < s.rv:
                    initial.append({"type": "ERROR", "object": {
                        "kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Failure", "message": f"too old resource version: {last} "
                                                        f"({oldest - 1})",
                        "reason": "Expired", "code": 410}})
                    send(initial)
                    return
        if not send(initial):
            return
        while not self.stop.is_set() and time.monotonic() < deadline:
            batch = []
            with s.lock:
                if not s.history or s.history[-1][0] <= last:
                    s.lock.wait(min(0.5, max(0.0, deadline - time.monotonic())))
                fresh = []
                for entry in reversed(s.history):
                    if entry[0] <= last:
                        break
                    fresh.append(entry)
                for _rv, key, kind, obj, old in reversed(fresh):
                    if key != w.rt.key:
                        continue
                    new_match = matches(obj)
                    old_match = matches(old)
                    if kind == "ADDED" and new_match:
                        batch.append(event("ADDED", obj))
                    elif kind == "DELETED" and old_match:
                        batch.append(event("DELETED", obj))
                    elif kind == "MODIFIED":
                        if new_match and old_match:
                            batch.append(event("MODIFIED", obj))
                        elif new_match:
                            batch.append(event("ADDED", obj))
                        elif old_match:
                            batch.append(event("DELETED", obj))
                if s.history:
                    last = max(last, s.history[-1][0])
            if batch and not send(batch):
                return


# ---------------------------------------------------------------------------------------------
# pods/exec over WebSocket (RFC 6455 and the channel protocols of k8s.io/apimachinery's
# wsstream: each binary message starts with its channel, 0 stdin, 1 stdout, 2 stderr, 3 the
# error channel's metav1.Status, 4 resize; v5 adds 255, a stream's close)

EXEC_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/exec$")
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# What the API server negotiates, in the client's order of preference: v5 (kube-apiserver's
# stream translator), v4 (proxied to the kubelet). The base64 and older variants are not served.
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDIN, STDOUT, STDERR, STATUS = 0, 1, 2, 3


def exec_status(argv, code):
    """The error channel's Status for an exit code, as the API server writes it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(argv)}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_status(message):
    return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {message}",
            "reason": "InternalError", "details": {"causes": [{"message": message}]},
            "code": 500}


def exec_target(app, ns, name, query):
    """The pod and container of an exec request, checked as the API server checks them before
    it upgrades the connection (an ApiError otherwise)."""
    s = app.store
    rt = s.types[("", "pods")]
    if not query.get("command"):
        raise bad_request("you must specify at least 1 command")
    if not any(query.get(k, [""])[-1] in ("1", "true") for k in ("stdin", "stdout", "stderr")):
        raise bad_request("you must specify at least one of stdin, stdout, stderr")
    with s.lock:
        pod = s.find(rt.key, ns, name)
        if pod is None:
            raise not_found(rt, name)
        spec = pod.get("spec") or {}
        names = [c["name"] for c in spec.get("containers") or []]
        init = [c["name"] for c in spec.get("initContainers") or []]
        container = (query.get("container") or [""])[-1]
        if not container:
            if len(names) == 1:
                container = names[0]
            elif not names:
                raise bad_request(f"a container name must be specified for pod {name}")
            else:
                why = f"a container name must be specified for pod {name}, choose one of: " \
                      f"[{' '.join(names)}]"
                if init:
                    why += f" or one of the init containers: [{' '.join(init)}]"
                raise bad_request(why)
        elif container not in names + init:
            raise bad_request(f"container {container} is not valid for pod {name}")
        if not spec.get("nodeName"):
            raise bad_request(f"pod {name} does not have a host assigned")
        return clone(pod), container


def exec_run(app, pod, container, argv):
    """What the command prints and how it ends: (stdout, stderr, status, delay). The etcd
    container of a control-plane node's mirror pod has etcdctl; other containers echo, true,
    false and sleep; anything else is not found, as the container runtime says."""
    s, c = app.store, app.controllers
    with s.lock:
        node = s.find(("", "nodes"), "", pod["spec"]["nodeName"])
        live = s.find(("", "pods"), pod["metadata"].get("namespace"), pod["metadata"]["name"])
        if node is None or next((cd.get("status") for cd in (node.get("status") or {}).get(
                "conditions") or [] if cd.get("type") == "Ready"), None) == "Unknown":
            ip = internal_ip(node) if node else "10.0.0.1"
            return "", "", internal_status(f"error dialing backend: dial tcp {ip}:10250: "
                                           f"connect: no route to host"), 0
        running = live is not None and any(
            cs.get("name") == container and "running" in (cs.get("state") or {})
            for cs in (live.get("status") or {}).get("containerStatuses") or [])
        if not running:
            return "", "", internal_status(f'unable to upgrade connection: container not '
                                           f'found ("{container}")'), 0
        labels = labels_of(pod)
        etcd = MIRROR_ANNOTATION in (pod["metadata"].get("annotations") or {}) and \
            labels.get("component") == "etcd" and container == "etcd"
        program = argv[0].rsplit("/", 1)[-1]
        if etcd and program == "etcdctl":
            stdout, stderr, code = c.etcd.etcdctl(pod["spec"]["nodeName"], argv[1:])
            return stdout, stderr, exec_status(argv, code), c.etcd.stall
    if not etcd and program in ("echo", "true", "false", "sleep"):
        if program == "sleep":
            try:
                return "", "", exec_status(argv, 0), float(argv[1])
            except (IndexError, ValueError):
                return "", "sleep: invalid time interval\n", exec_status(argv, 1), 0
        return (" ".join(argv[1:]) + "\n" if program == "echo" else ""), "", \
            exec_status(argv, 1 if program == "false" else 0), 0
    return "", "", internal_status(
        f'error executing command in container: failed to exec in container: failed to start '
        f'exec "{uuid.uuid4().hex}{uuid.uuid4().hex}": OCI runtime exec failed: exec failed: '
        f'unable to start container process: exec: "{argv[0]}": executable file not found in '
        f'$PATH: unknown'), 0


class WebSocket:
    """The server's end of a WebSocket: unmasked frames out, masked client frames in."""

    def __init__(self, handler):
        self.rfile = handler.rfile
        self.wfile = handler.wfile
        self.sock = handler.connection

    def send(self, opcode, payload):
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 1 << 16:
            head += bytes([126]) + n.to_bytes(2, "big")
        else:
            head += bytes([127]) + n.to_bytes(8, "big")
        self.wfile.write(head + payload)
        self.wfile.flush()

    def channel(self, number, data=b""):
        # in pieces, as a stream is copied to the socket
        for i in range(0, max(len(data), 1), 8192):
            self.send(0x2, bytes([number]) + data[i:i + 8192])

    def frame(self):
        """(opcode, payload) of the client's next frame; None when the connection ends."""
        head = self.rfile.read(2)
        if len(head) < 2:
            return None
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(self.rfile.read(2), "big")
        elif n == 127:
            n = int.from_bytes(self.rfile.read(8), "big")
        mask = self.rfile.read(4) if head[1] & 0x80 else None
        payload = self.rfile.read(n)
        if mask is None:  # a client's frames must be masked (RFC 6455 5.1)
            return None
        return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    def close(self, wait=5.0):
        """The closing handshake: a normal closure, then the client's close (pings answered
        meanwhile), bounded."""
        try:
            self.send(0x8, (1000).to_bytes(2, "big"))
            self.sock.settimeout(wait)
            while True:
                got = self.frame()
                if got is None or got[0] == 0x8:
                    break
                if got[0] == 0x9:
                    self.send(0xA, got[1])
        except OSError:
            pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-kube"
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK (40 ms a request on a kept-alive connection).
    disable_nagle_algorithm = True
    app = None  # the Server

    def log_message(self, fmt, *args):
        if self.app.args.verbose:
            sys.stderr.write("fake_kube: " + (fmt % args) + "\n")

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def send_json(self, code, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def dispatch(self, method):
        app = self.app
        url = urllib.parse.urlsplit(self.path)
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query,
                                                             keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = url.path.rstrip("/") or "/"
        if path.startswith("/__fake/"):
            try:
                code, obj = control(app, method, path, body)
            except (ValueError, KeyError, TypeError) as e:
                code, obj = 400, {"error": str(e)}
            self.send_json(code, obj)
            return
        exec_path = EXEC_PATH.match(path)
        if exec_path:
            self.serve_exec(method, urllib.parse.unquote(exec_path.group(1)),
                            urllib.parse.unquote(exec_path.group(2)),
                            urllib.parse.parse_qs(url.query, keep_blank_values=True))
            return
        if path in ("/healthz", "/livez", "/readyz"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        verb, resource, code = method.lower(), "unknown", 500
        try:
            result = app.handle(method, path, params, body, self.headers)
            if isinstance(result, tuple) and isinstance(result[0], Watch):
                verb, resource = result[1], result[2]
                code = 200
                count(app, verb, resource, code)
                self.stream_watch(result[0])
                return
            code, obj, verb, resource, headers = result
            if resource == "discovery":
                self.send_json(code, obj)
                return
            # Counted before the answer: a client that has its answer sees the call counted.
            count(app, verb, resource, code)
            self.send_json(code, obj, headers)
            return
        except ApiError as e:
            code = e.code
            resolved = None
            try:
                resolved = app.resolve(path)
            except Exception:
                pass
            if resolved:
                rt, _, _, name, sub = resolved
                resource = rt.plural + ("/" + sub if sub else "")
                verb = {"GET": "get" if name else ("watch" if params.get("watch") == "true"
                                                   else "list"),
                        "POST": "create", "PUT": "update", "PATCH": "patch",
                        "DELETE": "delete" if name else "deletecollection"}[method]
            headers = {"Retry-After": str(e.retry_after)} if e.retry_after else {}
            if resource != "discovery" and resource != "unknown":
                count(app, verb, resource, code)
            self.send_json(e.code, e.status, headers)
        except Exception as e:  # a bug: say so as the real server would
            import traceback
            traceback.print_exc()
            self.send_json(500, ApiError(500, "InternalError", f"Internal error occurred: {e!r}",
                                         {"causes": [{"message": repr(e)}]}).status)

    def serve_exec(self, method, ns, name, query):
        """pods/exec: checked as the API server does, upgraded to a WebSocket, the command's
        output on its channels, its Status on the error channel, then a normal closure."""
        app = self.app
        verb = {"POST": "create", "GET": "get"}.get(method, method.lower())
        try:
            if method not in ("GET", "POST"):
                raise method_not_allowed()
            pod, container = exec_target(app, ns, name, query)
            upgrade = (self.headers.get("Upgrade") or "").lower()
            if upgrade != "websocket":
                if upgrade.startswith("spdy"):
                    raise bad_request("fake_kube does not speak SPDY (the real server does): "
                                      "exec over WebSocket (v5.channel.k8s.io)")
                raise bad_request("Upgrade request required")
            offered = [p.strip() for h in self.headers.get_all("Sec-WebSocket-Protocol") or []
                       for p in h.split(",") if p.strip()]
            protocol = next((p for p in offered if p in EXEC_PROTOCOLS), None)
            if protocol is None:
                raise bad_request(f"requested protocol(s) are not supported: {offered}; "
                                  f"supports {list(EXEC_PROTOCOLS)}")
        except ApiError as e:
            count(app, verb, "pods/exec", e.code)
            self.send_json(e.code, e.status)
            return
        count(app, verb, "pods/exec", 101)
        key = (self.headers.get("Sec-WebSocket-Key") or "").strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        flag = {k: query.get(k, [""])[-1] in ("1", "true") for k in ("stdout", "stderr", "tty")}
        ws = WebSocket(self)
        try:
            # An empty message on the first writable channel: the streams are ready.
            ws.channel(STDOUT if flag["stdout"] else STDERR if flag["stderr"] else STATUS)
            argv = query["command"]
            stdout, stderr, status, delay = exec_run(app, pod, container, argv)
            if delay:
                app.stop.wait(delay)
            if flag["tty"]:  # one stream, as from a terminal
                stdout, stderr = stdout + stderr, ""
            if stdout and flag["stdout"]:
                ws.channel(STDOUT, stdout.encode())
            if stderr and flag["stderr"]:
                ws.channel(STDERR, stderr.encode())
            ws.channel(STATUS, compact(status).encode())
        except OSError:
            return
        ws.close()

    def stream_watch(self, w):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def send(events):
            try:
                for ev in events:
                    data = json.dumps(ev).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                return True
            except OSError:
                return False

        try:
            self.app.watch_events(w, send)
        except ApiError as e:
            send([{"type": "ERROR", "object": e.status}])
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True


def count(app, verb, resource, code):
    s = app.store
    with s.lock:
        s.total_calls += 1
        s.calls[f"{verb} {resource}"] += 1
        s.call_status[f"{verb} {resource} {code}"] += 1


def control(app, method, path, body):
    s, api, c = app.store, app.api, app.controllers
    data = json.loads(body) if body else {}
    parts = path.split("/")[2:]
    with s.lock:
        if parts == ["calls"]:
            if method == "DELETE":
                s.calls.clear()
                s.call_status.clear()
                s.total_calls = 0
                return 200, {}
            return 200, {"total": s.total_calls, "by_call": dict(sorted(s.calls.items())),
                         "by_status": dict(sorted(s.call_status.items()))}
        if parts == ["config"]:
            if method == "POST":
                s.cfg.update(data)
                s.lock.notify_all()
            return 200, s.cfg.as_dict()
        if parts == ["pdb-min-healthy"]:
            if method == "DELETE":
                s.reset_health()
            s.track_health(("", "pods"))
            return 200, {
                "budgets": {k: {kk: vv for kk, vv in v.items() if kk != "uid"}
                            for k, v in s.min_budget.items()},
                "deployments": {k: {kk: vv for kk, vv in v.items() if kk != "uid"}
                                for k, v in s.min_deploy.items()}}
        if parts == ["nodes"] and method == "POST":
            name = data["name"]
            rt = s.types[("", "nodes")]
            if s.find(rt.key, "", name) is not None:
                return 409, {"error": f"node {name} exists"}
            zone = data.get("zone", "us-east-1a")
            s.ip_counter += 1
            ip = f"172.20.{s.ip_counter // 250}.{s.ip_counter % 250 + 1}"
            node = make_node(s, name, data.get("role", "node"), data.get("labels"),
                             data.get("taints"), zone, zone[:-1], data.get("instance_type",
                                                                           "t3.medium"),
                             data.get("provider_id", f"aws:///{zone}/i-{uuid.uuid4().hex[:17]}"),
                             ip, data.get("instance_group"), data.get("unschedulable", False))
            ready_after = float(data.get("ready_after", 0))
            c.node_seen[name] = (time.monotonic(), ready_after)
            c.simulated.add(name)
            if ready_after > 0:
                initial_conditions(node)
            else:
                set_node_condition(node["status"], "Ready", "True", "KubeletReady",
                                   "kubelet is posting ready status")
                set_node_condition(node["status"], "NetworkUnavailable", "False",
                                   "RouteCreated", "network is ready")
            out = api.create(rt, "v1", "", node, {}, None, internal=True)
            return 201, out
        if len(parts) == 2 and parts[0] == "nodes" and method == "DELETE":
            rt = s.types[("", "nodes")]
            node = s.find(rt.key, "", parts[1])
            if node is None:
                return 404, {"error": "no such node"}
            s.drop(rt, node)
            c.aws_nodes.pop(parts[1], None)
            c.etcd.machine_gone(parts[1])
            return 200, {}
        if len(parts) == 3 and parts[0] == "nodes" and parts[2] == "condition":
            override = c.node_override.setdefault(parts[1], {})
            for key, value in data.items():
                if value is None:
                    override.pop(key, None)
                elif value not in ("True", "False", "Unknown"):
                    raise ValueError(f"{key} must be True, False, Unknown or null")
                else:
                    override[key] = value
            s.changes += 1
            s.lock.notify_all()
            return 200, {"name": parts[1], "override": override}
        if len(parts) == 3 and parts[0] == "static-pods":
            ov = c.static_override.setdefault((parts[1], parts[2]), {})
            ov.update({k: bool(v) for k, v in data.items() if k in ("present", "ready")})
            s.changes += 1
            s.lock.notify_all()
            return 200, {"node": parts[1], "component": parts[2], "override": ov}
        if parts == ["etcd"] and method == "GET":
            return 200, c.etcd.state()
        if parts[:2] == ["etcd", "members"] and len(parts) == 3 and method == "POST":
            healthy = data.get("healthy")
            if healthy is None:
                c.etcd.override.pop(parts[2], None)
            elif isinstance(healthy, bool):
                c.etcd.override[parts[2]] = healthy
            else:
                raise ValueError("healthy must be true, false or null")
            c.etcd.elect()
        elif parts == ["etcd", "fail-removes"] and method == "POST":
            c.etcd.fail_removes = int(data["count"])
        elif parts == ["etcd", "stall"] and method == "POST":
            c.etcd.stall = float(data["seconds"])
        else:
            return 404, {"error": f"no control endpoint {method} {path}"}
        s.changes += 1
        s.lock.notify_all()
        return 200, c.etcd.state()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-p", "--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--cluster")
    parser.add_argument("--aws-endpoint")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--ready-after", type=float, default=5.0)
    parser.add_argument("--reschedule-after", type=float, default=1.0)
    parser.add_argument("--grace", type=float, default=0.2)
    parser.add_argument("--sync-interval", type=float, default=0.5)
    parser.add_argument("--kubernetes-version", default="v1.32.4")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    app = Server(args)
    Handler.app = app
    httpd = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    threads = [threading.Thread(target=app.controllers.run, args=(app.stop,), daemon=True)]
    if args.aws_endpoint and args.cluster:
        sim = NodeSimulator(app.store, app.api, app.controllers, args.aws_endpoint, args.cluster,
                            args.region)
        threads.append(threading.Thread(target=sim.run, args=(app.stop,), daemon=True))
    for t in threads:
        t.start()

    def stop(*_):
        app.stop.set()
        with app.store.lock:
            app.store.lock.notify_all()
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"fake_kube: listening on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    httpd.serve_forever(poll_interval=0.2)
    httpd.server_close()
    for t in threads:
        t.join(timeout=2)
    sys.exit(0)


if __name__ == "__main__":
    main()
