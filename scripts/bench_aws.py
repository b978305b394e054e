#!/usr/bin/env python3
"""Benchmarks of the direct AWS target against moto with the counting fault layer
(scripts/moto_server.py). Prints Markdown tables for docs/benchmarks.md.

1. No-op plan (`update cluster` right after an apply) with 2, 10, 50 and 200 instance
   groups: AWS API calls counted by the layer in front of moto (not by kopsrs), and the
   median wall time with no added latency and with 100 ms per call.
2. Apply of an HA cluster (3 control planes, 3 zones) with 100 ms per call, against the
   critical path of its dependency graph times 100 ms, and against the same path weighted
   by how long each change took.

Usage: bench_aws.py KOPSRS_BINARY
"""

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

KOPSRS = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g bench@kopsrs\n"
RUNS = 5


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
endpoint = f"http://127.0.0.1:{port}"
moto = subprocess.Popen(
    [sys.executable, os.path.join(ROOT, "scripts/moto_server.py"), "-p", str(port)],
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
work = tempfile.mkdtemp()
env = dict(
    os.environ,
    AWS_ENDPOINT_URL=endpoint,
    AWS_ACCESS_KEY_ID="bench",
    AWS_SECRET_ACCESS_KEY="bench",
    AWS_REGION="eu-west-1",
    # On moto's S3, as `update cluster --yes` requires (nodes read it); its calls are left
    # out of the counts below.
    KOPS_STATE_STORE="s3://state",
    KUBECONFIG=os.path.join(work, "kubeconfig"),
)
env.pop("AWS_PROFILE", None)


def control(path, body=None):
    request = urllib.request.Request(endpoint + path, data=body and json.dumps(body).encode())
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"{}")


def aws_calls():
    """The calls the layer counted since its last reset, the state store's (S3) left out."""
    by_action = control("/__kopsrs/calls")["by_action"]
    return sum(v for k, v in by_action.items() if not k.startswith(("s3:", "unsigned:")))


def kopsrs(*args, check=True):
    result = subprocess.run([KOPSRS, *args], env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"kopsrs {' '.join(args)} failed:\n{result.stderr}")
    return result


def spec(name, groups):
    docs = [
        f"""apiVersion: kops.k8s.io/v1alpha2
kind: Cluster
metadata:
  name: {name}
spec:
  kubernetesVersion: v1.34.1
  networkCIDR: 172.20.0.0/16
  networking:
    cilium: {{}}
  subnets:
  - name: eu-west-1a
    zone: eu-west-1a
    type: Public
    cidr: 172.20.32.0/19
  etcdClusters:
  - name: main
    etcdMembers:
    - name: a
      instanceGroup: control-plane-eu-west-1a
  - name: events
    etcdMembers:
    - name: a
      instanceGroup: control-plane-eu-west-1a
""",
        f"""apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: control-plane-eu-west-1a
  labels:
    kops.k8s.io/cluster: {name}
spec:
  role: Master
  image: {IMAGE}
  machineType: t3.medium
  minSize: 1
  maxSize: 1
  subnets:
  - eu-west-1a
""",
    ]
    for i in range(groups - 1):
        docs.append(
            f"""apiVersion: kops.k8s.io/v1alpha2
kind: InstanceGroup
metadata:
  name: pool-{i}
  labels:
    kops.k8s.io/cluster: {name}
spec:
  role: Node
  image: {IMAGE}
  minSize: 0
  maxSize: 1
  subnets:
  - eu-west-1a
"""
        )
    return "---\n".join(docs)


def timed(*args):
    started = time.perf_counter()
    result = kopsrs(*args)
    return time.perf_counter() - started, result


try:
    for _ in range(100):
        try:
            control("/__kopsrs/calls")
            break
        except OSError:
            time.sleep(0.1)
    subprocess.run(
        [sys.executable, "-c",
         "import boto3; boto3.client('s3', endpoint_url='%s').create_bucket(Bucket='state', "
         "CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})" % endpoint],
        env=env, check=True)
    key = os.path.join(work, "id.pub")
    with open(key, "w") as f:
        f.write(KEY)

    print("| instance groups | resources | AWS API calls (no-op plan) | median wall, no latency | median wall, 100 ms per call |")
    print("|---|---|---|---|---|")
    for groups in (2, 10, 50, 200):
        name = f"b{groups}.example.com"
        path = os.path.join(work, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(spec(name, groups))
        kopsrs("create", "-f", path)
        kopsrs("create", "sshpublickey", "--name", name, "-i", key)
        control("/__kopsrs/faults", {})
        kopsrs("update", "cluster", name, "--yes")
        walls = {}
        calls = set()
        for latency in (0, 100):
            times = []
            for _ in range(RUNS):
                control("/__kopsrs/faults", {"latency_ms": latency})
                took, result = timed("update", "cluster", name, "--detailed-exitcode")
                assert "No changes." in result.stdout, result.stdout[-2000:]
                times.append(took)
                calls.add(aws_calls())
            walls[latency] = statistics.median(times)
        resources = kopsrs("update", "cluster", name, "--target", "terraform", "--out", os.path.join(work, name)).stderr
        count = re.search(r"(\d+) resources", resources).group(1)
        print(f"| {groups} | {count} | {'/'.join(str(c) for c in sorted(calls))} | {walls[0]:.2f} s | {walls[100]:.2f} s |")
        control("/__kopsrs/faults", {})
        kopsrs("delete", "cluster", name, "--yes")

    print()
    print("| HA apply, 100 ms per call | changes | AWS API calls | apply wall | critical path in calls × 100 ms | ratio | path weighted by task time | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for concurrency in (10, 20, 50):
        name = f"ha{concurrency}.example.com"
        kopsrs(
            "create", "cluster", "--name", name, "--zones", "eu-west-1a,eu-west-1b,eu-west-1c",
            "--control-plane-count", "3", "--node-count", "3", "--image", IMAGE,
            "--ssh-public-key", key,
        )
        control("/__kopsrs/faults", {"latency_ms": 100})
        _, result = timed("update", "cluster", name, "--yes", "--concurrency", str(concurrency))
        calls = aws_calls()
        m = re.search(
            r"Applied (\d+) change\(s\) to \S+ in ([\d.]+) s .*critical path (\d+) dependent call\(s\), taking ([\d.]+) s",
            result.stderr,
        )
        changes, wall, path, weighted = int(m[1]), float(m[2]), int(m[3]), float(m[4])
        bound = path * 0.1
        print(
            f"| --concurrency {concurrency} | {changes} | {calls} (with discovery) | {wall:.2f} s | {bound:.2f} s | {wall / bound:.2f}x | {weighted:.2f} s | {wall / weighted:.2f}x |"
        )
        control("/__kopsrs/faults", {})
        kopsrs("delete", "cluster", name, "--yes")
finally:
    moto.kill()
    moto.wait()
