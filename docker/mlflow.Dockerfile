# The stack's MLflow tracking server (docker-compose.yml): mlflow, psycopg and boto3 from
# requirements-mlflow.lock (within requirements.lock), on the same base as the other images.
# Its own file, not a stage of ../Dockerfile: the classic builder builds every stage before its
# target, so a stage there would rebuild this venv with every service image.
#   docker build -f docker/mlflow.Dockerfile --build-arg PYTHON_IMAGE=$(bash docker/base-image.sh) -t mnist-mlflow .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY docker/wheels/ /tmp/wheels/
COPY docker/make-venv.sh /tmp/make-venv.sh
COPY requirements-mlflow.lock /tmp/requirements.lock
RUN sh /tmp/make-venv.sh /tmp/requirements.lock

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin mlflow
COPY --from=build /opt/venv /opt/venv
# The bucket for the artifacts, created once the S3 API answers (compose's create-bucket).
COPY --chown=root:root docker/create_bucket.py /srv/create_bucket.py
USER 1000
EXPOSE 5000
HEALTHCHECK --interval=5s --timeout=3s --retries=30 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:5000/health', timeout=2)"]
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
