#!/usr/bin/env bash
# Print the tag of a Python 3.11 base image for the Dockerfile's PYTHON_IMAGE, making it if needed.
#   1. local/python:3.11-bookworm already present: reuse it (made once per machine).
#   2. the official image can be pulled (GitHub's runners, any machine with a registry): use it.
#   3. no registry reachable: build one from Debian packages (debootstrap, then docker import).
# Needs a running Docker engine; step 3 needs root (or sudo) and debootstrap.
set -euo pipefail

LOCAL_TAG=local/python:3.11-bookworm
OFFICIAL=python:3.11.7-slim-bookworm

# shellcheck source=docker/lib.sh
. "$(dirname "$0")/lib.sh"

if docker image inspect "$LOCAL_TAG" >/dev/null 2>&1; then
  echo "$LOCAL_TAG"; exit 0
fi
if image_available "$OFFICIAL"; then
  echo "$OFFICIAL"; exit 0
fi

mirror=$(debian_mirror)
rootfs=$(mktemp -d /tmp/python-rootfs.XXXXXX)
trap 'as_root rm -rf "$rootfs"' EXIT
echo "base-image: debootstrap bookworm from $mirror (once per machine)" >&2
as_root debootstrap --variant=minbase \
  --include=python3.11,python3.11-venv,python3-venv,python-is-python3,ca-certificates \
  bookworm "$rootfs" "$mirror" >&2
# pip inside a build needs the host's CA bundle (a proxy's CA, where there is one).
as_root cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
as_root rm -rf "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/*
as_root tar -C "$rootfs" -c . | docker import -c 'CMD ["python3"]' - "$LOCAL_TAG" >&2
echo "$LOCAL_TAG"
