#!/bin/sh
# Starts tritonserver the way latentserve's `triton` backend uses it, with the run-time settings
# of Triton's secure-deployment guide. Arguments given to the container are appended (e.g.
# --log-verbose=1).
#
# - explicit model control: the service loads `<name>__v<version>` itself, sending config and
#   files in the load request, so the model repository may be an empty (emptyDir) folder;
# - gRPC on 8001 is the only API endpoint (health incl. grpc.health.v1, inference, model
#   repository); HTTP, SageMaker and Vertex AI endpoints are off;
# - the shared-memory, trace and logging protocols need the header
#   `triton-grpc-protocol-admin-key: $TRITON_ADMIN_KEY`; unset, a random per-start key locks
#   them for everyone (the service needs none of them across pods);
# - strict readiness off: one model that fails to load must not take the whole server out of
#   its Service; the service checks each model's readiness itself;
# - Prometheus metrics on 8002.
#
# Environment: TRITON_MODEL_REPOSITORY (default /models), TRITON_ADMIN_KEY (optional).
set -eu

model_repository="${TRITON_MODEL_REPOSITORY:-/models}"
admin_key="${TRITON_ADMIN_KEY:-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}"

exec tritonserver \
    --model-repository="${model_repository}" \
    --model-control-mode=explicit \
    --strict-readiness=false \
    --exit-on-error=true \
    --exit-timeout-secs=30 \
    --allow-grpc=true \
    --grpc-port=8001 \
    --grpc-restricted-protocol="shared-memory,trace,logging:admin-key=${admin_key}" \
    --allow-http=false \
    --allow-sagemaker=false \
    --allow-vertex-ai=false \
    --allow-metrics=true \
    --allow-gpu-metrics=true \
    --metrics-port=8002 \
    "$@"
