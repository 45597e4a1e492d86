"""ONNX export of trained decoders/encoders, with the checks a bundle needs: dynamic batch
axis, `onnx.checker` clean, all weights inside the file, and torch ↔ onnxruntime parity.
Example::

    export_onnx(SpritesDecoder(vae), (z,), path, input_names=["z"], output_names=["x"])
    diff = onnx_parity(SpritesDecoder(vae), path, {"z": z256})   # max |torch − ORT|
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
import torch
from google.protobuf.message import DecodeError
from torch import nn

OPSET = 17


def export_onnx(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
) -> Path:
    """Export `module` (eval mode) to `path` with axis 0 of every input/output dynamic ("batch").

    Raises ValueError naming the file if the result fails `onnx.checker` or keeps weights
    outside the file.
    """
    module.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch"} for name in [*input_names, *output_names]}
    with torch.no_grad():
        torch.onnx.export(
            module,
            example,
            str(path),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    check_onnx(path)
    return path


def check_onnx(path: Path) -> onnx.ModelProto:
    """Load `path`, run the full checker, refuse external data; returns the model."""
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model, full_check=True)
    except (
        OSError,
        DecodeError,
        ValueError,
        onnx.checker.ValidationError,
        onnx.shape_inference.InferenceError,
    ) as exc:
        raise ValueError(f"{path}: not a valid ONNX model ({exc})") from None
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ValueError(f"{path}: initializer {tensor.name!r} keeps its data outside the file")
    return model


def onnx_parity(
    module: nn.Module, path: Path, inputs: Mapping[str, npt.NDArray[np.generic]]
) -> float:
    """Max |torch − onnxruntime| over all outputs of `module` and the ONNX file on `inputs`."""
    module.eval()
    with torch.no_grad():
        expected = module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()))
    if isinstance(expected, torch.Tensor):
        expected = (expected,)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, dict(inputs))
    if len(got) != len(expected):
        raise ValueError(f"{path}: {len(got)} outputs, torch module gives {len(expected)}")
    return max(
        float(np.max(np.abs(np.asarray(g, np.float64) - e.numpy().astype(np.float64))))
        for g, e in zip(got, expected, strict=True)
    )
