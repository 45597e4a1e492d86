"""The MLflow model registry: register bundles, resolve aliases, download versions, tags."""
