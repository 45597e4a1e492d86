"""latentserve.service: the gRPC server, latent math, backends, batching, model manager, metrics."""
