#!/usr/bin/env bash
# Train a generator, register its bundle, and promote it through the quality gates: the same
# steps as deploy/ci/promote.yml (GitHub Actions), for any other CI runner or a shell.
#
#   deploy/ci/promote.sh                       # sprites-vae → production, report in promotion.md
#   MODEL=digits-cvae ALIAS=staging deploy/ci/promote.sh
#
# Environment (all optional):
#   MODEL=sprites-vae          generator to train (`latentserve train MODEL`) and model name
#   ALIAS=production           alias to promote to
#   BUNDLE_DIR=build/bundle    where training writes the bundle
#   REPORT=promotion.md        Markdown report of the gates; keep it as a CI artifact
#   TRAIN=1                    0: skip training, promote the bundle already in BUNDLE_DIR
#   LATENTSERVE=latentserve    the CLI to run (e.g. .venv/bin/latentserve)
#   LATENTSERVE_REGISTRY_URI   the MLflow registry (default: the embedded sqlite one)
#
# Exit code: that of `latentserve registry promote`: 0 promoted (or already the holder),
# 1 a gate failed, 2 infrastructure or usage error; training or registration failing exits
# non-zero before that. The alias moves only on 0.
set -euo pipefail

MODEL=${MODEL:-sprites-vae}
ALIAS=${ALIAS:-production}
BUNDLE_DIR=${BUNDLE_DIR:-build/bundle}
REPORT=${REPORT:-promotion.md}
TRAIN=${TRAIN:-1}
LATENTSERVE=${LATENTSERVE:-latentserve}

if [ "$TRAIN" != 0 ]; then
    echo "== train $MODEL → $BUNDLE_DIR"
    "$LATENTSERVE" train "$MODEL" --out "$BUNDLE_DIR" --quiet
fi

echo "== register $BUNDLE_DIR as $MODEL"
# prints "<name>: registered version N" (or "already registered as version N")
registered=$(COLUMNS=1000 "$LATENTSERVE" registry register "$BUNDLE_DIR" --name "$MODEL")
echo "$registered"
version=$(printf '%s\n' "$registered" | sed -nE 's/.*version ([0-9]+).*/\1/p' | tail -n 1)
if [ -z "$version" ]; then
    echo "error: could not read the registered version from: $registered" >&2
    exit 2
fi

echo "== promote $MODEL v$version → $ALIAS"
exec "$LATENTSERVE" registry promote "$MODEL" --version "$version" --alias "$ALIAS" \
    --report "$REPORT"
