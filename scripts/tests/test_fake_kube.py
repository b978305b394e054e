"""Tests of scripts/fake_kube.py: the real kubectl against it, and its API semantics over HTTP.

Run from the repository root: python3 -m unittest discover -s scripts/tests -v
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "fake_kube.py"
MOTO_SERVER = REPO / "scripts" / "moto_server.py"
KUBECTL = "/usr/bin/kubectl" if os.path.exists("/usr/bin/kubectl") else shutil.which("kubectl")
CLUSTER = "t.example.com"

try:
    import moto  # noqa: F401
    import boto3
    HAVE_MOTO = True
except ImportError:
    HAVE_MOTO = False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeKube:
    """scripts/fake_kube.py on a free loopback port, with a kubeconfig for it."""

    def __init__(self, *args, env=None):
        self.tmp = tempfile.mkdtemp(prefix="fake-kube-test-")
        port_file = os.path.join(self.tmp, "port")
        self.log = open(os.path.join(self.tmp, "server.log"), "w+")
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "-p", "0", "--port-file", port_file, *args],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + 15
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("fake_kube did not start:\n" + self.logs())
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())
        self.url = f"http://127.0.0.1:{self.port}"
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: {CLUSTER}
  cluster:
    server: {self.url}
contexts:
- name: {CLUSTER}
  context:
    cluster: {CLUSTER}
    user: {CLUSTER}
current-context: {CLUSTER}
users:
- name: {CLUSTER}
  user: {{}}
""")

    def logs(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                code = self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("fake_kube did not stop on SIGTERM")
            if code != 0:
                raise AssertionError(f"fake_kube exited {code} on SIGTERM:\n{self.logs()}")
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- HTTP

    def request(self, method, path, body=None, content_type="application/json", raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                text = resp.read()
                return resp.status, json.loads(text) if text else None, dict(resp.headers)
        except urllib.error.HTTPError as e:
            text = e.read()
            return e.code, json.loads(text) if text else None, dict(e.headers)

    def ok(self, method, path, body=None, content_type="application/json"):
        code, obj, _ = self.request(method, path, body, content_type)
        if code >= 300:
            raise AssertionError(f"{method} {path}: {code} {obj}")
        return obj

    def get(self, path):
        return self.ok("GET", path)

    def add_node(self, name, **spec):
        return self.ok("POST", "/__fake/nodes", {"name": name, **spec})

    def calls(self):
        return self.get("/__fake/calls")

    # -- kubectl

    def kubectl(self, *args, timeout=60):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp,
               "KUBECONFIG": self.kubeconfig}
        return subprocess.run(
            [KUBECTL, "--cache-dir", os.path.join(self.tmp, "cache"), *args],
            capture_output=True, text=True, env=env, timeout=timeout)

    def kubectl_json(self, *args):
        result = self.kubectl(*args, "-o", "json")
        if result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return json.loads(result.stdout)

    # -- waiting

    def wait_for(self, predicate, what, timeout=15.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})")

    # -- fixtures

    def namespace(self, name):
        return self.ok("POST", "/api/v1/namespaces", {"metadata": {"name": name}})

    def deployment(self, ns, name, replicas, labels, volumes=False, node_selector=None):
        pod_spec = {"containers": [{"name": "app", "image": "nginx:1.27"}]}
        if volumes:
            pod_spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
            pod_spec["containers"][0]["volumeMounts"] = [{"name": "scratch",
                                                          "mountPath": "/scratch"}]
        if node_selector:
            pod_spec["nodeSelector"] = node_selector
        return self.ok("POST", f"/apis/apps/v1/namespaces/{ns}/deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod_spec}}})

    def pdb(self, ns, name, labels, **spec):
        return self.ok("POST", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels}, **spec}})

    def pods(self, ns, selector=""):
        q = f"?labelSelector={urllib.request.quote(selector)}" if selector else ""
        return self.get(f"/api/v1/namespaces/{ns}/pods{q}")["items"]

    def ready_pods(self, ns, selector):
        return [p for p in self.pods(ns, selector)
                if not p["metadata"].get("deletionTimestamp") and any(
                    c["type"] == "Ready" and c["status"] == "True"
                    for c in p.get("status", {}).get("conditions", []))]

    def pdb_status(self, ns, name):
        return self.get(f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/{name}")\
            .get("status", {})

    def wait_budget(self, ns, name, **expected):
        def check():
            st = self.pdb_status(ns, name)
            return st if all(st.get(k) == v for k, v in expected.items()) else None
        return self.wait_for(check, f"budget {name} with {expected}")


def names(items):
    return sorted(i["metadata"]["name"] for i in items)


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class KubectlTest(unittest.TestCase):
    """The real kubectl against the fake: each command must work as against a real server."""

    def setUp(self):
        self.k = FakeKube("--reschedule-after", "0.5", "--grace", "0.2")

    def tearDown(self):
        self.k.stop()

    def test_get_nodes_and_discovery(self):
        k = self.k
        k.add_node("n1")
        k.add_node("cp1", role="control-plane")
        k.add_node("slow", ready_after=60)
        out = k.kubectl("get", "nodes")
        self.assertEqual(out.returncode, 0, out.stderr)
        # the server's Table: kubectl prints its columns
        self.assertRegex(out.stdout, r"(?m)^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION$")
        self.assertRegex(out.stdout, r"(?m)^n1\s+Ready\s+node\s")
        self.assertRegex(out.stdout, r"(?m)^cp1\s+Ready\s+control-plane,master\s")
        self.assertRegex(out.stdout, r"(?m)^slow\s+NotReady\s+node\s")
        nodes = {n["metadata"]["name"]: n for n in k.kubectl_json("get", "nodes")["items"]}
        self.assertEqual(sorted(nodes), ["cp1", "n1", "slow"])
        self.assertIn({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
                      nodes["slow"]["spec"]["taints"])
        cp = nodes["cp1"]
        self.assertEqual(cp["metadata"]["labels"]["node-role.kubernetes.io/control-plane"], "")
        self.assertIn({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"},
                      cp["spec"]["taints"])
        self.assertEqual(nodes["n1"]["metadata"]["labels"]["kubernetes.io/role"], "node")
        # short names come from discovery: kubectl resolves "no", "pdb", "deploy" through it
        res = k.kubectl("api-resources", "--no-headers")
        self.assertEqual(res.returncode, 0, res.stderr)
        rows = {line.split()[0]: line.split() for line in res.stdout.splitlines()}
        self.assertIn("pdb", rows["poddisruptionbudgets"])
        self.assertIn("policy/v1", rows["poddisruptionbudgets"])
        self.assertIn("deploy", rows["deployments"])
        self.assertEqual(k.kubectl("get", "no", "n1", "-o", "name").stdout.strip(), "node/n1")
        # the control-plane node's mirror pods, as kubectl lists them
        mirror = k.wait_for(lambda: [p for p in k.kubectl_json("get", "pods", "-n",
                                                               "kube-system")["items"]
                                     if p["metadata"]["name"].endswith("-cp1")
                                     and p["status"].get("phase") == "Running"],
                            "mirror pods", timeout=10)
        self.assertEqual(sorted(p["metadata"]["labels"]["component"] for p in mirror),
                         ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"])
        k.ok("POST", "/__fake/static-pods/cp1/etcd", {"ready": False})
        k.wait_for(lambda: re.search(r"(?m)^etcd-cp1\s+0/1\s+Running\s", k.kubectl(
            "get", "pods", "-n", "kube-system", "etcd-cp1").stdout), "etcd-cp1 unready")
        missing = k.kubectl("get", "deploy", "nope", "-n", "default")
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn('deployments.apps "nope" not found', missing.stderr)

    def test_apply_and_rollout(self):
        k = self.k
        k.add_node("n1")
        manifest = os.path.join(k.tmp, "web.yaml")

        def write(image, replicas, data):
            with open(manifest, "w") as f:
                f.write(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
      - name: app
        image: {image}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  namespace: default
data: {{a: "{data}"}}
""")

        write("nginx:1.27", 2, "1")
        out = k.kubectl("apply", "-f", manifest)  # with kubectl's default validation
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("deployment.apps/web created", out.stdout)
        out = k.kubectl("rollout", "status", "deployment/web", "--timeout=20s", timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn('deployment "web" successfully rolled out', out.stdout)
        self.assertEqual(len(k.ready_pods("default", "app=web")), 2)
        # a new template rolls through a new ReplicaSet; rollout status watches it
        write("nginx:1.28", 2, "2")
        out = k.kubectl("apply", "-f", manifest)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("configmap/cfg configured", out.stdout)
        out = k.kubectl("rollout", "status", "deployment/web", "--timeout=30s", timeout=40)
        self.assertEqual(out.returncode, 0, out.stderr)
        pods = k.ready_pods("default", "app=web")
        self.assertEqual([p["spec"]["containers"][0]["image"] for p in pods],
                         ["nginx:1.28", "nginx:1.28"])
        rs = k.get("/apis/apps/v1/namespaces/default/replicasets")["items"]
        self.assertEqual(sorted(r["spec"]["replicas"] for r in rs), [0, 2])
        # server-side apply: a changed field owned by kubectl's client-side apply conflicts
        write("nginx:1.28", 3, "2")
        out = k.kubectl("apply", "--server-side", "-f", manifest)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn('conflict with "kubectl-client-side-apply"', out.stderr)
        self.assertIn(".spec.replicas", out.stderr)
        out = k.kubectl("apply", "--server-side", "--force-conflicts", "-f", manifest)
        self.assertEqual(out.returncode, 0, out.stderr)
        d = k.get("/apis/apps/v1/namespaces/default/deployments/web")
        self.assertEqual(d["spec"]["replicas"], 3)
        self.assertIn("kubectl", [m["manager"] for m in d["metadata"]["managedFields"]
                                  if m["operation"] == "Apply"])
        out = k.kubectl("scale", "deployment/web", "--replicas=1")
        self.assertEqual(out.returncode, 0, out.stderr)
        k.wait_for(lambda: len(k.pods("default", "app=web")) == 1, "one pod left")

    def test_field_and_label_selectors(self):
        k = self.k
        k.add_node("n1")
        k.add_node("n2")
        for name, labels, node in (("a", {"app": "web", "tier": "front"}, "n1"),
                                   ("b", {"app": "web", "tier": "back"}, "n2"),
                                   ("c", {"app": "db"}, "n1"),
                                   ("d", {"app": "web"}, "n1")):
            k.ok("POST", "/api/v1/namespaces/default/pods", {
                "metadata": {"name": name, "labels": labels},
                "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
        k.wait_for(lambda: len(k.ready_pods("default", "")) == 4, "4 running pods")

        def sel(*args):
            return names(k.kubectl_json("get", "pods", *args)["items"])

        self.assertEqual(sel("-A", "--field-selector", "spec.nodeName=n1", "-l", "app=web"),
                         ["a", "d"])
        self.assertEqual(sel("-n", "default", "-l", "tier in (front,back)"), ["a", "b"])
        self.assertEqual(sel("-n", "default", "-l", "!tier"), ["c", "d"])
        self.assertEqual(sel("-n", "default", "-l", "app!=web"), ["c"])
        self.assertEqual(sel("-n", "default", "-l", "app=web,tier notin (front)"), ["b", "d"])
        self.assertEqual(sel("-n", "default", "--field-selector", "spec.nodeName!=n1"), ["b"])
        self.assertEqual(sel("-n", "default", "--field-selector",
                             "status.phase=Running,metadata.name=c"), ["c"])
        # cilium's pods are in kube-system, one per node
        cilium = k.kubectl_json("get", "pods", "-A", "-l", "k8s-app=cilium")["items"]
        self.assertEqual(sorted(p["spec"]["nodeName"] for p in cilium), ["n1", "n2"])
        # pagination: --chunk-size=1 follows continue tokens
        k.ok("DELETE", "/__fake/calls")
        paged = k.kubectl("get", "pods", "-n", "default", "--chunk-size=1", "-o", "name")
        self.assertEqual(paged.returncode, 0, paged.stderr)
        self.assertEqual(sorted(paged.stdout.split()), ["pod/a", "pod/b", "pod/c", "pod/d"])
        self.assertGreaterEqual(k.calls()["by_call"].get("list pods", 0), 4)
        bad = k.kubectl("get", "pods", "--field-selector", "spec.nope=x")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("field label not supported: spec.nope", bad.stderr)

    def test_cordon_and_taint(self):
        k = self.k
        k.add_node("n1")
        k.ok("DELETE", "/__fake/calls")
        out = k.kubectl("cordon", "n1")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertTrue(k.get("/api/v1/nodes/n1")["spec"].get("unschedulable"))
        self.assertGreaterEqual(k.calls()["by_call"].get("patch nodes", 0), 1)
        out = k.kubectl("uncordon", "n1")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertFalse(k.get("/api/v1/nodes/n1")["spec"].get("unschedulable"))

        def taints():
            return sorted((t["key"], t.get("value"), t["effect"])
                          for t in k.get("/api/v1/nodes/n1")["spec"].get("taints", []))

        for args in (("a=1:NoSchedule",), ("b=2:NoExecute",)):
            out = k.kubectl("taint", "nodes", "n1", *args)
            self.assertEqual(out.returncode, 0, out.stderr)
        # kubectl sends only the new taint: the server merges the list by key
        self.assertEqual(taints(), [("a", "1", "NoSchedule"), ("b", "2", "NoExecute")])
        out = k.kubectl("taint", "nodes", "n1", "a-")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(taints(), [("b", "2", "NoExecute")])
        # kubectl merges taints by key itself and sends the whole list: as in k8s.io/api,
        # spec.taints has no patch strategy, so a strategic merge patch replaces the list
        k.ok("PATCH", "/api/v1/nodes/n1",
             {"spec": {"taints": [{"key": "c", "value": "3", "effect": "NoSchedule"}]}},
             "application/strategic-merge-patch+json")
        self.assertEqual(taints(), [("c", "3", "NoSchedule")])
        out = k.kubectl("taint", "nodes", "n1", "c=4:NoSchedule", "--overwrite")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(taints(), [("c", "4", "NoSchedule")])
        out = k.kubectl("taint", "nodes", "n1", "c:NoSchedule-")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(taints(), [])

    def test_leases_as_kubectl_sees_them(self):
        """What the GC lock relies on: a Lease is made once (a second create is 409), read
        with its holder and times, replaced only with the resourceVersion read, deleted
        only while the precondition's resourceVersion is current."""
        k = self.k
        lease = ("apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata:\n"
                 "  name: kopsrs-gc-shop\n  namespace: kube-system\nspec:\n"
                 "  holderIdentity: ci-1\n  leaseDurationSeconds: 60\n"
                 "  renewTime: \"2026-12-06T20:00:00.000000Z\"\n")
        path = os.path.join(k.tmp, "lease.yaml")
        with open(path, "w") as f:
            f.write(lease)
        out = k.kubectl("create", "-f", path)
        self.assertEqual(out.returncode, 0, out.stderr)
        out = k.kubectl("create", "-f", path)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("AlreadyExists", out.stderr)
        got = k.kubectl_json("get", "lease", "-n", "kube-system", "kopsrs-gc-shop")
        self.assertEqual(got["spec"]["holderIdentity"], "ci-1")
        self.assertEqual(got["spec"]["renewTime"], "2026-12-06T20:00:00.000000Z")
        rv = got["metadata"]["resourceVersion"]
        # A replace with the resourceVersion read wins once; the stale one is a conflict.
        got["spec"]["holderIdentity"] = "ci-2"
        with open(path, "w") as f:
            json.dump(got, f)
        out = k.kubectl("replace", "-f", path)
        self.assertEqual(out.returncode, 0, out.stderr)
        out = k.kubectl("replace", "-f", path)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("the object has been modified", out.stderr)
        # A delete whose precondition names the old resourceVersion is refused.
        status, body, _ = k.request(
            "DELETE", "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kopsrs-gc-shop",
            {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": rv}})
        self.assertEqual(status, 409, body)
        now = k.kubectl_json("get", "lease", "-n", "kube-system", "kopsrs-gc-shop")
        self.assertEqual(now["spec"]["holderIdentity"], "ci-2")
        out = k.kubectl("delete", "lease", "-n", "kube-system", "kopsrs-gc-shop")
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_calls_are_counted_by_the_time_the_answer_arrives(self):
        # Clients (kopsrs's tests) read /__fake/calls right after their answers: each call,
        # refusals included, must be counted before it is answered.
        k = self.k
        k.ok("DELETE", "/__fake/calls")
        out = k.kubectl("get", "configmaps", "-n", "default")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(k.calls()["by_call"].get("list configmaps"), 1)
        out = k.kubectl("get", "configmap", "nope", "-n", "default")
        self.assertNotEqual(out.returncode, 0)
        self.assertEqual(k.calls()["by_status"].get("get configmaps 404"), 1)
        # As fast as a client can ask, on kept-alive connections.
        api = http.client.HTTPConnection("127.0.0.1", k.port, timeout=10)
        control = http.client.HTTPConnection("127.0.0.1", k.port, timeout=10)
        for i in range(1, 201):
            path = "/api/v1/namespaces/default/configmaps" + ("/nope" if i % 2 else "")
            api.request("GET", path)
            api.getresponse().read()
            control.request("GET", "/__fake/calls")
            calls = json.loads(control.getresponse().read())
            self.assertEqual(calls["by_call"].get("list configmaps", 0) +
                             calls["by_call"].get("get configmaps", 0), i + 2)
        api.close()
        control.close()

    def drain_setup(self, replicas, min_available, second_node):
        k = self.k
        k.add_node("n1")
        k.deployment("default", "web", replicas, {"app": "web"}, volumes=True)
        k.wait_for(lambda: len(k.ready_pods("default", "app=web")) == replicas, "web ready")
        self.assertEqual({p["spec"]["nodeName"] for p in k.pods("default", "app=web")}, {"n1"})
        if second_node:
            k.add_node("n2")
        k.pdb("default", "web", {"app": "web"}, minAvailable=min_available)
        k.wait_budget("default", "web", currentHealthy=replicas, observedGeneration=1)
        k.ok("DELETE", "/__fake/calls")
        k.ok("DELETE", "/__fake/pdb-min-healthy")

    def test_drain_waits_for_budget_then_succeeds(self):
        k = self.k
        self.drain_setup(replicas=2, min_available=1, second_node=True)
        self.assertEqual(k.pdb_status("default", "web")["disruptionsAllowed"], 1)
        out = k.kubectl("drain", "n1", "--ignore-daemonsets", "--delete-emptydir-data",
                        "--timeout=60s", timeout=90)
        self.assertEqual(out.returncode, 0, out.stderr + out.stdout)
        self.assertIn("node/n1 drained", out.stdout)
        # both evictions were tried at once: the budget allowed one, refused the other (429)
        # until the replacement was Ready on n2
        self.assertIn("Cannot evict pod as it would violate the pod's disruption budget",
                      out.stderr)
        calls = k.calls()["by_status"]
        self.assertGreaterEqual(calls.get("create pods/eviction 429", 0), 1, calls)
        self.assertEqual(calls.get("create pods/eviction 201", 0), 2, calls)
        self.assertTrue(k.get("/api/v1/nodes/n1")["spec"].get("unschedulable"))
        ready = k.wait_for(lambda: len(k.ready_pods("default", "app=web")) == 2 and
                           k.ready_pods("default", "app=web"), "web ready again")
        self.assertEqual({p["spec"]["nodeName"] for p in ready}, {"n2"})
        # the budget held throughout; the DaemonSet pod stayed on n1
        health = k.get("/__fake/pdb-min-healthy")["budgets"]["default/web"]
        self.assertGreaterEqual(health["minCurrentHealthy"], 1, health)
        cilium = [p for p in k.pods("kube-system", "k8s-app=cilium")
                  if p["spec"]["nodeName"] == "n1"]
        self.assertEqual(len(cilium), 1)

    def test_drain_times_out_when_budget_has_no_room(self):
        k = self.k
        self.drain_setup(replicas=2, min_available=2, second_node=False)
        before = names(k.pods("default", "app=web"))
        out = k.kubectl("drain", "n1", "--ignore-daemonsets", "--delete-emptydir-data",
                        "--timeout=10s", timeout=60)
        self.assertNotEqual(out.returncode, 0, out.stdout)
        self.assertIn("global timeout reached", out.stderr)
        self.assertIn("Cannot evict pod as it would violate the pod's disruption budget",
                      out.stderr)
        calls = k.calls()["by_status"]
        self.assertGreaterEqual(calls.get("create pods/eviction 429", 0), 2, calls)
        self.assertEqual(calls.get("create pods/eviction 201", 0), 0, calls)
        self.assertEqual(names(k.ready_pods("default", "app=web")), before)
        self.assertEqual(k.pdb_status("default", "web")["disruptionsAllowed"], 0)


class ApiTest(unittest.TestCase):
    """The API's semantics over plain HTTP (one server; each test in its own namespace)."""

    @classmethod
    def setUpClass(cls):
        cls.k = FakeKube("--reschedule-after", "0.3", "--grace", "0.3")
        cls.k.add_node("api-n1")

    @classmethod
    def tearDownClass(cls):
        cls.k.stop()

    def ns(self):
        name = self._testMethodName.replace("_", "-")[:50].strip("-")
        self.k.namespace(name)
        return name

    def test_stale_resource_version_is_a_conflict(self):
        k, ns = self.k, self.ns()
        path = f"/api/v1/namespaces/{ns}/configmaps"
        cm = k.ok("POST", path, {"metadata": {"name": "c"}, "data": {"a": "1"}})
        rv1 = cm["metadata"]["resourceVersion"]
        cm["data"]["a"] = "2"
        updated = k.ok("PUT", f"{path}/c", cm)
        self.assertNotEqual(updated["metadata"]["resourceVersion"], rv1)
        cm["data"]["a"] = "3"  # still carries rv1
        code, status, _ = k.request("PUT", f"{path}/c", cm)
        self.assertEqual(code, 409)
        self.assertEqual(status["kind"], "Status")
        self.assertEqual(status["reason"], "Conflict")
        self.assertEqual(status["details"], {"name": "c", "kind": "configmaps"})
        self.assertIn("the object has been modified", status["message"])
        self.assertEqual(k.get(f"{path}/c")["data"], {"a": "2"})
        # a no-op update writes nothing, even a second later (managedFields keep their time);
        # an update without resourceVersion is unconditional
        time.sleep(1.05)
        same = k.ok("PUT", f"{path}/c", updated)
        self.assertEqual(same["metadata"]["resourceVersion"],
                         updated["metadata"]["resourceVersion"])
        del cm["metadata"]["resourceVersion"]
        self.assertEqual(k.ok("PUT", f"{path}/c", cm)["data"], {"a": "3"})
        # generation moves with the spec only
        d = k.deployment(ns, "g", 0, {"app": "g"})
        self.assertEqual(d["metadata"]["generation"], 1)
        d2 = k.ok("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/g",
                  {"metadata": {"labels": {"x": "y"}}}, "application/merge-patch+json")
        self.assertEqual(d2["metadata"]["generation"], 1)
        d3 = k.ok("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/g",
                  {"spec": {"replicas": 0, "paused": True}}, "application/merge-patch+json")
        self.assertEqual(d3["metadata"]["generation"], 2)

    def test_not_found_is_a_status(self):
        k, ns = self.k, self.ns()
        code, status, _ = k.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/nope")
        self.assertEqual(code, 404)
        self.assertEqual(status, {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": 'deployments.apps "nope" not found', "reason": "NotFound",
            "details": {"name": "nope", "group": "apps", "kind": "deployments"}, "code": 404})
        code, status, _ = k.request("GET", "/apis/nope.example.com/v1/things")
        self.assertEqual((code, status["reason"], status["kind"]), (404, "NotFound", "Status"))
        # creating in a namespace that does not exist is a 404 about the namespace
        code, status, _ = k.request("POST", "/api/v1/namespaces/ghost/configmaps",
                                    {"metadata": {"name": "c"}})
        self.assertEqual(code, 404)
        self.assertEqual(status["message"], 'namespaces "ghost" not found')
        self.assertEqual(status["details"], {"name": "ghost", "kind": "namespaces"})
        code, status, _ = k.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                    {"metadata": {"name": "Bad_Name"}})
        self.assertEqual((code, status["reason"]), (422, "Invalid"))
        k.ok("POST", f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": "dup"}})
        code, status, _ = k.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                    {"metadata": {"name": "dup"}})
        self.assertEqual((code, status["reason"]), (409, "AlreadyExists"))

    def test_generate_name_and_dry_run(self):
        k, ns = self.k, self.ns()
        path = f"/api/v1/namespaces/{ns}/configmaps"
        made = k.ok("POST", path, {"metadata": {"generateName": "gen-"}})
        self.assertRegex(made["metadata"]["name"], r"^gen-[a-z0-9]{5}$")
        self.assertTrue(made["metadata"]["uid"])
        dry = k.ok("POST", path + "?dryRun=All", {"metadata": {"name": "dry"}})
        self.assertEqual(dry["metadata"]["name"], "dry")
        code, _, _ = k.request("GET", path + "/dry")
        self.assertEqual(code, 404)
        k.ok("DELETE", f"{path}/{made['metadata']['name']}?dryRun=All")
        self.assertEqual(k.get(f"{path}/{made['metadata']['name']}")["metadata"]["uid"],
                         made["metadata"]["uid"])

    def test_eviction_refused_by_budget(self):
        k, ns = self.k, self.ns()
        k.deployment(ns, "one", 1, {"app": "one"})
        k.wait_for(lambda: k.ready_pods(ns, "app=one"), "a ready pod")
        k.pdb(ns, "one", {"app": "one"}, minAvailable=1)
        k.wait_budget(ns, "one", observedGeneration=1, currentHealthy=1)
        pod = k.ready_pods(ns, "app=one")[0]["metadata"]["name"]
        code, status, headers = k.request(
            "POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction",
            {"apiVersion": "policy/v1", "kind": "Eviction",
             "metadata": {"name": pod, "namespace": ns}})
        self.assertEqual(code, 429)
        self.assertEqual(status["reason"], "TooManyRequests")
        self.assertEqual(status["details"]["causes"], [{
            "reason": "DisruptionBudget",
            "message": "The disruption budget one needs 1 healthy pods and has 1 currently"}])
        self.assertNotIn("Retry-After", headers)
        self.assertIsNone(k.get(f"/api/v1/namespaces/{ns}/pods/{pod}")["metadata"]
                          .get("deletionTimestamp"))
        # a name that differs from the URL's is a 400; a pod that does not exist a 404
        code, _, _ = k.request("POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction",
                               {"apiVersion": "policy/v1", "kind": "Eviction",
                                "metadata": {"name": "other"}})
        self.assertEqual(code, 400)
        code, status, _ = k.request("POST", f"/api/v1/namespaces/{ns}/pods/ghost/eviction",
                                    {"apiVersion": "policy/v1", "kind": "Eviction",
                                     "metadata": {"name": "ghost"}})
        self.assertEqual((code, status["reason"]), (404, "NotFound"))

    def test_eviction_with_an_unobserved_budget(self):
        k, ns = self.k, self.ns()
        k.deployment(ns, "u", 2, {"app": "u"})
        k.wait_for(lambda: len(k.ready_pods(ns, "app=u")) == 2, "ready pods")
        k.ok("POST", "/__fake/config", {"pdb_controller_paused": True})
        try:
            k.pdb(ns, "u", {"app": "u"}, maxUnavailable=1)
            pod = k.ready_pods(ns, "app=u")[0]["metadata"]["name"]
            code, status, headers = k.request(
                "POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction",
                {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}})
            self.assertEqual(code, 429)
            self.assertEqual(status["details"]["causes"][0]["message"],
                             "The disruption budget u is still being processed by the server.")
            self.assertEqual(headers.get("Retry-After"), "10")
        finally:
            k.ok("POST", "/__fake/config", {"pdb_controller_paused": False})
        st = k.wait_budget(ns, "u", observedGeneration=1)
        self.assertEqual((st["expectedPods"], st["desiredHealthy"], st["disruptionsAllowed"]),
                         (2, 1, 1))
        code, status, _ = k.request(
            "POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction",
            {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}})
        self.assertEqual((code, status["status"]), (201, "Success"))

    def test_eviction_with_two_budgets_is_a_500(self):
        k, ns = self.k, self.ns()
        k.deployment(ns, "two", 1, {"app": "two", "tier": "x"})
        k.wait_for(lambda: k.ready_pods(ns, "app=two"), "a ready pod")
        k.pdb(ns, "by-app", {"app": "two"}, maxUnavailable=1)
        k.pdb(ns, "by-tier", {"tier": "x"}, maxUnavailable=1)
        k.wait_budget(ns, "by-tier", observedGeneration=1)
        pod = k.ready_pods(ns, "app=two")[0]["metadata"]["name"]
        code, status, _ = k.request(
            "POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction",
            {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod}})
        self.assertEqual(code, 500)
        self.assertEqual(status["message"], "This pod has more than one PodDisruptionBudget, "
                         "which the eviction subresource does not support.")
        self.assertEqual((status["kind"], status["status"], status["code"]),
                         ("Status", "Failure", 500))

    def test_eviction_skips_the_budget_for_pods_not_running(self):
        k, ns = self.k, self.ns()
        base = f"/api/v1/namespaces/{ns}/pods"
        k.pdb(ns, "none", {"app": "x"}, maxUnavailable=0)

        def pod(name, **spec):
            return k.ok("POST", base, {"metadata": {"name": name, "labels": {"app": "x"},
                                                    "finalizers": spec.pop("finalizers", [])},
                                       "spec": {"containers": [{"name": "c", "image": "b"}],
                                                **spec}})

        def evict(name):
            return k.request("POST", f"{base}/{name}/eviction",
                             {"apiVersion": "policy/v1", "kind": "Eviction",
                              "metadata": {"name": name}})[0]

        pod("running", nodeName="api-n1")
        pod("pending", nodeSelector={"no-such": "node"})
        pod("succeeded", nodeName="api-n1")
        pod("failed", nodeName="api-n1")
        pod("deleting", nodeName="api-n1", finalizers=["example.com/hold"])
        k.wait_for(lambda: len(k.ready_pods(ns, "app=x")) == 4, "4 running pods")
        for name, phase in (("succeeded", "Succeeded"), ("failed", "Failed")):
            k.ok("PATCH", f"{base}/{name}/status", {"status": {"phase": phase}},
                 "application/merge-patch+json")
        k.ok("DELETE", f"{base}/deleting")
        st = k.wait_budget(ns, "none", observedGeneration=1, expectedPods=0)
        self.assertEqual(st["disruptionsAllowed"], 0)
        self.assertEqual(evict("running"), 429)  # the budget is in force
        self.assertEqual(k.get(f"{base}/pending")["status"]["phase"], "Pending")
        for name in ("pending", "succeeded", "failed", "deleting"):
            self.assertEqual(evict(name), 201, name)
        for name in ("pending", "succeeded", "failed"):
            self.assertEqual(k.request("GET", f"{base}/{name}")[0], 404, name)
        # the deleting pod stays until its finalizer is gone
        held = k.get(f"{base}/deleting")
        self.assertTrue(held["metadata"]["deletionTimestamp"])
        k.ok("PATCH", f"{base}/deleting", {"metadata": {"finalizers": None}},
             "application/merge-patch+json")
        k.wait_for(lambda: k.request("GET", f"{base}/deleting")[0] == 404, "deleting gone")

    def test_budget_status_follows_pods(self):
        k, ns = self.k, self.ns()
        k.add_node("api-n2")
        k.deployment(ns, "s", 3, {"app": "s"})
        k.wait_for(lambda: len(k.ready_pods(ns, "app=s")) == 3, "3 ready pods")
        k.pdb(ns, "s", {"app": "s"}, maxUnavailable=1)
        k.wait_budget(ns, "s", expectedPods=3, desiredHealthy=2, currentHealthy=3,
                      disruptionsAllowed=1)
        pod = k.ready_pods(ns, "app=s")[0]["metadata"]["name"]
        code, _, _ = k.request("POST", f"/api/v1/namespaces/{ns}/pods/{pod}/eviction",
                               {"apiVersion": "policy/v1", "kind": "Eviction",
                                "metadata": {"name": pod}})
        self.assertEqual(code, 201)
        # at once: one fewer healthy pod, nothing left to disrupt
        st = k.wait_budget(ns, "s", currentHealthy=2, disruptionsAllowed=0)
        self.assertEqual(st["expectedPods"], 3)
        # the replacement brings the budget back
        k.wait_budget(ns, "s", currentHealthy=3, disruptionsAllowed=1)
        # scaling through the scale subresource changes the expected count
        k.ok("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/s/scale",
             {"spec": {"replicas": 1}}, "application/merge-patch+json")
        k.wait_budget(ns, "s", expectedPods=1, desiredHealthy=0, currentHealthy=1,
                      disruptionsAllowed=1)
        # a percentage rounds up: minAvailable 50% of 3 needs 2
        k.ok("PATCH", f"/apis/apps/v1/namespaces/{ns}/deployments/s",
             {"spec": {"replicas": 3}}, "application/merge-patch+json")
        k.ok("PATCH", f"/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/s",
             {"spec": {"maxUnavailable": None, "minAvailable": "50%"}},
             "application/merge-patch+json")
        k.wait_budget(ns, "s", observedGeneration=2, expectedPods=3, desiredHealthy=2,
                      currentHealthy=3, disruptionsAllowed=1)
        # pods on a node that goes NotReady are not healthy
        on_n2 = [p for p in k.ready_pods(ns, "app=s") if p["spec"]["nodeName"] == "api-n2"]
        self.assertTrue(on_n2)
        k.ok("POST", "/__fake/nodes/api-n2/condition", {"Ready": "False"})
        try:
            k.wait_budget(ns, "s", currentHealthy=3 - len(on_n2),
                          disruptionsAllowed=max(0, 1 - len(on_n2)))
        finally:
            k.ok("POST", "/__fake/nodes/api-n2/condition", {"Ready": None})
        k.wait_budget(ns, "s", currentHealthy=3)

    def test_strategic_merge_json_merge_and_json_patch(self):
        k, ns = self.k, self.ns()
        path = f"/api/v1/namespaces/{ns}/pods/p"
        k.ok("POST", f"/api/v1/namespaces/{ns}/pods", {
            "metadata": {"name": "p", "labels": {"a": "1", "b": "2"},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                              "name": "o1", "uid": "u1"}]},
            "spec": {"nodeName": "api-n1", "containers": [
                {"name": "one", "image": "i:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "two", "image": "i:2"}]}})
        smp = "application/strategic-merge-patch+json"
        out = k.ok("PATCH", path, {
            "metadata": {"labels": {"a": None},
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                              "name": "o2", "uid": "u2"}]},
            "spec": {"containers": [{"name": "two", "image": "i:3"},
                                    {"name": "one", "env": [{"name": "Y", "value": "2"}]}]}},
            smp)
        self.assertEqual(out["metadata"]["labels"], {"b": "2"})
        self.assertEqual([r["uid"] for r in out["metadata"]["ownerReferences"]], ["u1", "u2"])
        containers = {c["name"]: c for c in out["spec"]["containers"]}
        self.assertEqual(containers["two"]["image"], "i:3")
        self.assertEqual(containers["one"]["image"], "i:1")
        self.assertEqual([e["name"] for e in containers["one"]["env"]], ["X", "Y"])
        out = k.ok("PATCH", path, {"metadata": {"ownerReferences": [
            {"$patch": "delete", "uid": "u1"}]}}, smp)
        self.assertEqual([r["uid"] for r in out["metadata"]["ownerReferences"]], ["u2"])
        # JSON merge patch replaces lists
        out = k.ok("PATCH", path, {"metadata": {"ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "o3", "uid": "u3"}]}},
            "application/merge-patch+json")
        self.assertEqual([r["uid"] for r in out["metadata"]["ownerReferences"]], ["u3"])
        # JSON patch, with a failing test operation
        out = k.ok("PATCH", path, [{"op": "add", "path": "/metadata/labels/c", "value": "3"},
                                   {"op": "remove", "path": "/metadata/labels/b"}],
                   "application/json-patch+json")
        self.assertEqual(out["metadata"]["labels"], {"c": "3"})
        code, status, _ = k.request("PATCH", path, [{"op": "test", "path": "/metadata/labels/c",
                                                     "value": "4"}],
                                    "application/json-patch+json")
        self.assertEqual((code, status["kind"]), (422, "Status"))
        # a stale resourceVersion in a patch is a conflict
        code, status, _ = k.request("PATCH", path, {"metadata": {"resourceVersion": "1"}},
                                    "application/merge-patch+json")
        self.assertEqual((code, status["reason"]), (409, "Conflict"))
        # status goes through /status only
        out = k.ok("PATCH", path, {"status": {"phase": "Failed"}}, smp)
        self.assertNotEqual(out["status"].get("phase"), "Failed")
        out = k.ok("PATCH", path + "/status", {"status": {"phase": "Failed"},
                                              "metadata": {"labels": {"z": "1"}}}, smp)
        self.assertEqual(out["status"]["phase"], "Failed")
        self.assertNotIn("z", out["metadata"]["labels"])

    def test_server_side_apply(self):
        k, ns = self.k, self.ns()
        path = f"/api/v1/namespaces/{ns}/configmaps/cfg"
        apply = "application/apply-patch+yaml"
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
                "data": {"k1": "a", "k2": "b"}}
        code, status, _ = k.request("PATCH", path, body, apply)
        self.assertEqual((code, status["reason"]), (400, "BadRequest"))
        code, out, _ = k.request("PATCH", path + "?fieldManager=alice", body, apply)
        self.assertEqual(code, 201, out)
        self.assertEqual(out["data"], {"k1": "a", "k2": "b"})
        entry = out["metadata"]["managedFields"][0]
        self.assertEqual((entry["manager"], entry["operation"]), ("alice", "Apply"))
        self.assertEqual(entry["fieldsV1"], {"f:data": {"f:k1": {}, "f:k2": {}}})
        # YAML too; k2 is no longer applied by alice: removed
        yaml_body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  k1: a\n"
        code, out, _ = k.request("PATCH", path + "?fieldManager=alice", None, apply,
                                 raw=yaml_body)
        self.assertEqual(code, 200, out)
        self.assertEqual(out["data"], {"k1": "a"})
        # another manager changing alice's field conflicts, unless it forces
        bob = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
               "data": {"k1": "z"}}
        code, status, _ = k.request("PATCH", path + "?fieldManager=bob", bob, apply)
        self.assertEqual(code, 409)
        self.assertEqual(status["details"]["causes"][0]["reason"], "FieldManagerConflict")
        self.assertEqual(status["details"]["causes"][0]["field"], ".data.k1")
        code, out, _ = k.request("PATCH", path + "?fieldManager=bob&force=true", bob, apply)
        self.assertEqual(code, 200)
        self.assertEqual(out["data"], {"k1": "z"})
        managers = {e["manager"]: e for e in out["metadata"]["managedFields"]}
        self.assertIn("f:k1", managers["bob"]["fieldsV1"]["f:data"])
        self.assertNotIn("alice", managers)  # alice owned nothing else
        # an update records its manager too
        out = k.ok("PATCH", path + "?fieldManager=carol", {"data": {"k3": "c"}},
                   "application/merge-patch+json")
        managers = {e["manager"]: e for e in out["metadata"]["managedFields"]}
        self.assertEqual(managers["carol"]["operation"], "Update")
        self.assertEqual(managers["carol"]["fieldsV1"], {"f:data": {"f:k3": {}}})
        # apply merges lists by their keys: a second container keeps the first
        dpath = f"/apis/apps/v1/namespaces/{ns}/deployments/ssa"
        dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ssa"},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "ssa"}},
                        "template": {"metadata": {"labels": {"app": "ssa"}},
                                     "spec": {"containers": [{"name": "a", "image": "a:1"}]}}}}
        self.assertEqual(k.request("PATCH", dpath + "?fieldManager=one", dep, apply)[0], 201)
        dep2 = json.loads(json.dumps(dep))
        dep2["spec"]["template"]["spec"]["containers"] = [{"name": "b", "image": "b:1"}]
        code, out, _ = k.request("PATCH", dpath + "?fieldManager=two", dep2, apply)
        self.assertEqual(code, 200, out)
        self.assertEqual([c["name"] for c in out["spec"]["template"]["spec"]["containers"]],
                         ["a", "b"])

    def test_deletion_propagation_and_namespaces(self):
        k, ns = self.k, self.ns()
        k.deployment(ns, "bg", 1, {"app": "bg"})
        k.deployment(ns, "orphan", 1, {"app": "orphan"})
        k.wait_for(lambda: len(k.ready_pods(ns, "app in (bg,orphan)")) == 2, "pods")
        rs_path = f"/apis/apps/v1/namespaces/{ns}/replicasets"
        k.ok("DELETE", f"/apis/apps/v1/namespaces/{ns}/deployments/bg")
        k.wait_for(lambda: not k.pods(ns, "app=bg"), "bg's pods collected")
        self.assertEqual(names(k.get(rs_path + "?labelSelector=app%3Dbg")["items"]), [])
        k.ok("DELETE", f"/apis/apps/v1/namespaces/{ns}/deployments/orphan",
             {"propagationPolicy": "Orphan"})
        k.wait_for(lambda: k.request("GET", f"/apis/apps/v1/namespaces/{ns}/deployments/"
                                            f"orphan")[0] == 404, "orphan deleted")
        rs = k.get(rs_path + "?labelSelector=app%3Dorphan")["items"]
        self.assertEqual(len(rs), 1)
        self.assertNotIn("ownerReferences", rs[0]["metadata"])
        self.assertEqual(len(k.pods(ns, "app=orphan")), 1)
        # graceful pod deletion: the pod lingers with its deletionTimestamp, then goes
        pod = k.pods(ns, "app=orphan")[0]["metadata"]["name"]
        gone = k.ok("DELETE", f"/api/v1/namespaces/{ns}/pods/{pod}")
        self.assertTrue(gone["metadata"]["deletionTimestamp"])
        self.assertEqual(k.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}")[0], 200)
        k.wait_for(lambda: k.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}")[0] == 404,
                   "pod gone")
        # a namespace terminates: no new content, then it and its objects go
        code, _, _ = k.request("DELETE", "/api/v1/namespaces/default")
        self.assertEqual(code, 403)
        out = k.ok("DELETE", f"/api/v1/namespaces/{ns}")
        self.assertEqual(out["status"]["phase"], "Terminating")
        code, status, _ = k.request("POST", f"/api/v1/namespaces/{ns}/configmaps",
                                    {"metadata": {"name": "late"}})
        self.assertEqual(code, 403)
        self.assertEqual(status["details"]["causes"][0]["reason"], "NamespaceTerminating")
        k.wait_for(lambda: k.request("GET", f"/api/v1/namespaces/{ns}")[0] == 404,
                   "namespace gone")
        self.assertEqual(k.get(f"/api/v1/namespaces/{ns}/pods")["items"], [])

    def test_custom_resource_definitions(self):
        k, ns = self.k, self.ns()
        crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "widgets.example.com"},
               "spec": {"group": "example.com", "scope": "Namespaced",
                        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                                  "shortNames": ["wd"]},
                        "versions": [{"name": "v1", "served": True, "storage": True,
                                      "schema": {"openAPIV3Schema": {"type": "object"}},
                                      "subresources": {"status": {}}}]}}
        k.ok("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        path = f"/apis/example.com/v1/namespaces/{ns}/widgets"
        k.wait_for(lambda: any(c["type"] == "Established" and c["status"] == "True"
                               for c in k.get("/apis/apiextensions.k8s.io/v1/"
                                              "customresourcedefinitions/widgets.example.com")
                               .get("status", {}).get("conditions", [])), "Established")
        groups = [g["name"] for g in k.get("/apis")["groups"]]
        self.assertIn("example.com", groups)
        w = k.ok("POST", path, {"apiVersion": "example.com/v1", "kind": "Widget",
                                "metadata": {"name": "w"}, "spec": {"size": 1}})
        self.assertEqual(w["metadata"]["generation"], 1)
        listed = k.get(path)
        self.assertEqual((listed["kind"], names(listed["items"])), ("WidgetList", ["w"]))
        code, status, _ = k.request("PATCH", path + "/w", {"spec": {"size": 2}},
                                    "application/strategic-merge-patch+json")
        self.assertEqual((code, status["reason"]), (415, "UnsupportedMediaType"))
        w2 = k.ok("PATCH", path + "/w", {"spec": {"size": 2}}, "application/merge-patch+json")
        self.assertEqual(w2["metadata"]["generation"], 2)
        del w2["metadata"]["resourceVersion"]
        code, status, _ = k.request("PUT", path + "/w", w2)
        self.assertEqual((code, status["reason"]), (422, "Invalid"))
        k.ok("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
                       "widgets.example.com")
        k.wait_for(lambda: k.request("GET", path)[0] == 404, "widgets no longer served")

    def test_watch(self):
        k, ns = self.k, self.ns()
        path = f"/api/v1/namespaces/{ns}/configmaps"
        rv = k.get(path)["metadata"]["resourceVersion"]
        k.ok("POST", path, {"metadata": {"name": "w1", "labels": {"w": "yes"}}})
        k.ok("PATCH", path + "/w1", {"metadata": {"labels": {"w": "no"}}},
             "application/merge-patch+json")
        k.ok("POST", path, {"metadata": {"name": "w2", "labels": {"w": "yes"}}})
        req = urllib.request.Request(
            f"{k.url}{path}?watch=true&resourceVersion={rv}&labelSelector=w%3Dyes"
            f"&timeoutSeconds=1")
        with urllib.request.urlopen(req, timeout=10) as resp:
            events = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
        self.assertEqual([(e["type"], e["object"]["metadata"]["name"]) for e in events],
                         [("ADDED", "w1"), ("DELETED", "w1"), ("ADDED", "w2")])
        self.assertEqual(events[0]["object"]["kind"], "ConfigMap")


ETCD_FLAGS = ("--endpoints=https://127.0.0.1:2379", "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
              "--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt",
              "--key=/etc/kubernetes/pki/etcd/healthcheck-client.key")


def ws_exec(k, path, protocols=("v4.channel.k8s.io",), method="GET", upgrade="websocket"):
    """A minimal WebSocket client (as the channel protocols use it): the status line and
    headers, then every message as (channel, bytes) until the server closes."""
    sock = socket.create_connection(("127.0.0.1", k.port), timeout=10)
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock.sendall((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\n"
                  f"Upgrade: {upgrade}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}"
                  f"\r\nSec-WebSocket-Protocol: {', '.join(protocols)}\r\n\r\n").encode())
    f = sock.makefile("rb")
    status = f.readline().decode().strip()
    headers = {}
    while True:
        line = f.readline().decode().strip()
        if not line:
            break
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if not status.startswith("HTTP/1.1 101"):
        body = f.read(int(headers.get("content-length", 0)))
        sock.close()
        return status, headers, json.loads(body)
    messages = []
    while True:
        head = f.read(2)
        if len(head) < 2:
            break
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(f.read(2), "big")
        elif n == 127:
            n = int.from_bytes(f.read(8), "big")
        assert not head[1] & 0x80, "server frames are not masked"
        payload = f.read(n)
        if head[0] & 0x0F == 0x8:
            # answer the close, masked as a client must
            mask = os.urandom(4)
            sock.sendall(bytes([0x88, 0x80 | len(payload)]) + mask +
                         bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            messages.append(("close", int.from_bytes(payload[:2], "big")))
            break
        messages.append((payload[0], payload[1:]))
    sock.close()
    return status, headers, messages


@unittest.skipUnless(KUBECTL, "kubectl is not installed")
class EtcdExecTest(unittest.TestCase):
    """kubectl exec into the etcd mirror pods, and the simulated etcd behind them."""

    def setUp(self):
        self.k = FakeKube()
        for name in ("cp1", "cp2", "cp3"):
            self.k.add_node(name, role="control-plane")
        self.k.wait_for(lambda: len(self.etcd()["members"]) == 3, "three members")

    def tearDown(self):
        self.k.stop()

    def etcd(self):
        return self.k.get("/__fake/etcd")

    def etcdctl(self, node, *args, flags=ETCD_FLAGS):
        return self.k.kubectl("exec", "-n", "kube-system", f"etcd-{node}", "-c", "etcd", "--",
                              "etcdctl", *flags, *args)

    def etcd_ready(self, node):
        pod = self.k.get(f"/api/v1/namespaces/kube-system/pods/etcd-{node}")
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in pod["status"].get("conditions", []))

    def test_member_list_and_remove(self):
        k = self.k
        out = self.etcdctl("cp1", "member", "list", "-w", "json")
        self.assertEqual(out.returncode, 0, out.stderr)
        listed = json.loads(out.stdout)
        state = self.etcd()
        by_name = {m["name"]: m for m in state["members"]}
        self.assertEqual(sorted(m["name"] for m in listed["members"]), ["cp1", "cp2", "cp3"])
        # etcdctl's JSON: uint64 numbers (beyond i64: the top bit is set), URLs from the
        # node's InternalIP, the header of the member answering, without a revision
        nodes = {n["metadata"]["name"]: n for n in k.get("/api/v1/nodes")["items"]}
        for m in listed["members"]:
            self.assertEqual(m["ID"], by_name[m["name"]]["ID"])
            self.assertGreaterEqual(m["ID"], 1 << 63)
            ip = next(a["address"] for a in nodes[m["name"]]["status"]["addresses"]
                      if a["type"] == "InternalIP")
            self.assertEqual(m["peerURLs"], [f"https://{ip}:2380"])
            self.assertEqual(m["clientURLs"], [f"https://{ip}:2379"])
        self.assertEqual(listed["header"]["member_id"], by_name["cp1"]["ID"])
        self.assertEqual(listed["header"]["cluster_id"], int(state["cluster_id"], 16))
        self.assertEqual(sorted(listed["header"]), ["cluster_id", "member_id", "raft_term"])
        simple = self.etcdctl("cp2", "member", "list")
        self.assertIn(f"{by_name['cp3']['id']}, started, cp3, https://", simple.stdout)

        out = self.etcdctl("cp1", "member", "remove", by_name["cp3"]["id"])
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(out.stdout, "Member %16x removed from cluster %16x\n" % (
            by_name["cp3"]["ID"], int(state["cluster_id"], 16)))
        self.assertEqual(sorted(m["name"] for m in self.etcd()["members"]), ["cp1", "cp2"])
        listed = json.loads(self.etcdctl("cp2", "member", "list", "-w", "json").stdout)
        self.assertEqual(sorted(m["name"] for m in listed["members"]), ["cp1", "cp2"])
        # the removed member's etcd stops: its pod goes unready, its etcdctl cannot connect
        k.wait_for(lambda: not self.etcd_ready("cp3"), "etcd-cp3 unready")
        out = self.etcdctl("cp3", "member", "list")
        self.assertEqual(out.returncode, 1)
        self.assertIn("Error: context deadline exceeded", out.stderr)
        # an unknown ID, a bad one: etcdctl's errors and exit codes, through kubectl
        out = self.etcdctl("cp1", "member", "remove", by_name["cp3"]["id"])
        self.assertEqual((out.returncode, out.stderr.splitlines()[0]),
                         (1, "Error: etcdserver: member not found"))
        self.assertIn("command terminated with exit code 1", out.stderr)
        out = self.etcdctl("cp1", "member", "remove", "zz")
        self.assertEqual(out.returncode, 128, out.stderr)
        self.assertIn('bad member ID arg (strconv.ParseUint: parsing "zz": invalid syntax), '
                      'expecting ID in Hex', out.stderr)

    def test_exec_errors_as_the_api_server_gives_them(self):
        k = self.k
        missing = k.kubectl("exec", "-n", "kube-system", "etcd-nope", "--", "etcdctl",
                            "version")
        self.assertEqual(missing.returncode, 1)
        self.assertIn('Error from server (NotFound): pods "etcd-nope" not found',
                      missing.stderr)
        # kubectl reads the pod first; the exec itself is a 404 Status before any upgrade
        self.assertEqual(k.calls()["by_status"]["get pods 404"], 1)
        status, _, body = ws_exec(k, "/api/v1/namespaces/kube-system/pods/etcd-nope/exec?"
                                     "command=etcdctl&stdout=1", ("v5.channel.k8s.io",))
        self.assertEqual((status, body["reason"], body["message"]),
                         ("HTTP/1.1 404 Not Found", "NotFound", 'pods "etcd-nope" not found'))
        self.assertEqual(k.calls()["by_status"]["get pods/exec 404"], 1)
        wrong = k.kubectl("exec", "-n", "kube-system", "etcd-cp1", "-c", "main", "--", "true")
        self.assertIn("Error from server (BadRequest): container main is not valid for pod "
                      "etcd-cp1", wrong.stderr)
        # the etcd image has etcdctl and no shell: containerd's error, as an internal error
        shell = k.kubectl("exec", "-n", "kube-system", "etcd-cp1", "--", "sh", "-c", "true")
        self.assertEqual(shell.returncode, 1)
        self.assertRegex(shell.stderr, r'Internal error occurred: error executing command in '
                                       r'container: .*exec: "sh": executable file not found')
        version = k.kubectl("exec", "-n", "kube-system", "etcd-cp1", "--", "etcdctl",
                            "version")
        self.assertEqual((version.returncode, version.stdout.splitlines()[0]),
                         (0, "etcdctl version: 3.5.16"))
        # another pod's container has no etcdctl; echo and false work, exit codes propagate
        cilium = k.wait_for(lambda: [p["metadata"]["name"] for p in k.get(
            "/api/v1/namespaces/kube-system/pods?labelSelector=k8s-app%3Dcilium")["items"]
            if p["status"].get("phase") == "Running"], "a cilium pod")[0]
        echo = k.kubectl("exec", "-n", "kube-system", cilium, "--", "echo", "hello", "there")
        self.assertEqual((echo.returncode, echo.stdout), (0, "hello there\n"))
        false = k.kubectl("exec", "-n", "kube-system", cilium, "--", "false")
        self.assertEqual(false.returncode, 1)
        self.assertIn("command terminated with exit code 1", false.stderr)
        etcdctl = k.kubectl("exec", "-n", "kube-system", cilium, "--", "etcdctl", "version")
        self.assertEqual(etcdctl.returncode, 1)
        self.assertIn('exec: "etcdctl": executable file not found', etcdctl.stderr)
        # a pod without a node is refused before the upgrade; a container not running, after
        k.ok("POST", "/api/v1/namespaces/default/pods", {
            "metadata": {"name": "unbound"}, "spec": {"containers": [{"name": "main",
                                                                      "image": "busybox"}]}})
        out = k.kubectl("exec", "unbound", "--", "true")
        self.assertIn("Error from server (BadRequest): pod unbound does not have a host "
                      "assigned", out.stderr)
        k.add_node("slow", ready_after=60)
        k.ok("POST", "/api/v1/namespaces/default/pods", {
            "metadata": {"name": "waiting"}, "spec": {"nodeName": "slow", "containers": [
                {"name": "main", "image": "busybox"}]}})
        out = k.kubectl("exec", "waiting", "--", "true")
        self.assertEqual(out.returncode, 1)
        self.assertIn('error: Internal error occurred: unable to upgrade connection: container '
                      'not found ("main")', out.stderr)
        # without kubeadm's client certificate etcd does not answer
        out = self.etcdctl("cp1", "member", "list", flags=ETCD_FLAGS[:1])
        self.assertEqual(out.returncode, 1)
        self.assertIn("certificate signed by unknown authority", out.stderr)
        self.assertIn("\nError: context deadline exceeded\ncommand terminated", out.stderr)
        out = self.etcdctl("cp1", "member", "list", flags=(*ETCD_FLAGS[:3], "--key=/nope"))
        self.assertEqual(out.returncode, 128)
        self.assertIn("Error: open /nope: no such file or directory", out.stderr)

    def test_exec_protocol(self):
        k = self.k
        path = ("/api/v1/namespaces/kube-system/pods/etcd-cp1/exec?command=etcdctl&command=nope"
                "&container=etcd&stdout=1&stderr=1")
        status, headers, messages = ws_exec(k, path)
        self.assertEqual(status, "HTTP/1.1 101 Switching Protocols")
        self.assertEqual(headers["sec-websocket-protocol"], "v4.channel.k8s.io")
        self.assertEqual(headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        # ready (an empty stdout message), stderr, the Status, a normal closure
        self.assertEqual(messages[0], (1, b""))
        self.assertEqual(messages[1][0], 2)
        self.assertIn(b'Error: unknown command "nope" for "etcdctl"', messages[1][1])
        self.assertEqual(messages[2][0], 3)
        self.assertEqual(json.loads(messages[2][1]), {
            "metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command "
                       "[etcdctl nope], exit code 1",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "1"}]}})
        self.assertEqual(messages[3], ("close", 1000))
        # v5 first when offered first; success is a bare Success
        status, headers, messages = ws_exec(
            k, path.replace("command=nope", "command=version"),
            ("v5.channel.k8s.io", "v4.channel.k8s.io"))
        self.assertEqual(headers["sec-websocket-protocol"], "v5.channel.k8s.io")
        self.assertEqual(messages[-2], (3, b'{"metadata":{},"status":"Success"}'))
        # refused before the upgrade: no protocol served, not an upgrade, no command
        status, _, body = ws_exec(k, path, ("v3.channel.k8s.io",))
        self.assertEqual(status, "HTTP/1.1 400 Bad Request")
        self.assertIn("requested protocol(s) are not supported", body["message"])
        status, _, body = ws_exec(k, path, upgrade="SPDY/3.1")
        self.assertEqual((status, body["reason"]), ("HTTP/1.1 400 Bad Request", "BadRequest"))
        code, body, _ = k.request("GET", path)
        self.assertEqual((code, body["message"]), (400, "Upgrade request required"))
        code, body, _ = k.request("POST", path.split("?")[0] + "?stdout=1")
        self.assertEqual((code, body["message"]), (400, "you must specify at least 1 command"))

    def test_dead_member_blocks_a_join_until_removed(self):
        k = self.k
        k.ok("DELETE", "/__fake/nodes/cp3")  # its machine vanished: the member stays
        out = self.etcdctl("cp1", "endpoint", "health", "--cluster", "-w", "json")
        self.assertEqual(out.returncode, 1)
        health = {h["endpoint"]: h for h in json.loads(out.stdout)}
        dead = next(m for m in self.etcd()["members"] if m["name"] == "cp3")
        self.assertFalse(dead["healthy"])
        self.assertEqual(len(health), 3)
        self.assertEqual(health[dead["clientURLs"][0]]["health"], False)
        self.assertEqual(health[dead["clientURLs"][0]]["error"], "context deadline exceeded")
        self.assertEqual(sum(h["health"] for h in health.values()), 2)
        self.assertIn("Error: unhealthy cluster", out.stderr)
        # 2 healthy of 3: a fourth member would need 3 healthy; the join waits, its pod unready
        k.add_node("cp4", role="control-plane")
        k.wait_for(lambda: "cp4" in self.etcd()["waiting"], "cp4 waiting")
        time.sleep(1.5)
        self.assertFalse(self.etcd_ready("cp4"))
        self.assertEqual(len(self.etcd()["members"]), 3)
        self.assertIn("not enough started members", self.etcd()["waiting"]["cp4"])
        pods = k.kubectl("get", "pods", "-n", "kube-system", "etcd-cp4")
        self.assertRegex(pods.stdout, r"(?m)^etcd-cp4\s+0/1\s+Running\s")
        out = self.etcdctl("cp1", "member", "remove", dead["id"])
        self.assertEqual(out.returncode, 0, out.stderr)
        k.wait_for(lambda: self.etcd_ready("cp4"), "etcd-cp4 ready")
        listed = json.loads(self.etcdctl("cp4", "member", "list", "-w", "json").stdout)
        self.assertEqual(sorted(m["name"] for m in listed["members"]), ["cp1", "cp2", "cp4"])
        self.assertEqual(self.etcd()["waiting"], {})
        out = self.etcdctl("cp2", "endpoint", "health", "--cluster", "-w", "json")
        self.assertEqual(out.returncode, 0, out.stderr)

    def test_without_quorum_etcdctl_times_out(self):
        k = self.k
        k.ok("DELETE", "/__fake/nodes/cp2")
        k.ok("DELETE", "/__fake/nodes/cp3")
        self.assertFalse(self.etcd()["quorum"])
        for args in (("member", "list", "-w", "json"), ("endpoint", "health", "--cluster")):
            out = self.etcdctl("cp1", *args)
            self.assertEqual(out.returncode, 1, out.stderr)
            self.assertEqual(out.stdout, "")
            self.assertIn("Error: context deadline exceeded", out.stderr)
        # a member is not removed without a quorum
        out = self.etcdctl("cp1", "member", "remove", self.etcd()["members"][2]["id"])
        self.assertEqual(out.returncode, 1)
        self.assertEqual(len(self.etcd()["members"]), 3)
        # the local member still answers for itself (endpoint status is not linearizable)
        out = self.etcdctl("cp1", "endpoint", "status", "-w", "json")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)[0]["Status"]["leader"], 0)

    def test_control_overrides(self):
        k = self.k
        members = {m["name"]: m for m in self.etcd()["members"]}
        state = k.ok("POST", "/__fake/etcd/members/cp2", {"healthy": False})
        self.assertFalse(next(m for m in state["members"] if m["name"] == "cp2")["healthy"])
        k.wait_for(lambda: not self.etcd_ready("cp2"), "etcd-cp2 unready")
        health = self.etcdctl("cp1", "endpoint", "health", "--cluster")
        self.assertEqual(health.returncode, 1)
        self.assertIn(f"{members['cp2']['clientURLs'][0]} is unhealthy: failed to commit "
                      f"proposal: context deadline exceeded", health.stderr)
        k.ok("POST", "/__fake/etcd/members/cp2", {"healthy": None})
        k.wait_for(lambda: self.etcd_ready("cp2"), "etcd-cp2 ready again")
        # the next remove fails, the one after goes through
        k.ok("POST", "/__fake/etcd/fail-removes", {"count": 1})
        out = self.etcdctl("cp1", "member", "remove", members["cp3"]["id"])
        self.assertEqual((out.returncode, out.stderr), (1, "Error: etcdserver: request timed "
                                                           "out\ncommand terminated with exit "
                                                           "code 1\n"))
        out = self.etcdctl("cp1", "member", "remove", members["cp3"]["id"])
        self.assertEqual(out.returncode, 0, out.stderr)
        # a stalled etcd answers late
        k.ok("POST", "/__fake/etcd/stall", {"seconds": 1})
        started = time.monotonic()
        out = self.etcdctl("cp1", "member", "list")
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertGreaterEqual(time.monotonic() - started, 1)
        k.ok("POST", "/__fake/etcd/stall", {"seconds": 0})
        # etcd's --strict-reconfig-check=false: a join does not wait for a healthy quorum
        k.ok("POST", "/__fake/config", {"etcd_strict_reconfig": False})
        k.ok("DELETE", "/__fake/nodes/cp2")
        k.add_node("cp5", role="control-plane")
        k.wait_for(lambda: self.etcd_ready("cp5"), "etcd-cp5 ready")
        self.assertEqual(sorted((m["name"], m["healthy"]) for m in self.etcd()["members"]),
                         [("cp1", True), ("cp2", False), ("cp5", True)])


