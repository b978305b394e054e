"""scripts/pin_channel.py against files served on loopback: every URL gets its sha256, a URL
with @ARCH@ one per architecture, and a second run replaces the pins instead of adding more."""
import hashlib
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import unittest
from pathlib import Path

import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "pin_channel.py"


class PinChannelTest(unittest.TestCase):
    def test_pins_every_url_and_replaces_old_pins(self):
        with tempfile.TemporaryDirectory() as tmp:
            files = {"m.yaml": b"manifest", "helm-amd64.tgz": b"helm amd64",
                     "helm-arm64.tgz": b"helm arm64"}
            for name, body in files.items():
                Path(tmp, name).write_bytes(body)
            handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=tmp)
            server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
            server.RequestHandlerClass.log_message = lambda *a: None
            threading.Thread(target=server.serve_forever, daemon=True).start()
            url = "http://127.0.0.1:%d" % server.server_address[1]
            channel = Path(tmp, "channel.yaml")
            channel.write_text(
                "addons:\n"
                "- name: helm\n  url: %s/helm-@ARCH@.tgz\n"
                "- name: m\n  url: %s/m.yaml\n  sha256: %s\n" % (url, url, "0" * 64))
            try:
                for _ in range(2):
                    subprocess.run([sys.executable, str(SCRIPT), str(channel)], check=True,
                                   capture_output=True)
            finally:
                server.shutdown()
            addons = {a["name"]: a for a in yaml.safe_load(channel.read_text())["addons"]}
            sha = lambda name: hashlib.sha256(files[name]).hexdigest()
            self.assertEqual(addons["m"]["sha256"], sha("m.yaml"))
            self.assertEqual(addons["helm"]["sha256ByArch"],
                             {"amd64": sha("helm-amd64.tgz"), "arm64": sha("helm-arm64.tgz")})
            self.assertNotIn("sha256", addons["helm"])
            self.assertEqual(channel.read_text().count("sha256"), 2)


if __name__ == "__main__":
    unittest.main()
