# syntax=docker/dockerfile:1
# MLflow tracking + model registry server for deploy/k8s/components/mlflow: PostgreSQL backend
# store (psycopg2) and an S3-compatible artifact store (boto3), artifacts proxied through the
# server so clients need no bucket credentials. Runs as a non-root user.
#
# Build from the repository root:
#   docker build -f deploy/docker/mlflow.Dockerfile -t latentserve/mlflow:3.17.2 .

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/mlflow
RUN pip install --no-cache-dir mlflow==3.17.2 psycopg2-binary==2.9.13 boto3==1.44.8 \
 && groupadd --system --gid 10002 mlflow \
 && useradd --system --no-log-init --uid 10002 --gid mlflow \
      --home-dir /home/mlflow --create-home --shell /usr/sbin/nologin mlflow
USER 10002:10002
WORKDIR /home/mlflow
EXPOSE 5000
ENTRYPOINT ["mlflow", "server"]