@unittest.skipUnless(HAVE_MOTO, "moto is not importable (pip install 'moto[server]')")
class NodeSimulatorTest(unittest.TestCase):
    """Nodes follow EC2 instances, as kubelets registering with the API server would."""

    def test_nodes_follow_instances(self):
        port = free_port()
        log = tempfile.TemporaryFile()
        moto_proc = subprocess.Popen([sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p",
                                      str(port)], stdout=log, stderr=subprocess.STDOUT)
        k = None
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    self.assertLess(time.monotonic(), deadline, "moto_server did not start")
                    time.sleep(0.1)
            endpoint = f"http://127.0.0.1:{port}"
            creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
            ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            vpc = ec2.create_vpc(CidrBlock="172.20.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="172.20.32.0/19",
                                       AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
            image = ec2.describe_images()["Images"][0]["ImageId"]

            def run(role, group):
                tags = [{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"},
                        {"Key": f"k8s.io/role/{role}", "Value": "1"},
                        {"Key": "kops.k8s.io/instancegroup", "Value": group}]
                if role == "node":
                    tags.append({"Key": "k8s.io/cluster-autoscaler/node-template/label/team",
                                 "Value": "blue"})
                return ec2.run_instances(
                    ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.medium",
                    SubnetId=subnet, TagSpecifications=[{"ResourceType": "instance",
                                                         "Tags": tags}])["Instances"][0]

            cp = run("control-plane", "control-plane-us-east-1a")
            worker = run("node", "nodes")
            run("bastion", "bastions")
            # an instance of another cluster is not ours
            ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet,
                              TagSpecifications=[{"ResourceType": "instance", "Tags": [
                                  {"Key": "kubernetes.io/cluster/other.example.com",
                                   "Value": "owned"}]}])
            k = FakeKube("--aws-endpoint", endpoint, "--cluster", CLUSTER, "--region",
                         "us-east-1", "--ready-after", "1.5", "--sync-interval", "0.2",
                         env=creds)
            cp_name = cp["PrivateDnsName"]
            nodes = k.wait_for(lambda: len(k.get("/api/v1/nodes")["items"]) == 2 and
                               {n["metadata"]["name"]: n for n in
                                k.get("/api/v1/nodes")["items"]}, "two nodes")
            self.assertEqual(sorted(nodes), sorted([cp_name, worker["PrivateDnsName"]]))
            node = nodes[cp_name]
            labels = node["metadata"]["labels"]
            self.assertEqual(node["spec"]["providerID"],
                             f"aws:///us-east-1a/{cp['InstanceId']}")
            self.assertEqual(labels["kops.k8s.io/instancegroup"], "control-plane-us-east-1a")
            self.assertEqual(labels["node-role.kubernetes.io/control-plane"], "")
            self.assertEqual(labels["kubernetes.io/role"], "master")
            self.assertEqual(labels["topology.kubernetes.io/zone"], "us-east-1a")
            self.assertEqual(labels["node.kubernetes.io/instance-type"], "t3.medium")
            self.assertIn({"key": "node-role.kubernetes.io/control-plane",
                           "effect": "NoSchedule"}, node["spec"]["taints"])
            wlabels = nodes[worker["PrivateDnsName"]]["metadata"]["labels"]
            self.assertEqual((wlabels["kubernetes.io/role"], wlabels["team"]), ("node", "blue"))
            self.assertEqual(self.ready(k, cp_name), "False")  # NotReady at first
            k.wait_for(lambda: self.ready(k, cp_name) == "True", "node Ready", timeout=10)
            static = k.wait_for(
                lambda: [p for p in k.get("/api/v1/namespaces/kube-system/pods")["items"]
                         if p["spec"].get("nodeName") == cp_name and
                         "kubernetes.io/config.mirror" in p["metadata"].get("annotations", {})
                         and any(c["type"] == "Ready" and c["status"] == "True"
                                 for c in p["status"].get("conditions", []))],
                "ready mirror pods")
            self.assertEqual(sorted(p["metadata"]["name"] for p in static),
                             sorted(f"{c}-{cp_name}" for c in ("etcd", "kube-apiserver",
                                                                "kube-controller-manager",
                                                                "kube-scheduler")))
            self.assertEqual(static[0]["metadata"]["ownerReferences"][0]["kind"], "Node")
            self.assertEqual(static[0]["spec"]["priorityClassName"], "system-node-critical")
            cilium = [p for p in k.get("/api/v1/namespaces/kube-system/pods?labelSelector="
                                       "k8s-app%3Dcilium")["items"]]
            self.assertEqual(sorted(p["spec"]["nodeName"] for p in cilium), sorted(nodes))
            # a stopped static pod disappears (sticky)
            k.ok("POST", f"/__fake/static-pods/{cp_name}/kube-scheduler", {"present": False})
            k.wait_for(lambda: k.request("GET", f"/api/v1/namespaces/kube-system/pods/"
                                                f"kube-scheduler-{cp_name}")[0] == 404,
                       "kube-scheduler gone")
            # the control plane runs an etcd member at its private address
            members = k.get("/__fake/etcd")["members"]
            self.assertEqual([(m["name"], m["peerURLs"], m["healthy"]) for m in members],
                             [(cp_name, [f"https://{cp['PrivateIpAddress']}:2380"], True)])
            ec2.terminate_instances(InstanceIds=[cp["InstanceId"]])
            k.wait_for(lambda: k.request("GET", f"/api/v1/nodes/{cp_name}")[0] == 404,
                       "node deleted", timeout=10)
            # its machine gone, the member stays, unreachable
            members = k.get("/__fake/etcd")["members"]
            self.assertEqual([(m["name"], m["healthy"]) for m in members], [(cp_name, False)])
            k.wait_for(lambda: not [p for p in k.get("/api/v1/pods")["items"]
                                    if p["spec"].get("nodeName") == cp_name], "its pods gone")
            self.assertEqual(len(k.get("/api/v1/nodes")["items"]), 1)
            self.assertGreater(k.calls()["total"], 0)
        finally:
            if k is not None:
                k.stop()
            moto_proc.terminate()
            moto_proc.wait(timeout=10)
            log.close()

    @staticmethod
    def ready(k, name):
        node = k.get(f"/api/v1/nodes/{name}")
        return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


if __name__ == "__main__":
    unittest.main()
