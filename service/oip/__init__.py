"""The Open Inference Protocol v2 (KServe "V2") over latentserve's generators, on both ports.

`models` names the OIP models (`<name>` decodes, `<name>.sample` samples, `<name>.edit` edits)
and describes them; `tensors` converts OIP tensors; `infer` turns one inference into a
GeneratorService call on the shared servicer (so batcher, cache, limits and metrics are the
same); `grpc_service` serves `inference.GRPCInferenceService` on the gRPC port and `rest` the
`/v2/...` routes on the HTTP port.
"""
