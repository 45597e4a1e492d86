"""latentserve.inference: the Open Inference Protocol v2 stubs (`inference.GRPCInferenceService`).

The source of truth is `grpc_predict_v2.proto` next to this file; `grpc_predict_v2_pb2` is
generated from it by `make proto` and checked in (tests/inference fails on drift). The messages
live in a descriptor pool of their own, so this module imports beside `tritonclient.grpc` or
MLServer, which register the same `inference.*` names in the default pool. Only the message
classes are generated: the server registers its handlers from the service descriptor
(`latentserve.service.grpc_errors.add_servicer`), and clients use any OIP client. Example::

    from latentserve.inference import grpc_predict_v2_pb2 as oip

    service = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"]
"""
