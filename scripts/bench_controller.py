#!/usr/bin/env python3
"""Benchmark of `kopsrs controller run` against moto and the fake Kubernetes API
(scripts/fake_kube.py as the management cluster).

For each fleet size N: N clusters (one control plane, one node group each, in two
namespaces) applied as custom resources with kubectl, then:
  * the time until every Cluster is Ready (the first apply of all of them);
  * the AWS calls of one resync cycle of the whole fleet (--resync R: every cluster planned
    again, nothing to change), after one cycle to settle, counted by the layer in front of
    moto, and the plans the controller made in it (its /metrics);
  * the time from `kubectl patch` of one group's maxSize to the auto scaling group having it
    in moto (quiet period 0 s), over several edits: p50 and p99;
  * the controller's peak RSS (VmHWM).

Usage: bench_controller.py KOPSRS_BINARY N [N...]
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_roll  # noqa: E402

KOPSRS = sys.argv[1]
SIZES = [int(n) for n in sys.argv[2:]] or [1, 10]
RESYNC = 20
# Fleets larger than this are made by the CLI and adopted (BENCH_ADOPT_ABOVE).
ADOPT_ABOVE = int(os.environ.get("BENCH_ADOPT_ABOVE", "30"))
IMAGE = bench_roll.IMAGE


def run(args, env, stdin=None):
    out = subprocess.run(args, env=env, input=stdin, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{args}: {out.stderr}")
    return out.stdout


def python(env, code):
    return run([sys.executable, "-c", "import boto3\n" + code], env)


def fleet(n):
    work = tempfile.mkdtemp()
    port = bench_roll.free_port()
    aws = f"http://127.0.0.1:{port}"
    procs = [subprocess.Popen(
        [sys.executable, os.path.join(bench_roll.ROOT, "scripts/moto_server.py"), "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    bench_roll.wait_port(port)
    env = dict(os.environ, AWS_ENDPOINT_URL=aws, AWS_ACCESS_KEY_ID="bench",
               AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="eu-west-1",
               AWS_DEFAULT_REGION="eu-west-1", KOPS_STATE_STORE="s3://state/clusters",
               KOPSRS_DOWNLOAD_ADDONS="false", XDG_CONFIG_HOME=work)
    env.pop("AWS_PROFILE", None)
    python(env, f"boto3.client('route53', endpoint_url='{aws}').create_hosted_zone(Name='example.com', CallerReference='b')\n"
                f"boto3.client('s3', endpoint_url='{aws}').create_bucket(Bucket='state', CreateBucketConfiguration={{'LocationConstraint': 'eu-west-1'}})")
    kport = bench_roll.free_port()
    procs.append(subprocess.Popen(
        [sys.executable, os.path.join(bench_roll.ROOT, "scripts/fake_kube.py"), "-p", str(kport),
         "--cluster", "management"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    bench_roll.wait_port(kport)
    kubeconfig = os.path.join(work, "kubeconfig")
    with open(kubeconfig, "w") as f:
        f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: m
  cluster: {{server: "http://127.0.0.1:{kport}"}}
contexts:
- name: m
  context: {{cluster: m, user: m}}
current-context: m
users:
- name: m
  user: {{}}
""")
    kenv = dict(env, KUBECONFIG=kubeconfig)
    run(["kubectl", "apply", "-f", "-"], kenv, run([KOPSRS, "controller", "install"], env))
    run(["kubectl", "wait", "--for=condition=Established", "crd/clusters.kops.k8s.io",
         "crd/instancegroups.kops.k8s.io", "--timeout=20s"], kenv)
    docs = []
    for ns in ("team-a", "team-b"):
        docs.append(yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    names = [f"c{i}.example.com" for i in range(n)]
    if n > ADOPT_ABOVE:
        # Made by the CLI, one after another, and adopted: the controller's first apply of
        # this many clusters at once is more than this machine's moto carries.
        run(["kubectl", "apply", "-f", "-"], kenv, "---\n".join(docs))
        for i, name in enumerate(names):
            ns = ("team-a", "team-b")[i % 2]
            run([KOPSRS, "create", "cluster", "--name", name, "--zones", "eu-west-1a",
                 "--dns-zone", "example.com", "--image", IMAGE], env)
            run([KOPSRS, "update", "cluster", "--name", name, "--yes"], env)
            run([KOPSRS, "controller", "adopt", name, "-n", ns, "--kubeconfig", kubeconfig], env)
            print(f"made and adopted {i + 1} of {n}", file=sys.stderr, flush=True)
        for ns in ("team-a", "team-b"):
            run(["kubectl", "annotate", "clusters.kops.k8s.io", "--all", "-n", ns,
                 "kopsrs.io/quiet-period=0s"], kenv)
        return work, aws, env, kenv, procs, names
    for i, name in enumerate(names):
        ns = ("team-a", "team-b")[i % 2]
        spec = run([KOPSRS, "create", "cluster", "--name", name, "--zones", "eu-west-1a",
                    "--dns-zone", "example.com", "--image", IMAGE, "--dry-run", "-o", "yaml"], env)
        for d in yaml.safe_load_all(spec):
            if not d:
                continue
            d["metadata"].pop("creationTimestamp", None)
            d["metadata"]["namespace"] = ns
            if d["kind"] == "Cluster":
                d["spec"].pop("configBase", None)
                d["metadata"]["annotations"] = {"kopsrs.io/quiet-period": "0s"}
            else:
                group = d["metadata"]["name"]
                d["metadata"]["name"] = f"c{i}-{group}"
                d["metadata"]["annotations"] = {"kopsrs.io/instance-group": group}
            docs.append(yaml.safe_dump(d))
    run(["kubectl", "apply", "-f", "-"], kenv, "---\n".join(docs))
    return work, aws, env, kenv, procs, names


def ready_count(kenv):
    out = json.loads(run(["kubectl", "get", "clusters.kops.k8s.io", "-A", "-o", "json"], kenv))
    return sum(1 for c in out["items"]
               if any(x["type"] == "Ready" and x["status"] == "True"
                      for x in (c.get("status") or {}).get("conditions") or []))


def plans(port):
    """Plans the controller made so far (its reconciles that planned, applied or not)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("kopsrs_controller_reconciles_total{") and (
                'outcome="applied"' in line or 'outcome="planned"' in line):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(n):
    work, aws, env, kenv, procs, names = fleet(n)
    try:
        bench_roll.http(aws + "/__kopsrs/faults", "POST", {})
        started = time.monotonic()
        mport = bench_roll.free_port()
        controller = subprocess.Popen(
            [KOPSRS, "controller", "run", "--lease-name=", "--workers", "4",
             "--metrics-address", f"127.0.0.1:{mport}",
             "--resync", f"{RESYNC}s", "--shared-reads", f"{RESYNC - 5}s", "--kubeconfig", kenv["KUBECONFIG"]],
            env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
        procs.append(controller)
        while ready_count(kenv) < n:
            if time.monotonic() - started > 120 + 20 * n:
                raise SystemExit(f"not Ready after {time.monotonic() - started:.0f} s")
            time.sleep(0.5)
        first_apply = time.monotonic() - started
        # One resync cycle to settle (the listeners the first applies made are read from
        # their load balancers once), then one measured: every cluster planned again,
        # nothing to change.
        time.sleep(RESYNC + 2)
        bench_roll.http(aws + "/__kopsrs/faults", "POST", {})
        plans_before = plans(mport)
        time.sleep(RESYNC + 5)
        counted = bench_roll.http(aws + "/__kopsrs/calls")["by_action"]
        planned = plans(mport) - plans_before
        # The state store's bucket: signed S3 calls, and the unsigned HEAD that finds its region.
        store = sum(v for k, v in counted.items() if k.startswith("s3:") or k.endswith(" /state"))
        calls = (sum(counted.values()) - store, store)
        print(f"{n} clusters, one resync cycle ({planned} plans): {json.dumps(counted, sort_keys=True)}",
              file=sys.stderr, flush=True)
        # Edit to applied.
        latencies = []
        # An adopted group has its own name (the first cluster of the namespace).
        ns, group = "team-a", "nodes-eu-west-1a" if n > ADOPT_ABOVE else "c0-nodes-eu-west-1a"
        for size in range(3, 3 + 7):
            t0 = time.monotonic()
            run(["kubectl", "patch", "ig", group, "-n", ns, "--type", "merge",
                 "-p", json.dumps({"spec": {"maxSize": size}})], kenv)
            while True:
                got = python(env, f"print(boto3.client('autoscaling', endpoint_url='{aws}').describe_auto_scaling_groups(AutoScalingGroupNames=['nodes-eu-west-1a.c0.example.com'])['AutoScalingGroups'][0]['MaxSize'])").strip()
                if got == str(size):
                    break
                if time.monotonic() - t0 > 120:
                    raise SystemExit("edit never applied")
                time.sleep(0.1)
            latencies.append(time.monotonic() - t0)
        latencies.sort()
        rss = peak_rss_mb(controller.pid)
        return first_apply, calls, planned, latencies, rss
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait()


def main():
    print("| clusters | all Ready | plans in the window | cloud API calls in the window | per plan | state-store (S3) calls per plan | edit to applied p50 / max (7 edits) | controller peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for n in SIZES:
        first, calls, planned, lat, rss = measure(n)
        p50 = lat[len(lat) // 2]
        cloud, store = calls
        how = "adopted" if n > ADOPT_ABOVE else "first apply"
        per = max(planned, 1)
        print(f"| {n} | {first:.1f} s ({how}) | {planned} | {cloud} | {cloud / per:.1f} | {store / per:.1f} | {p50:.1f} s / {lat[-1]:.1f} s | {rss:.0f} MB |",
              flush=True)


if __name__ == "__main__":
    main()
