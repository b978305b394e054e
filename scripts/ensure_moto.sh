#!/usr/bin/env bash
# Installs moto[server] (the local AWS API that tests and the demo run against) when missing.
if ! python3 -c 'import moto.server, boto3' >/dev/null 2>&1; then
  echo "installing moto[server] (local AWS API)" >&2
  python3 -m pip install --quiet 'moto[server]'
fi
