# The prediction service. Build:  make image  (base image, wheelhouse, then the build below), or
#   docker build -t mnist-api .
#   with the exported model baked in (default, from models/mnist after `make repro`), or
#   docker build --build-arg BAKE_MODEL=false -t mnist-api .  and run with
#   -e MODEL_URI=models:/mnist-classifier@production -e MLFLOW_TRACKING_URI=http://mlflow:5000
# The slim image (TFLite through LiteRT, no TensorFlow): docker build --target slim -t mnist-api:slim .
# No `# syntax=` line: it makes BuildKit pull a frontend image, and the classic builder
# (DOCKER_BUILDKIT=0) builds this file as it is where no registry is reachable.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# One venv script for every image (docker/make-venv.sh): only the lock differs.
FROM ${PYTHON_IMAGE} AS venv-base
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# docker/wheels: the locked wheels downloaded on the host (`make image`), so a rebuild does not
# fetch 400 MB again; empty (only .gitkeep) means pip fetches them from the index.
COPY docker/wheels/ /tmp/wheels/
COPY docker/make-venv.sh /tmp/make-venv.sh

FROM venv-base AS build
COPY requirements-serve.lock /tmp/requirements.lock
RUN sh /tmp/make-venv.sh /tmp/requirements.lock

# The slim image's venv: LiteRT, no TensorFlow, no SciPy (requirements-slim.lock).
FROM venv-base AS slim-build
COPY requirements-slim.lock /tmp/requirements.lock
RUN sh /tmp/make-venv.sh /tmp/requirements.lock --slim

FROM venv-base AS model
ARG BAKE_MODEL=true
COPY models/ /tmp/models/
COPY reports/metrics.json /tmp/metrics.json
# An empty directory when not baking: the model then comes from MODEL_URI at start. The slim
# image takes only what its variants read: the TFLite files and the identity record. A baked
# model's test figures (the evaluate stage's, committed beside dvc.lock) go with it: /metadata.
RUN mkdir -p /srv/models /srv/slim-models/mnist/assets \
    && if [ "$BAKE_MODEL" = "true" ]; then \
         cp -r /tmp/models/mnist /srv/models/mnist \
         && cp -r /tmp/models/mnist/lite /srv/slim-models/mnist/lite \
         && cp /tmp/models/mnist/assets/model.json /srv/slim-models/mnist/assets/ \
         && cp /tmp/metrics.json /srv/models/metrics.json \
         && cp /tmp/metrics.json /srv/slim-models/metrics.json; \
       else rm -rf /srv/slim-models/mnist; fi

# The drift monitor (`mnist monitor`), a sibling image from the same Dockerfile and the same pins
# (requirements-monitor.lock, within requirements.lock): no TensorFlow, no Flask.
#   docker build --target monitor -t mnist-monitor .   (make image builds both; the service's
#   runtime stage stays last, so a plain `docker build .` builds the service)
# It reads the service's prediction log (a shared volume) and data/reference (mounted), and
# writes reports/drift/drift.json, which the service turns into its drift gauges.
FROM venv-base AS monitor-build
COPY requirements-monitor.lock /tmp/requirements.lock
RUN sh /tmp/make-venv.sh /tmp/requirements.lock

FROM ${PYTHON_IMAGE} AS monitor
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/mnist /srv/reports/drift && chown app:app /srv/reports/drift
COPY --from=monitor-build /opt/venv /opt/venv
WORKDIR /srv
COPY --chown=root:root src/mnist_contracts/ /srv/mnist_contracts/
# Only the modules `mnist monitor` imports, and the command itself (its other sub-commands import
# what they run only when they run; tests/unit/test_deployment_gates.py checks the list).
COPY --chown=root:root src/mnist_pipeline/__init__.py src/mnist_pipeline/atomic.py \
     src/mnist_pipeline/cli.py src/mnist_pipeline/drift_features.py src/mnist_pipeline/errors.py \
     src/mnist_pipeline/params.py src/mnist_pipeline/performance.py \
     /srv/mnist_pipeline/
COPY --chown=root:root src/mnist_pipeline/commands/ /srv/mnist_pipeline/commands/
COPY --chown=root:root src/mnist_pipeline/ops/__init__.py src/mnist_pipeline/ops/monitor.py \
     /srv/mnist_pipeline/ops/
COPY --chown=root:root params.yaml /srv/params.yaml
# The alert receiver of monitoring/alertmanager.yml (standard library only), run beside
# Alertmanager by compose and Kubernetes: `python /srv/alert_log.py --port 9095`.
COPY --chown=root:root monitoring/alert_log.py /srv/alert_log.py
USER 1000
# Exit 0 no drift, 1 drift, 2 error, 3 too few predictions; `--every 300` runs it on a schedule;
# a later --events (a redis:// URL) replaces the embedded log's path.
ENTRYPOINT ["python", "-m", "mnist_pipeline.commands", "monitor", "--events", "/var/lib/mnist/predictions.db"]

# What both service images share: settings, user, code, health check, entrypoint.
FROM ${PYTHON_IMAGE} AS service
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    BIND=0.0.0.0:8000 \
    MODEL_DIR=/srv/models/mnist \
    METRICS_FILE=/srv/models/metrics.json \
    PREDICTION_LOG=/var/lib/mnist/predictions.db \
    STATE_DIR=/var/lib/mnist \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONPATH=/srv
# uid 1000, no login shell, owns only the writable state directory.
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/mnist /tmp/prometheus && chown app:app /var/lib/mnist /tmp/prometheus
WORKDIR /srv
COPY --chown=root:root app/ /srv/app/
# The contracts the service shares with the pipeline (no training code comes along).
COPY --chown=root:root src/mnist_contracts/ /srv/mnist_contracts/
# The mnist command, for `mnist shadow` (the same image runs the shadow consumer); no training code.
COPY --chown=root:root src/mnist_pipeline/__init__.py src/mnist_pipeline/cli.py \
     src/mnist_pipeline/errors.py /srv/mnist_pipeline/
COPY --chown=root:root src/mnist_pipeline/commands/ /srv/mnist_pipeline/commands/
COPY --chown=root:root gunicorn.conf.py docker/entrypoint.sh /srv/
USER 1000
EXPOSE 8000
# Liveness with the Python already in the image (no curl or wget), on the port BIND names.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ['BIND'].rsplit(':', 1)[1]; urllib.request.urlopen(f'http://127.0.0.1:{port}/health/live', timeout=4)"]
ENTRYPOINT ["/srv/entrypoint.sh"]

# The slim service: the int8 TFLite variant through LiteRT (MODEL_VARIANT=tflite-float also
# works), no TensorFlow in the image. docker build --target slim -t mnist-api:slim .
FROM service AS slim
ENV MODEL_VARIANT=tflite-int8
COPY --from=slim-build /opt/venv /opt/venv
COPY --from=model /srv/slim-models /srv/models
# The commit the image was built from (make image and CI pass it): /metadata names it for a baked
# model. Last, so a new commit rebuilds no other layer.
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}

# The full service (the default target: keep it last): TensorFlow, every variant, the SavedModel
# by default.
FROM service AS runtime
COPY --from=build /opt/venv /opt/venv
COPY --from=model /srv/models /srv/models
# The commit the image was built from (make image and CI pass it): /metadata names it for a baked
# model. Last, so a new commit rebuilds no other layer.
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}
