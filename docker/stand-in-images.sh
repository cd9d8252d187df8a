#!/usr/bin/env bash
# Print the third-party images docker-compose.yml needs, as .env lines (POSTGRES_IMAGE=...),
# building a stand-in from Debian's packages for each official image no registry serves.
#   - an official image that is here or can be pulled: used as it is (GitHub's runners, any
#     machine with a registry), so the line names the official image;
#   - else a local/standin-* image: PostgreSQL, Redis, Prometheus and Alertmanager from one
#     debootstrap root file system with their Debian packages (each imported with its own
#     entrypoint, sharing one layer), and MinIO's S3 API from moto (in requirements.lock) on the
#     Python base of docker/base-image.sh. Grafana has no Debian package: no stand-in, and no
#     GRAFANA_IMAGE line (the stack then runs without Grafana and says so).
# The stand-ins honour what the compose file asks of the official images (POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB; redis-server's arguments; Prometheus's and Alertmanager's
# flags; MinIO's port 9000 and any access key) and nothing more. Made once per machine.
# Needs a running Docker engine; a stand-in needs root (or sudo) and debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=docker/lib.sh
. docker/lib.sh

compose_default() {  # the official image: the default of ${NAME:-image} in docker-compose.yml
  grep -oE "\\\$\\{$1:-[^}]+\\}" docker-compose.yml | head -n1 | sed -E "s/^\\\$\\{$1:-(.*)\\}$/\\1/"
}

STANDIN_TAG=bookworm
debian_images=(POSTGRES_IMAGE REDIS_IMAGE PROMETHEUS_IMAGE ALERTMANAGER_IMAGE)
needed=()
for name in "${debian_images[@]}"; do
  official=$(compose_default "$name")
  if image_available "$official"; then
    echo "$name=$official"
  else
    needed+=("$name")
  fi
done

if [ "${#needed[@]}" -gt 0 ]; then
  if ! docker image inspect "local/standin-postgres:$STANDIN_TAG" >/dev/null 2>&1; then
    rootfs=$(mktemp -d /tmp/standin-rootfs.XXXXXX)
    trap 'as_root rm -rf "$rootfs"' EXIT
    mirror=$(debian_mirror)
    echo "stand-in-images: debootstrap bookworm from $mirror (once per machine)" >&2
    as_root debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" >&2
    # Packages install their services but never start them inside the chroot.
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$rootfs/usr/sbin/policy-rc.d" >/dev/null
    as_root chmod 755 "$rootfs/usr/sbin/policy-rc.d"
    as_root chroot "$rootfs" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends postgresql redis-server prometheus prometheus-alertmanager >&2
    # The cluster the package made is not the one the entrypoint makes from POSTGRES_* settings.
    as_root rm -rf "$rootfs"/var/lib/postgresql/* "$rootfs"/etc/postgresql/* \
      "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/* "$rootfs/usr/sbin/policy-rc.d"
    as_root install -m 755 docker/stand-in-entrypoint.sh "$rootfs/usr/local/bin/stand-in"
    as_root mkdir -p "$rootfs/prometheus" "$rootfs/alertmanager" "$rootfs/data"
    as_root chroot "$rootfs" chown nobody:nogroup /prometheus /alertmanager
    as_root chroot "$rootfs" chown redis:redis /data
    tarball=$(mktemp /tmp/standin.XXXXXX.tar)
    trap 'as_root rm -rf "$rootfs" "$tarball"' EXIT
    as_root tar -C "$rootfs" -cf "$tarball" .
    # One root file system, four images: the same layer, each with the official image's
    # entrypoint contract.
    docker import -c 'ENTRYPOINT ["/usr/local/bin/stand-in", "postgres"]' \
      -c 'ENV PGDATA=/var/lib/postgresql/data' "$tarball" "local/standin-postgres:$STANDIN_TAG" >&2
    docker import -c 'ENTRYPOINT ["/usr/local/bin/stand-in", "redis"]' -c 'WORKDIR /data' \
      -c 'CMD ["redis-server"]' "$tarball" "local/standin-redis:$STANDIN_TAG" >&2
    docker import -c 'ENTRYPOINT ["/usr/bin/prometheus"]' -c 'USER nobody' \
      -c 'WORKDIR /prometheus' -c 'CMD ["--config.file=/etc/prometheus/prometheus.yml"]' \
      "$tarball" "local/standin-prometheus:$STANDIN_TAG" >&2
    docker import -c 'ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]' -c 'USER nobody' \
      -c 'WORKDIR /alertmanager' -c 'CMD ["--config.file=/etc/alertmanager/alertmanager.yml"]' \
      "$tarball" "local/standin-alertmanager:$STANDIN_TAG" >&2
  fi
  for name in "${needed[@]}"; do
    service=$(echo "${name%_IMAGE}" | tr '[:upper:]' '[:lower:]')
    echo "$name=local/standin-$service:$STANDIN_TAG"
  done
fi

# MinIO's S3 API: moto_server (the version requirements.lock pins) on the Python base.
official=$(compose_default MINIO_IMAGE)
if image_available "$official"; then
  echo "MINIO_IMAGE=$official"
else
  if ! docker image inspect "local/standin-minio:$STANDIN_TAG" >/dev/null 2>&1; then
    base=$(bash docker/base-image.sh)
    DOCKER_BUILDKIT=0 docker build --quiet --build-arg "PYTHON_IMAGE=$base" \
      -f docker/stand-in-s3.Dockerfile -t "local/standin-minio:$STANDIN_TAG" . >&2
  fi
  echo "MINIO_IMAGE=local/standin-minio:$STANDIN_TAG"
fi

official=$(compose_default GRAFANA_IMAGE)
if image_available "$official"; then
  echo "GRAFANA_IMAGE=$official"
else
  echo "stand-in-images: no $official and no Debian package: the stack runs without Grafana" >&2
fi
