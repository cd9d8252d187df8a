# syntax=docker/dockerfile:1
# The prediction service. Build:  docker build -t mnist-api .
#   with the exported model baked in (default, from models/mnist after `make repro`), or
#   docker build --build-arg BAKE_MODEL=false -t mnist-api .  and run with
#   -e MODEL_URI=models:/mnist-classifier@production -e MLFLOW_TRACKING_URI=http://mlflow:5000
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements-serve.lock /tmp/requirements-serve.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-deps -r /tmp/requirements-serve.lock

FROM build AS model
ARG BAKE_MODEL=true
COPY models/ /tmp/models/
# An empty directory when not baking: the model then comes from MODEL_URI at start.
RUN mkdir -p /srv/models && if [ "$BAKE_MODEL" = "true" ]; then cp -r /tmp/models/mnist /srv/models/mnist; fi

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    BIND=0.0.0.0:8000 \
    MODEL_DIR=/srv/models/mnist \
    PREDICTION_LOG=/var/lib/mnist/predictions.db \
    STATE_DIR=/var/lib/mnist \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    PYTHONPATH=/srv
# uid 1000, no login shell, owns only the writable state directory.
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/mnist /tmp/prometheus && chown app:app /var/lib/mnist /tmp/prometheus
COPY --from=build /opt/venv /opt/venv
COPY --from=model /srv/models /srv/models
WORKDIR /srv
COPY --chown=root:root app/ /srv/app/
# The contracts the service shares with the pipeline (no training code comes along).
COPY --chown=root:root src/mnist_contracts/ /srv/mnist_contracts/
COPY --chown=root:root gunicorn.conf.py docker/entrypoint.sh /srv/
USER 1000
EXPOSE 8000
# Liveness with the Python already in the image: no curl or wget needed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=4)"]
ENTRYPOINT ["/srv/entrypoint.sh"]
