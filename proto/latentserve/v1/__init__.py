"""latentserve.v1: the generated gRPC/protobuf stubs of the latentserve API.

The source of truth is `generator.proto` next to this file; the `*_pb2*` modules are
generated from it by `make proto` and checked in (tests/test_proto_drift.py fails on drift).
Example::

    from latentserve.v1 import generator_pb2, generator_pb2_grpc

    stub = generator_pb2_grpc.GeneratorServiceStub(channel)
    info = stub.GetModel(generator_pb2.GetModelRequest(
        model=generator_pb2.ModelRef(name="sprites-vae", alias="production")))
"""
