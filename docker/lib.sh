# Shared by docker/base-image.sh and docker/stand-in-images.sh (sourced, not run).

# Root runs system commands directly; anyone else through sudo (non-interactive: fail, never wait).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

# The Debian mirror apt already uses (no image registry, but the package mirror is reachable).
debian_mirror() {
  local mirror
  mirror=$(grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list \
    /etc/apt/sources.list.d/ 2>/dev/null | grep -oE 'https?://[^ ]+' | head -n1 || true)
  echo "${mirror:-http://deb.debian.org/debian}"
}

# Whether IMAGE is here or can be pulled (a registry answers).
image_available() {
  docker image inspect "$1" >/dev/null 2>&1 || timeout 120 docker pull -q "$1" >/dev/null 2>&1
}
