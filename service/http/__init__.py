"""The HTTP port: every GeneratorService RPC as JSON, the Open Inference Protocol's REST API,
an OpenAPI document and its docs page, in the same process as the gRPC server.

Requests go through the same servicer (and so the same batcher, response cache, limits,
metrics and logs) as gRPC; `app.HttpApi` is the ASGI application and `server.HttpServer` runs
it on uvicorn beside grpc.aio on one event loop.
"""
