#!/bin/sh
# Start the prediction service: the container's entrypoint, and usable outside a container too.
# Prometheus' multiprocess directory must exist and be in the environment before Python starts.
set -eu
: "${PROMETHEUS_MULTIPROC_DIR:=${TMPDIR:-/tmp}/mnist-prometheus}"
export PROMETHEUS_MULTIPROC_DIR
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
# In the image the script sits beside gunicorn.conf.py (/srv); in the repository, in docker/.
here=$(cd "$(dirname "$0")" && pwd)
if [ -f "$here/gunicorn.conf.py" ]; then cd "$here"; else cd "$here/.."; fi
exec gunicorn -c "${GUNICORN_CONF:-gunicorn.conf.py}" "$@"
