#!/usr/bin/env python3
"""Benchmark of `reconcile cluster` after `upgrade cluster` against moto and the fake
Kubernetes API (scripts/bench_roll.py's rig: Nodes Ready 5 s after their instance appears,
evicted pods rescheduled after 1 s, etcd simulated with its strict reconfiguration check).

An HA cluster: three control planes (one per zone) and two node groups of 6 (12 nodes, a
Deployment of 12 pods), created at Kubernetes 1.33.0, then `upgrade cluster --yes` and
`reconcile cluster --yes` with one-second intervals and one validation per step. Ideal: every
round replaced one after another, each round a boot, a drain and a validation:
rounds x (5 s + 1 s + 1 s), where the control planes make 3 rounds and each node group of 6
at maxSurge 1 makes 6. Also the AWS and Kubernetes calls per round: the layer in front of
moto and the fake count every call; the node simulator's own EC2 polling
(DescribeInstances, DescribeInstanceAttribute) cannot be told from kopsrs's and is left out.

Usage: bench_reconcile.py KOPSRS_BINARY
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_roll  # noqa: E402

bench_roll.KOPSRS = sys.argv[1]
NAME = "reconcile.example.com"
ZONES = "eu-west-1a,eu-west-1b"
CONTROL_PLANES, GROUPS, PER_GROUP = 3, 2, 6
SIMULATOR = {"ec2:DescribeInstances", "ec2:DescribeInstanceAttribute"}


def main():
    cluster = bench_roll.Cluster(
        GROUPS * PER_GROUP, name=NAME,
        create=["--zones", ZONES, "--control-plane-count", str(CONTROL_PLANES),
                "--node-count", str(GROUPS * PER_GROUP), "--kubernetes-version", "1.33.0",
                "--yes"])
    try:
        cluster.kopsrs("upgrade", "cluster", NAME, "--yes")
        bench_roll.http(cluster.aws + "/__kopsrs/faults", "POST", {})
        bench_roll.http(cluster.kube + "/__fake/calls", "DELETE")
        started = time.monotonic()
        log = open(os.environ.get("BENCH_ROLL_LOG", os.devnull), "a")
        run = subprocess.Popen(
            [bench_roll.KOPSRS, "reconcile", "cluster", NAME, "--yes",
             "--kubeconfig", cluster.kubeconfig,
             "--node-interval", "1s", "--control-plane-interval", "1s",
             "--post-drain-delay", "0s", "--validate-count", "1",
             "--validation-timeout", "5m"],
            env=cluster.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        steps, terminated = {}, 0
        for line in run.stderr:
            at = time.monotonic() - started
            log.write(f"{at:7.2f} {line}")
            if line.startswith("Step "):
                steps[line.split(":")[0]] = at
            if ": terminating i-" in line:
                terminated += 1
        if run.wait() != 0:
            sys.exit("reconcile failed (BENCH_ROLL_LOG=FILE shows where)")
        wall = time.monotonic() - started
        aws = bench_roll.http(cluster.aws + "/__kopsrs/calls")["by_action"]
        kube = bench_roll.http(cluster.kube + "/__fake/calls")["by_call"]
    finally:
        cluster.close()
    rounds = CONTROL_PLANES + GROUPS * PER_GROUP
    ideal = rounds * (bench_roll.BOOT + bench_roll.RESCHEDULE + bench_roll.INTERVAL)
    kopsrs_aws = {k: v for k, v in aws.items() if k not in SIMULATOR and not k.startswith("s3:")}
    print("| control planes | node groups | rounds | instances replaced | wall time | ideal | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {CONTROL_PLANES} | {GROUPS} x {PER_GROUP} | {rounds} | {terminated} | {wall:.1f} s "
          f"| {ideal:.0f} s | {wall / ideal:.2f}x |")
    print()
    print("Steps started at: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
    print()
    total_aws, total_kube = sum(kopsrs_aws.values()), sum(kube.values())
    print(f"AWS calls (simulator's EC2 polling left out): {total_aws} in all, "
          f"{total_aws / rounds:.1f} per round")
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(kopsrs_aws.items())))
    print(f"Kubernetes calls: {total_kube} in all, {total_kube / rounds:.1f} per round")
    print("  " + ", ".join(f"{k} {v}" for k, v in sorted(kube.items())))


main()
