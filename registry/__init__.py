"""latentserve.registry: generator bundles from file to registry to Triton, by job.

- `bundle`: the spec, bundle folders (read, write, validate), ONNX checks and graph reading,
  the builder (ONNX files → bundle), w̄ and previews.
- `store`: the MLflow registry: register, resolve aliases, download versions, tags.
- `quality`: measuring a bundle on ONNX Runtime: latent-quality metrics, direction discovery
  (SeFa, PCA, supervised) and direction evaluation.
- `triton`: a version exported as a Triton model repository (onnxruntime, python flavours).
- `cli`: the `registry`, `bundle` and `directions` command groups.

Imports only `latentserve.core` and `latentserve.v1`; promotion (which runs the embedded
backend) sits above the service in `latentserve.promotion`.
"""
