#!/bin/sh
# Build /opt/venv in an image from one lock: `make-venv.sh LOCK [--slim]`. Every image's venv
# stage runs this one script. Wheels come from docker/wheels when the host downloaded them
# (`make image`, uv's wheel among them), else from the index through pip. --slim (the LiteRT
# image): no .pyc files written at install and no pip/setuptools left in the venv, for size.
set -eu
lock=$1
slim=${2:-}
python -m venv /opt/venv
flags="--no-deps"
if [ "$slim" = "--slim" ]; then flags="$flags --no-compile"; fi
if ls /tmp/wheels/uv-*.whl >/dev/null 2>&1; then
  # uv installs the same wheels several times faster than pip (reports/bench_tests.json
  # measures the host's venv); it lives outside /opt/venv and leaves no cache in the layer.
  python -m venv /tmp/uv-venv
  /tmp/uv-venv/bin/pip install --quiet --no-index --find-links /tmp/wheels uv
  compile="--compile-bytecode"
  if [ "$slim" = "--slim" ]; then compile=""; fi
  # shellcheck disable=SC2086 # word-split flags on purpose
  /tmp/uv-venv/bin/uv pip install --quiet --no-cache --no-deps --no-index --find-links /tmp/wheels \
    --python /opt/venv/bin/python $compile -r "$lock"
  rm -rf /tmp/uv-venv
elif ls /tmp/wheels/*.whl >/dev/null 2>&1; then
  # shellcheck disable=SC2086
  /opt/venv/bin/pip install $flags --no-index --find-links /tmp/wheels -r "$lock"
else
  # shellcheck disable=SC2086
  /opt/venv/bin/pip install $flags -r "$lock"
fi
if [ "$slim" = "--slim" ]; then
  rm -rf /opt/venv/bin/pip* /opt/venv/lib/python3*/site-packages/pip \
    /opt/venv/lib/python3*/site-packages/pip-* /opt/venv/lib/python3*/site-packages/setuptools*
fi
