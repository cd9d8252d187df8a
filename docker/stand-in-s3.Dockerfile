# MinIO's stand-in where no image registry answers (docker/stand-in-images.sh): the S3 API from
# moto_server at the version requirements.lock pins, on port 9000 as MinIO listens. It accepts
# any access key and keeps objects in memory: for the stack's test, not for a team's artifacts.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm
FROM ${PYTHON_IMAGE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/moto \
    && /opt/moto/bin/pip install --quiet "moto[server]" -c /tmp/requirements.lock \
    && rm /tmp/requirements.lock \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin moto
USER 1000
EXPOSE 9000
# MinIO's arguments (server /data --console-address :9001) are accepted and ignored.
ENTRYPOINT ["/bin/sh", "-c", "exec /opt/moto/bin/moto_server -H 0.0.0.0 -p 9000", "minio-stand-in"]
