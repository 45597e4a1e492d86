"""latentserve.registry: the generator bundle format, its validation, MLflow I/O, Triton export.

Imports only `latentserve.core` and `latentserve.v1`; promotion (which runs the embedded
backend) sits above the service in `latentserve.promotion`.
"""
