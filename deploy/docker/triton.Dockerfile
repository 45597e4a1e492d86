# syntax=docker/dockerfile:1
# Triton Inference Server for latentserve's `triton` backend: the NGC image (onnxruntime backend),
# started by triton-serve.sh with explicit model control, metrics on, HTTP off and the
# admin-only gRPC protocols restricted (Triton's secure-deployment guide). Runs as the image's
# non-root user `triton-server` (uid 1000).
#
# Build from the repository root:
#   docker build -f deploy/docker/triton.Dockerfile -t latentserve/triton:0.1.0 .

ARG TRITON_VERSION=25.08

FROM nvcr.io/nvidia/tritonserver:${TRITON_VERSION}-py3
COPY --chmod=0755 deploy/docker/triton-serve.sh /opt/latentserve/triton-serve.sh
USER 1000:1000
WORKDIR /tmp
# gRPC (inference, health, model control) and Prometheus /metrics; no HTTP endpoint.
EXPOSE 8001 8002
ENTRYPOINT ["/opt/latentserve/triton-serve.sh"]
