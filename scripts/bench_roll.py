#!/usr/bin/env python3
"""Benchmarks of `rolling-update cluster` against moto (scripts/moto_server.py) and the fake
Kubernetes API (scripts/fake_kube.py, Nodes Ready 5 s after their instance appears, evicted
pods rescheduled after 1 s). Prints Markdown tables for docs/benchmarks.md.

1. Wall time of rolling one node group of 3, 12 and 48 nodes (`--force`, a Deployment with one
   pod per node, no budget) at maxSurge 1, 3 and 25%, against the ideal
   rounds x (boot + drain + validation) = rounds x (5 s + 1 s + the 1 s node interval).
2. API calls of one `validate cluster` pass at each size (after the rolls): AWS calls counted by the layer in
   front of moto (state-store reads left out), Kubernetes calls counted by the fake.

Usage: bench_roll.py KOPSRS_BINARY [NODES...]
"""

import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

KOPSRS = sys.argv[1] if __name__ == "__main__" else None  # set by an importer otherwise
SIZES = [int(n) for n in sys.argv[2:]] or [3, 12, 48]
SURGES = os.environ.get("BENCH_ROLL_SURGES", "1,3,25%").split(",")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721"
BOOT, RESCHEDULE, INTERVAL = 5.0, 1.0, 1.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port):
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on {port}")


def http(url, method="GET", body=None):
    request = urllib.request.Request(url, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"{}")


class Cluster:
    def __init__(self, nodes, create=None, name=None):
        """A cluster of `nodes` workers in one group (or made by the `create` flags) applied
        to moto, its Nodes in the fake, a Deployment of `nodes` pods, validated."""
        self.name = name or f"bench{nodes}.example.com"
        self.work = tempfile.mkdtemp()
        port = free_port()
        self.aws = f"http://127.0.0.1:{port}"
        self.procs = [subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts/moto_server.py"), "-p", str(port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        wait_port(port)
        self.env = dict(os.environ, AWS_ENDPOINT_URL=self.aws, AWS_ACCESS_KEY_ID="bench",
                        AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="eu-west-1",
                        AWS_DEFAULT_REGION="eu-west-1",
                        # On S3 (moto's), as `create cluster --yes` requires: nodes read it.
                        KOPS_STATE_STORE="s3://state",
                        KUBECONFIG=os.path.join(self.work, "exported"))
        self.env.pop("AWS_PROFILE", None)
        subprocess.run([sys.executable, "-c",
                        "import boto3; boto3.client('route53', endpoint_url='%s').create_hosted_zone("
                        "Name='example.com', CallerReference='b'); boto3.client('s3', endpoint_url='%s')"
                        ".create_bucket(Bucket='state', CreateBucketConfiguration="
                        "{'LocationConstraint': 'eu-west-1'})" % (self.aws, self.aws)],
                       env=self.env, check=True)
        create = create or ["--zones", "eu-west-1a", "--node-count", str(nodes), "--yes"]
        self.kopsrs("create", "cluster", "--name", self.name, "--dns-zone", "example.com",
                    "--image", IMAGE, *create)
        kport = free_port()
        self.kube = f"http://127.0.0.1:{kport}"
        self.procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "scripts/fake_kube.py"), "-p", str(kport),
             "--cluster", self.name, "--aws-endpoint", self.aws, "--region", "eu-west-1",
             "--ready-after", str(BOOT), "--reschedule-after", str(RESCHEDULE),
             "--grace", "0.2", "--sync-interval", os.environ.get("BENCH_ROLL_SYNC", "0.5")],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(kport)
        self.kubeconfig = os.path.join(self.work, "kubeconfig")
        with open(self.kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: {self.name}
  cluster: {{server: "{self.kube}"}}
contexts:
- name: {self.name}
  context: {{cluster: {self.name}, user: {self.name}}}
current-context: {self.name}
users:
- name: {self.name}
  user: {{}}
""")
        http(self.kube + "/apis/apps/v1/namespaces/default/deployments", "POST", {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": nodes, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}})
        self.validate("--wait", "120s", "--interval", "1s")

    def kopsrs(self, *args, check=True):
        result = subprocess.run([KOPSRS, *args], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            sys.exit(f"kopsrs {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def validate(self, *extra):
        return self.kopsrs("validate", "cluster", self.name, "--kubeconfig", self.kubeconfig,
                           "-o", "json", *extra)

    def roll(self, surge):
        self.kopsrs("edit", "ig", "nodes-eu-west-1a", "--name", self.name,
                    "--set", f"spec.rollingUpdate.maxSurge={surge}")
        started = time.monotonic()
        # The progress lines, each with the seconds since the start, for a look at where the
        # time goes (BENCH_ROLL_LOG=FILE).
        log = open(os.environ.get("BENCH_ROLL_LOG", os.devnull), "a")
        roll = subprocess.Popen(
            [KOPSRS, "rolling-update", "cluster", self.name, "--yes", "--force",
             "--instance-group-roles", "node", "--kubeconfig", self.kubeconfig,
             "--node-interval", f"{INTERVAL:g}s", "--post-drain-delay", "0s",
             "--validate-count", "1", "--validation-timeout", "5m"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in roll.stderr:
            log.write(f"{time.monotonic() - started:7.2f} {line}")
        if roll.wait() != 0:
            sys.exit(f"rolling-update of {self.name} at maxSurge {surge} failed")
        log.close()
        return time.monotonic() - started

    def pass_calls(self):
        # The node simulator polls EC2 too: stopped first (after one last sync), so that the
        # layer counts kopsrs's calls only.
        http(self.kube + "/__fake/config", "POST", {"sync_interval": 3600})
        time.sleep(2)
        http(self.aws + "/__kopsrs/faults", "POST", {})
        http(self.kube + "/__fake/calls", "DELETE")
        self.validate()
        aws = http(self.aws + "/__kopsrs/calls")["by_action"]
        aws = {k: v for k, v in aws.items() if not k.startswith("s3:")}
        kube = http(self.kube + "/__fake/calls")["by_call"]
        return aws, kube

    def close(self):
        for p in self.procs:
            p.terminate()
            p.wait()


def rounds(nodes, surge):
    per = math.ceil(nodes * int(surge[:-1]) / 100) if surge.endswith("%") else int(surge)
    return math.ceil(nodes / max(per, 1))


def main():
    rows, calls = [], []
    for nodes in SIZES:
        cluster = Cluster(nodes)
        try:
            for surge in SURGES:
                wall = cluster.roll(surge)
                n = rounds(nodes, surge)
                ideal = n * (BOOT + RESCHEDULE + INTERVAL)
                rows.append((nodes, surge, n, wall, ideal))
                print(f"{nodes} nodes, maxSurge {surge}: {wall:.1f} s ({n} rounds, ideal "
                      f"{ideal:.0f} s)", file=sys.stderr)
            calls.append((nodes, *cluster.pass_calls()))
        finally:
            cluster.close()
    print("| nodes | maxSurge | rounds | wall time | ideal | ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for nodes, surge, n, wall, ideal in rows:
        print(f"| {nodes} | {surge} | {n} | {wall:.1f} s | {ideal:.0f} s | {wall / ideal:.2f}x |")
    print()
    print("| nodes | AWS calls per pass | Kubernetes calls per pass |")
    print("|---:|---|---|")
    for nodes, aws, kube in calls:
        fmt = lambda d: ", ".join(f"{k} {v}" for k, v in sorted(d.items()))
        print(f"| {nodes} | {sum(aws.values())}: {fmt(aws)} | {sum(kube.values())}: {fmt(kube)} |")


if __name__ == "__main__":
    main()
