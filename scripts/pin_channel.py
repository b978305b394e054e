#!/usr/bin/env python3
"""Pins the addon channel: downloads every `url:` of channels/stable.yaml and writes its
sha256 on the line after it (replacing an older pin). Needs network access to the URLs, which
the machine kopsrs is developed on lacks; run it where they are reachable, review the diff,
commit. URLs with @ARCH@ are left unpinned (one hash cannot cover every architecture).

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
    if i < len(lines) and re.match(r"^\s*sha256: ", lines[i]):
        i += 1  # the old pin is replaced
    if "@ARCH@" in url:
        print("unpinned (per architecture): " + url, file=sys.stderr)
        continue
    with urllib.request.urlopen(url, timeout=60) as response:
        digest = hashlib.sha256(response.read()).hexdigest()
    print(digest + "  " + url, file=sys.stderr)
    out.append("%ssha256: %s\n" % (indent, digest))
open(path, "w").write("".join(out))
