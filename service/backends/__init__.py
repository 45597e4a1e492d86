"""Numeric backends: where decoder/encoder forward passes run (embedded ONNX Runtime, Triton).

`base.Backend` is the interface; `batching.AdaptiveBatcher` is the one coalescing batcher the
backends put in front of their model calls; `factory` picks the backend named by the settings.
"""
