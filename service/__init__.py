"""latentserve.service: the gRPC server, request checks, responses, backends, model manager.

Serving only: the latent math and the error tree come from `latentserve.core`, bundles and the
registry from `latentserve.registry`; local Triton process tooling for development and tests
lives apart in `latentserve.service.devtools`.
"""
