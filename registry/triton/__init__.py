"""Triton model repositories exported from bundle versions (onnxruntime and python flavours)."""
