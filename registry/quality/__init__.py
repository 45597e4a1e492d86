"""Measuring bundles on ONNX Runtime: latent metrics, direction discovery and evaluation."""
