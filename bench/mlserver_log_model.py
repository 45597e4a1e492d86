"""Log an ONNX decoder into a throw-away MLflow registry the way an MLServer user would.

Run by the MLServer venv's python (never imported by the harness: it needs only mlflow, onnx
and numpy). `mlflow.onnx.log_model` with a signature inferred from an example batch (latents
float32 [n, N], plus int64 labels [n] for a conditional decoder), registered as `decoder` with
alias `production`. Prints one JSON line: the model URI and the registered version. Example::

    .venv-mlserver/bin/python bench/mlserver_log_model.py --onnx decoder.onnx --latent-dim 4 \\
        --input z --condition-input label --num-classes 3 --tracking-uri sqlite:///r/mlflow.db \\
        --artifacts r/artifacts
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

MODEL = "decoder"
ALIAS = "production"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--onnx", type=Path, required=True)
    parser.add_argument("--latent-dim", type=int, required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--condition-input", default=None)
    parser.add_argument("--num-classes", type=int, default=0)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--artifacts", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

    import mlflow
    import mlflow.onnx
    import numpy as np
    import onnx
    import onnxruntime as ort
    from mlflow.models import infer_signature
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_registry_uri(args.tracking_uri)
    experiment = mlflow.create_experiment("peer", artifact_location=args.artifacts.absolute()
                                          .as_uri())
    example: dict[str, np.ndarray] = {
        args.input: np.random.default_rng(0).standard_normal((2, args.latent_dim))
        .astype(np.float32)}
    if args.condition_input:
        example[args.condition_input] = np.arange(2, dtype=np.int64) % max(args.num_classes, 1)
    session = ort.InferenceSession(str(args.onnx), providers=["CPUExecutionProvider"])
    outputs = {o.name: v for o, v in zip(session.get_outputs(), session.run(None, example),
                                         strict=True)}
    signature = infer_signature(example, outputs)
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.onnx.log_model(onnx.load(str(args.onnx)), name=MODEL, signature=signature,
                                     registered_model_name=MODEL)
    client = MlflowClient(args.tracking_uri, registry_uri=args.tracking_uri)
    version = int(info.registered_model_version)
    client.set_registered_model_alias(MODEL, ALIAS, str(version))
    packages = ("mlserver", "mlserver-mlflow", "mlflow", "onnx", "onnxruntime", "numpy",
                "uvloop", "torch")
    print(json.dumps({"model_uri": f"models:/{MODEL}@{ALIAS}", "version": version,
                      "signature": signature.to_dict(), "outputs": list(outputs),
                      "packages": {name: installed(name) for name in packages}}))


def installed(package: str) -> str | None:
    """The installed version of `package` in this venv (None when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
