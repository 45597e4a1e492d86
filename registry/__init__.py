"""latentserve.registry: generator bundles, MLflow registry I/O, promotion, Triton export."""
