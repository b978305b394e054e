#!/usr/bin/env python3
"""AWS API calls of `diff cluster NAME -f SPEC` (files + state store + cloud) against moto with
the counting layer (scripts/moto_server.py), for a cluster of 2 and of 50 instance groups,
right after it was applied (state-store reads, S3, left out). Prints a Markdown table for
docs/benchmarks.md.

Usage: bench_diff.py KOPSRS_BINARY
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

KOPSRS = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "099720109477/ubuntu/images/hvm-ssd/ubuntu-xenial-16.04-amd64-server-20170721"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


port = free_port()
endpoint = f"http://127.0.0.1:{port}"
moto = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts/moto_server.py"), "-p", str(port)],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
work = tempfile.mkdtemp()
env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench",
           AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="eu-west-1", AWS_DEFAULT_REGION="eu-west-1",
           KOPS_STATE_STORE="s3://state", KUBECONFIG=os.path.join(work, "kubeconfig"),
           KOPSRS_DOWNLOAD_ADDONS="false")
env.pop("AWS_PROFILE", None)
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        break
    except OSError:
        time.sleep(0.1)


def control(path, body=None):
    request = urllib.request.Request(endpoint + path, data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"{}")


def kopsrs(*args, check=True):
    result = subprocess.run([KOPSRS, *args], env=env, capture_output=True, text=True)
    if check and result.returncode not in (0,):
        sys.exit(f"kopsrs {' '.join(args)} failed:\n{result.stderr}")
    return result


# The state store on moto's S3: `update cluster --yes` refuses one nodes cannot read.
subprocess.run([sys.executable, "-c", "import boto3; boto3.client('route53', endpoint_url='%s').create_hosted_zone(Name='example.com', CallerReference='b'); boto3.client('s3', endpoint_url='%s').create_bucket(Bucket='state', CreateBucketConfiguration={'LocationConstraint': 'eu-west-1'})" % (endpoint, endpoint)], env=env, check=True)
print("| instance groups | AWS API calls of `diff cluster -f` (S3 left out) |")
print("|---:|---|")
for groups in (2, 50):
    name = f"diff{groups}.example.com"
    spec = kopsrs("create", "cluster", "--name", name, "--zones", "eu-west-1a", "--dns-zone", "example.com",
                  "--image", IMAGE, "--dry-run", "-o", "yaml").stdout
    docs = spec.split("\n---\n")
    node = next(d for d in docs if "role: Node" in d)
    extra = [node.replace("name: nodes-eu-west-1a", f"name: nodes-{i}") for i in range(groups - 2)]
    path = os.path.join(work, f"{name}.yaml")
    with open(path, "w") as f:
        f.write("\n---\n".join(docs + extra) + "\n")
    kopsrs("create", "-f", path)
    kopsrs("update", "cluster", name, "--yes")
    control("/__kopsrs/faults", {})
    out = kopsrs("diff", "cluster", name, "-f", path, "--detailed-exitcode", "-o", "json", check=False)
    by_action = control("/__kopsrs/calls")["by_action"]
    # S3 left out: the state store's reads, and the unsigned HEAD that finds its region.
    aws = {k: v for k, v in by_action.items() if not k.startswith(("s3:", "unsigned:HEAD"))}
    differs = json.loads(out.stdout)["differs"] if out.stdout else "?"
    print(f"| {groups} | {sum(aws.values())} (differs: {differs}) |", flush=True)
    print(json.dumps(aws, sort_keys=True), file=sys.stderr)  # the calls, by action
moto.terminate()
