#!/usr/bin/env python3
"""Benchmarks of `kopsrs jsonnet` and `kopsrs manifests` (docs/benchmarks.md, "Manifests").

1. Render and check N = 10, 100, 1000 services (a Deployment, a Service and a ConfigMap each)
   built with the example's kube-style library (examples/manifests/lib/kube.libsonnet):
   wall time (best of --runs) and peak memory (max RSS) of
     - kopsrs jsonnet FILE                (render to JSON)
     - kopsrs manifests tree FILE --out   (render, find the objects, write the tree)
     - kopsrs manifests check FILE        (render twice, check every object against 1.34)
     - the C++ jsonnet on the same file (PyPI wheel, through scripts/cpp_jsonnet.py: its
       figures include a Python start of about 30 ms, given separately)
     - rsjsonnet and jrsonnet's own command-line programs, when --rsjsonnet/--jrsonnet name
       them (to compare the two Rust evaluators on the same input).
2. diff and apply of 1000 objects (333 x a ConfigMap, a ServiceAccount and a Service, and
   their namespace) against scripts/fake_kube.py: the API calls of a first apply, a second
   apply (nothing changed) and a diff (nothing changed), by call. Discovery (/api, /apis and
   one request per group version) is not counted by the fake.

Usage: python3 scripts/bench_manifests.py KOPSRS [--runs 3] [--rsjsonnet BIN] [--jrsonnet BIN]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "examples", "manifests", "lib")

SERVICES = """
local kube = import 'kube.libsonnet';
local n = std.parseInt(std.extVar('n'));
local service(i) = {
  local name = 'svc-%04d' % i,
  config: kube.ConfigMap(name, 'bench') { data: { INDEX: std.toString(i), NAME: name } },
  deployment: kube.Deployment(name, 'bench') {
    spec+: { replicas: 1 + i % 3 },
    containers_:: {
      app: kube.Container('app') {
        image: 'registry.example.com/bench/%s:1.0.%d' % [name, i],
        env_:: { NAME: name, PORT: '8080' },
        ports_:: { http: 8080 },
        resources: { requests: { cpu: '50m', memory: '64Mi' } },
      },
    },
  },
  service: kube.Service(name, 'bench', self.deployment),
};
{ namespace: kube.Namespace('bench') } + { ['svc%04d' % i]: service(i) for i in std.range(1, n) }
"""


def measure(cmd, runs, env=None):
    """Best wall time of `runs` runs, and the peak RSS (KiB) of the child."""
    best, peak = None, 0
    for _ in range(runs):
        wrapped = ["/usr/bin/time", "-f", "%M"] + cmd
        start = time.perf_counter()
        p = subprocess.run(wrapped, capture_output=True, env=env)
        elapsed = time.perf_counter() - start
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{p.stderr.decode()[-2000:]}")
        rss = int(p.stderr.decode().strip().splitlines()[-1])
        best = elapsed if best is None else min(best, elapsed)
        peak = max(peak, rss)
    return best, peak


# For the API counts: three kinds without controllers in the fake (its Python deployment,
# replica set and scheduler loops make 333 Deployments and their pods take many minutes there,
# which measures the fake, not kopsrs).
API_OBJECTS = """
local kube = import 'kube.libsonnet';
local n = std.parseInt(std.extVar('n'));
{ namespace: kube.Namespace('bench') } + {
  ['svc%04d' % i]: {
    local name = 'svc-%04d' % i,
    config: kube.ConfigMap(name, 'bench') { data: { INDEX: std.toString(i) } },
    account: kube.ServiceAccount(name, 'bench'),
    service: kube.Object('v1', 'Service', name, 'bench') {
      spec: { selector: { app: name }, ports: [{ name: 'http', port: 80 }] },
    },
  }
  for i in std.range(1, n)
}
"""


def render_and_check(kopsrs, runs, rsjsonnet, jrsonnet):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "services.jsonnet")
        with open(src, "w") as f:
            f.write(SERVICES)
        python_start, _ = measure([sys.executable, "-c", "import _jsonnet"], runs)
        for n in (10, 100, 1000):
            common = ["-J", LIB, "-V", f"n={n}", src]
            out = os.path.join(tmp, f"tree-{n}")
            row = {"n": n, "objects": 3 * n + 1}
            row["kopsrs jsonnet"] = measure([kopsrs, "jsonnet"] + common, runs)
            row["kopsrs manifests tree"] = measure(
                [kopsrs, "manifests", "tree"] + common + ["--out", out], runs)
            row["kopsrs manifests check"] = measure(
                [kopsrs, "manifests", "check", "--kubernetes-version", "1.34"] + common, runs)
            row["C++ jsonnet"] = measure(
                [sys.executable, os.path.join(ROOT, "scripts", "cpp_jsonnet.py")] + common, runs)
            if rsjsonnet:
                row["rsjsonnet"] = measure([rsjsonnet] + common, runs)
            if jrsonnet:
                row["jrsonnet"] = measure([jrsonnet] + common, runs)
            # Same JSON from kopsrs and C++.
            a = subprocess.run([kopsrs, "jsonnet"] + common, capture_output=True).stdout
            b = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "cpp_jsonnet.py")]
                               + common, capture_output=True).stdout
            row["identical to C++"] = a == b
            rows.append(row)
    return rows, python_start


def api(url, path, method="GET"):
    req = urllib.request.Request(url + path, method=method)
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


def diff_and_apply(kopsrs):
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        fake = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "fake_kube.py"),
                                 "-p", "0", "--port-file", port_file, "--cluster", "bench"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(200):
                if os.path.exists(port_file) and open(port_file).read().strip():
                    break
                time.sleep(0.05)
            url = "http://127.0.0.1:" + open(port_file).read().strip()
            kubeconfig = os.path.join(tmp, "kubeconfig")
            with open(kubeconfig, "w") as f:
                f.write(f"apiVersion: v1\nkind: Config\nclusters:\n- name: bench\n  cluster:\n"
                        f"    server: {url}\ncontexts:\n- name: bench\n  context:\n    cluster: bench\n"
                        f"    user: bench\ncurrent-context: bench\nusers:\n- name: bench\n  user: {{}}\n")
            src = os.path.join(tmp, "objects.jsonnet")
            with open(src, "w") as f:
                f.write(API_OBJECTS)
            base = ["-J", LIB, "-V", "n=333", src, "--name", "bench", "--kubeconfig", kubeconfig]
            results = []
            steps = [
                ("apply (all new)", ["apply"]),
                ("apply again (nothing changed)", ["apply"]),
                ("diff (nothing changed)", ["diff"]),
            ]
            for label, verb in steps:
                api(url, "/__fake/calls", "DELETE")
                start = time.perf_counter()
                p = subprocess.run([kopsrs, "manifests"] + verb + base, capture_output=True)
                elapsed = time.perf_counter() - start
                if p.returncode != 0:
                    sys.exit(f"{label} failed: {p.stderr.decode()[-2000:]}")
                calls = api(url, "/__fake/calls")
                results.append((label, elapsed, calls["total"], calls["by_call"]))
            return results
        finally:
            fake.kill()
            fake.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kopsrs")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rsjsonnet")
    ap.add_argument("--jrsonnet")
    args = ap.parse_args()
    rows, python_start = render_and_check(args.kopsrs, args.runs, args.rsjsonnet, args.jrsonnet)
    tools = [k for k in rows[0] if k not in ("n", "objects", "identical to C++")]
    print(f"Render and check (best of {args.runs}; wall time, peak RSS):\n")
    print("| services (objects) | " + " | ".join(tools) + " | same bytes as C++ |")
    print("|---" * (len(tools) + 2) + "|")
    for r in rows:
        cells = [f"{r[t][0] * 1000:.0f} ms, {r[t][1] / 1024:.0f} MiB" for t in tools]
        print(f"| {r['n']} ({r['objects']}) | " + " | ".join(cells)
              + f" | {'yes' if r['identical to C++'] else 'NO'} |")
    print(f"\n(The C++ figures include starting Python and loading the wheel: "
          f"{python_start * 1000:.0f} ms.)\n")
    print("API calls against scripts/fake_kube.py, 1000 objects:\n")
    print("| step | wall time | API calls | by call |")
    print("|---|---|---|---|")
    for label, elapsed, total, by_call in diff_and_apply(args.kopsrs):
        detail = ", ".join(f"{k}: {v}" for k, v in sorted(by_call.items()))
        print(f"| {label} | {elapsed:.1f} s | {total} | {detail} |")


if __name__ == "__main__":
    main()
