# The pipeline's environment, for the multi-worker training Job
# (kubernetes/training/train-distributed.yaml): the locked venv (TensorFlow, DVC, DVCLive, MLflow) and git. The repository and its data come from
# the workspace volume the Job mounts, so the image changes only when requirements.lock does.
#   docker build -f docker/pipeline.Dockerfile -t mnist-pipeline .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY docker/wheels/ /tmp/wheels/
COPY docker/make-venv.sh /tmp/make-venv.sh
COPY requirements.lock /tmp/requirements.lock
RUN sh /tmp/make-venv.sh /tmp/requirements.lock

FROM ${PYTHON_IMAGE}
# git: DVC and the MLflow run's source tags read the workspace's repository. The base image's
# Debian release fixes its version.
# hadolint ignore=DL3008
RUN apt-get update && apt-get install -y --no-install-recommends git \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin pipeline
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /workspace
USER 1000
