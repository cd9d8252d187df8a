#!/bin/sh
# Build /opt/venv in an image from one lock: `make-venv.sh LOCK [--slim]`. Every image's venv
# stage runs this one script. Wheels come from docker/wheels when the host downloaded them
# (`make image`), else from the index. --slim (the LiteRT image): no .pyc files written at install
# and no pip/setuptools left in the venv, for size.
set -eu
lock=$1
slim=${2:-}
python -m venv /opt/venv
flags="--no-deps"
if [ "$slim" = "--slim" ]; then flags="$flags --no-compile"; fi
if ls /tmp/wheels/*.whl >/dev/null 2>&1; then
  # shellcheck disable=SC2086 # word-split flags on purpose
  /opt/venv/bin/pip install $flags --no-index --find-links /tmp/wheels -r "$lock"
else
  # shellcheck disable=SC2086
  /opt/venv/bin/pip install $flags -r "$lock"
fi
if [ "$slim" = "--slim" ]; then
  rm -rf /opt/venv/bin/pip* /opt/venv/lib/python3*/site-packages/pip \
    /opt/venv/lib/python3*/site-packages/pip-* /opt/venv/lib/python3*/site-packages/setuptools*
fi
