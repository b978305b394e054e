#!/usr/bin/env python3
"""A fake EC2 instance metadata service (IMDSv2) for the simulated node boot test.

Serves one instance's identity and its role's credentials (with --credentials, a real
session that moto's IAM enforcement checks), the lifecycle state its group is taking it to
(the file `target-lifecycle-state` of the files directory, when there is one), its identity
document (`dynamic/instance-identity/document`: the account, moto's by default), and the files
of a directory under /files/ (the package repository key, addon manifests). Loopback only.
"""
import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--instance-id", required=True)
parser.add_argument("--ip", required=True)
parser.add_argument("--zone", required=True)
parser.add_argument("--files", required=True)
parser.add_argument("--hostname", help="the instance's EC2 private DNS name")
parser.add_argument("--account", default="123456789012", help="the instance's AWS account")
parser.add_argument("--credentials", help="a JSON file: the role session EC2 would hand out "
                    "(AccessKeyId, SecretAccessKey, Token, RoleName)")
args = parser.parse_args()

if args.credentials:
    with open(args.credentials) as f:
        CREDENTIALS = json.load(f)
else:
    # Distinct values, so a test can prove they never reach a command line.
    CREDENTIALS = {"AccessKeyId": "testing", "SecretAccessKey": "imds-secret-key",
                   "Token": "imds-session-token", "RoleName": "kopsrs-node-role"}
ROLE = CREDENTIALS.pop("RoleName")

TOKEN = "fake-imds-token"
META = {
    "instance-id": args.instance_id,
    "local-ipv4": args.ip,
    "local-hostname": args.hostname or "ip-%s.%s.compute.internal" % (args.ip.replace(".", "-"), args.zone[:-1]),
    "placement/availability-zone": args.zone,
    "placement/region": args.zone[:-1],
    "iam/security-credentials/": ROLE,
    "iam/security-credentials/" + ROLE: json.dumps(dict(
        CREDENTIALS, Code="Success", Expiration="2099-01-01T00:00:00Z")),
}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *_):
        pass

    def reply(self, code, body=b""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
            return self.reply(200, TOKEN.encode())
        self.reply(400)

    def do_GET(self):
        if self.path.startswith("/files/"):
            path = os.path.join(args.files, os.path.basename(self.path))
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    return self.reply(200, f.read())
            return self.reply(404)
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return self.reply(401)  # IMDSv2 only, as kopsrs's launch templates require
        if self.path == "/latest/dynamic/instance-identity/document":
            return self.reply(200, json.dumps({
                "accountId": args.account, "instanceId": args.instance_id,
                "availabilityZone": args.zone, "region": args.zone[:-1],
                "privateIp": args.ip}).encode())
        key = self.path.removeprefix("/latest/meta-data/")
        if key == "autoscaling/target-lifecycle-state":
            # Where the instance's group is taking it (a test writes the file: `Warmed:Stopped`
            # for a warm-pool launch, `InService`); not found outside a group, as on EC2.
            path = os.path.join(args.files, "target-lifecycle-state")
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    return self.reply(200, f.read().strip())
            return self.reply(404)
        if key in META:
            return self.reply(200, META[key].encode())
        self.reply(404)


ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
