# syntax=docker/dockerfile:1
# The latentserve gRPC service: `latentserve serve` with the [server] extra (no torch),
# running as a non-root user. Settings come from LATENTSERVE_* env vars (service/settings.py).
#
# Build from the repository root:
#   docker build -f deploy/docker/service.Dockerfile -t latentserve/service:0.1.0 .

ARG PYTHON_VERSION=3.11

# --- build: resolve and install the package into a self-contained venv ---------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/latentserve/bin:$PATH
RUN python -m venv /opt/latentserve
WORKDIR /src
COPY pyproject.toml README.md ./
COPY deploy/constraints.txt deploy/constraints.txt
COPY proto/ proto/
COPY core/ core/
COPY registry/ registry/
COPY service/ service/
COPY promotion/ promotion/
COPY clients/ clients/
# Install, then prove the image is what it claims: no torch, and the console script starts.
# Dependencies are pinned by deploy/constraints.txt (the same pins `make` uses).
# DL3013: this installs the project itself, pinned through the constraints file.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir -c deploy/constraints.txt ".[server]" \
 && python -c "import importlib.util as u, sys; sys.exit('torch must not be in the service image' if u.find_spec('torch') else 0)" \
 && latentserve serve --help > /dev/null

# --- runtime: the venv only; no compiler, no sources -----------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 latentserve \
 && useradd --system --no-log-init --uid 10001 --gid latentserve \
      --home-dir /home/latentserve --create-home --shell /usr/sbin/nologin latentserve \
 && install -d -o latentserve -g latentserve /var/cache/latentserve
COPY --from=build /opt/latentserve /opt/latentserve
ENV PATH=/opt/latentserve/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/latentserve \
    LATENTSERVE_HOST=0.0.0.0 \
    LATENTSERVE_CACHE_DIR=/var/cache/latentserve
USER 10001:10001
WORKDIR /home/latentserve
# gRPC (LATENTSERVE_PORT) and Prometheus /metrics (LATENTSERVE_METRICS_PORT): the settings' defaults;
# HTTP (LATENTSERVE_HTTP_PORT, off unless set; the manifests use 8000).
EXPOSE 50051 8000 9464
ENTRYPOINT ["latentserve", "serve"]
