#!/usr/bin/env python3
"""Regenerates crates/kopsrs-manifests/schemas/kubernetes.json.gz, the Kubernetes schemas that
`kopsrs manifests check` validates against offline.

Source: the PyPI package kubernetes-validate (willthames/kubernetes-validate), which carries
the JSON Schema of every Kubernetes minor's API (`_definitions.json`, draft 2020-12, made from
the OpenAPI of each release by openapi2jsonschema). For each minor kopsrs supports, the
definitions are kept without their descriptions, deduplicated across minors (most do not
change from one minor to the next), and gzipped:

  {"source": "kubernetes-validate==X",
   "minors": {"1.28": {"io.k8s.api.apps.v1.Deployment": 0, ...}, ...},
   "defs": {"io.k8s.api.apps.v1.Deployment": [variant, ...], ...}}

Usage: python3 scripts/gen_k8s_schemas.py [--wheel PATH]   (downloads the wheel with pip)
"""
import argparse
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import zipfile

VERSION = "1.37.0"
MINORS = range(28, 37)  # kopsrs_api::versions::SUPPORTED_MINORS
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "kopsrs-manifests", "schemas",
                   "kubernetes.json.gz")


def strip(node):
    # A description is a string; a property *named* description (PriorityClass's, a CRD
    # schema's JSONSchemaProps) is a schema, and stays.
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items()
                if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wheel")
    args = ap.parse_args()
    wheel = args.wheel
    if not wheel:
        tmp = tempfile.mkdtemp()
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp,
                        f"kubernetes-validate=={VERSION}"], check=True)
        wheel = os.path.join(tmp, os.listdir(tmp)[0])
    z = zipfile.ZipFile(wheel)
    minors, defs = {}, {}
    for m in MINORS:
        name = f"kubernetes_validate/kubernetes-json-schema/v1.{m}.0-local/_definitions.json"
        doc = json.loads(z.read(name))
        index = {}
        for def_name, schema in sorted(doc["$defs"].items()):
            schema = strip(schema)
            variants = defs.setdefault(def_name, [])
            if schema not in variants:
                variants.append(schema)
            index[def_name] = variants.index(schema)
        minors[f"1.{m}"] = index
    blob = json.dumps({"source": f"kubernetes-validate=={VERSION}", "minors": minors,
                       "defs": defs}, sort_keys=True, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(blob)
    with open(OUT, "wb") as f:
        f.write(buf.getvalue())
    print(f"{OUT}: {len(minors)} minors, {len(defs)} definitions, {len(blob)} bytes of JSON, "
          f"{len(buf.getvalue())} gzipped")


if __name__ == "__main__":
    main()
