"""Bundle format: the spec, bundle folders (read, write, validate), ONNX checks, the builder."""
