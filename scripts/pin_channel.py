#!/usr/bin/env python3
"""Pins the addon channel: downloads every `url:` of channels/stable.yaml and writes its
sha256 on the line after it (replacing an older pin). Needs network access to the URLs, which
the machine kopsrs is developed on lacks; run it where they are reachable, review the diff,
commit. A URL with @ARCH@ gets `sha256ByArch` (amd64 and arm64), as kopsrs reads it.

usage: python3 scripts/pin_channel.py [channels/stable.yaml]
"""
import hashlib
import re
import sys
import urllib.request

path = sys.argv[1] if len(sys.argv) > 1 else "channels/stable.yaml"
lines = open(path).read().splitlines(keepends=True)
out = []
i = 0
while i < len(lines):
    line = lines[i]
    out.append(line)
    i += 1
    m = re.match(r"^(\s*)url: (\S+)\s*$", line)
    if not m:
        continue
    indent, url = m.groups()
    # the old pin is replaced
    if i < len(lines) and re.match(r"^\s*sha256: ", lines[i]):
        i += 1
    elif i < len(lines) and re.match(r"^\s*sha256ByArch:", lines[i]):
        i += 1
        while i < len(lines) and re.match(r"^%s\s+\w+: [0-9a-f]{64}\s*$" % indent, lines[i]):
            i += 1

    def sha256(url):
        with urllib.request.urlopen(url, timeout=60) as response:
            digest = hashlib.sha256(response.read()).hexdigest()
        print(digest + "  " + url, file=sys.stderr)
        return digest

    if "@ARCH@" in url:
        out.append("%ssha256ByArch:\n" % indent)
        for arch in ("amd64", "arm64"):
            out.append("%s  %s: %s\n" % (indent, arch, sha256(url.replace("@ARCH@", arch))))
    else:
        out.append("%ssha256: %s\n" % (indent, sha256(url)))
open(path, "w").write("".join(out))
