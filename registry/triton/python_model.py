"""Triton python-backend model (the python flavour's `1/model.py`): ONNX via onnxruntime.

Runs inside Triton's python backend stub (not imported by the service). Each dynamic batch runs
as ONE `session.run` over the concatenated requests and is split back per request; if that run
fails, every request is retried alone so one bad request fails alone. Reads `1/model.onnx` beside
this file; config parameters `intra_op_threads` (0: onnxruntime's default) and
`intra_op_spinning` ("1"/"true" lets onnxruntime's threads busy-wait between calls; off by default,
because on shared CPUs the spinning takes cycles from Triton's own threads).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Triton calls `initialize`, then `execute` per dynamic batch, then `finalize`."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        options = ort.SessionOptions()
        parameters = config.get("parameters", {})
        threads = parameters.get("intra_op_threads", {}).get("string_value")
        spinning = parameters.get("intra_op_spinning", {}).get("string_value") or "0"
        spinning = "1" if spinning.strip().lower() in ("1", "true", "yes") else "0"
        options.intra_op_num_threads = int(threads or 0)
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.ranks = {i.name: len(i.shape) for i in self.session.get_inputs()}
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]

    def _feeds(self, requests: list[Any]) -> tuple[dict[str, np.ndarray], list[int]]:
        parts: dict[str, list[np.ndarray]] = {name: [] for name in self.inputs}
        rows = []
        for request in requests:
            for name in self.inputs:
                array = pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                parts[name].append(array)
            rows.append(len(parts[self.inputs[0]][-1]))
        feeds = {}
        for name, arrays in parts.items():
            joined = np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
            feeds[name] = joined.reshape(-1) if self.ranks[name] == 1 else joined
        return feeds, rows

    def _run(self, requests: list[Any]) -> list[Any]:
        feeds, rows = self._feeds(requests)
        results = self.session.run(self.outputs, feeds)
        responses = []
        start = 0
        for n in rows:
            tensors = [
                pb_utils.Tensor(name, np.ascontiguousarray(result[start : start + n]))
                for name, result in zip(self.outputs, results, strict=True)
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses

    def execute(self, requests: list[Any]) -> list[Any]:
        try:
            return self._run(requests)
        except Exception as exc:
            if len(requests) == 1:
                return [_error(exc)]
        responses = []
        for request in requests:
            try:
                responses.extend(self._run([request]))
            except Exception as exc:
                responses.append(_error(exc))
        return responses

    def finalize(self) -> None:
        del self.session


def _error(exc: Exception) -> Any:
    message = f"onnxruntime: {type(exc).__name__}: {exc}"
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
