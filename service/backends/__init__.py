"""Numeric backends: where decoder/encoder forward passes run (embedded ONNX Runtime, Triton)."""
