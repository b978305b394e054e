#!/usr/bin/env bash
# Installs Debian's docker-registry (the Distribution registry, 2.8) when missing: the tests
# of crates/kopsrs-registry start two of them on 127.0.0.1. Prints nothing when it is there.
set -euo pipefail
if [ ! -x /usr/bin/docker-registry ]; then
  echo "installing docker-registry (the local OCI registries of the image copy tests)" >&2
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  # Installing starts a system service on :5000 on some systems; the tests start their own
  # registries on free ports and do not use it.
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null 2>&1 ||
    { $sudo_cmd apt-get update -q >/dev/null &&
      $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry >/dev/null; }
fi
