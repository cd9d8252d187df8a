# MLflow tracking server with the PostgreSQL driver and the S3 client the compose stack needs.
FROM python:3.11.7-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN pip install mlflow==3.17.2 psycopg2-binary==2.9.10 boto3==1.35.36 \
    && useradd --uid 1000 --create-home --shell /usr/sbin/nologin mlflow
USER 1000
EXPOSE 5000
