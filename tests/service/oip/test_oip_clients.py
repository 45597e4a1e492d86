"""The Open Inference Protocol on both ports, driven by tritonclient (HTTP and gRPC) against a
real server: images bit-identical to the SDK's Decode, Sample and Edit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from latentserve.client import Client
from latentserve.service.devtools.background import BackgroundServer


@pytest.fixture(scope="module")
def sdk(http_server: BackgroundServer) -> Iterator[Client]:
    with Client(http_server.address) as client:
        yield client


@pytest.fixture(scope="module", params=["http", "grpc"])
def oip(request: pytest.FixtureRequest, http_server: BackgroundServer) -> Iterator[Any]:
    """A tritonclient of each protocol on the server's HTTP or gRPC port."""
    assert http_server.server is not None
    if request.param == "http":
        client: Any = triton_http.InferenceServerClient(
            f"127.0.0.1:{http_server.server.http_port}")
    else:
        client = triton_grpc.InferenceServerClient(http_server.address)
    client.protocol = request.param
    yield client
    client.close()


def _input(oip: Any, name: str, array: np.ndarray, datatype: str, binary: bool = True) -> Any:
    module = triton_http if oip.protocol == "http" else triton_grpc
    tensor = module.InferInput(name, list(array.shape), datatype)
    if oip.protocol == "http":
        tensor.set_data_from_numpy(array, binary_data=binary)
    else:
        tensor.set_data_from_numpy(array)
    return tensor


def _output(oip: Any, name: str, binary: bool = True) -> Any:
    if oip.protocol == "http":
        return triton_http.InferRequestedOutput(name, binary_data=binary)
    return triton_grpc.InferRequestedOutput(name)


def test_health_and_metadata(oip: Any, sdk: Client) -> None:
    assert oip.is_server_live()
    assert oip.is_server_ready()
    assert oip.is_model_ready("tiny")
    assert oip.is_model_ready("tiny.sample", "1")
    info = sdk.get_model("tiny")
    meta = oip.get_model_metadata("tiny")
    if oip.protocol == "grpc":
        from google.protobuf import json_format

        meta = json_format.MessageToDict(meta, preserving_proto_field_name=True)
    assert meta["name"] == "tiny"
    assert "1" in meta["versions"]
    inputs = {t["name"]: t for t in meta["inputs"]}
    assert inputs["latent"]["datatype"] == "FP32"
    assert [int(d) for d in inputs["latent"]["shape"]] == [-1, info.latent_dim]
    server = oip.get_server_metadata()
    assert (server["name"] if isinstance(server, dict) else server.name) == "latentserve"


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_decode_is_bit_identical_to_the_sdk(oip: Any, sdk: Client, binary: bool) -> None:
    if oip.protocol == "grpc" and not binary:
        pytest.skip("gRPC always carries raw tensors")
    z = np.random.default_rng(3).standard_normal((5, sdk.get_model("tiny").latent_dim)).astype(
        np.float32)
    expected = sdk.decode("tiny", z, output="float32").images
    result = oip.infer("tiny", [_input(oip, "latent", z, "FP32", binary)],
                       outputs=[_output(oip, "image", binary)])
    image = result.as_numpy("image")
    assert image.dtype == np.float32 and image.shape == expected.shape
    assert image.tobytes() == expected.tobytes()


def test_conditional_decode_takes_class_labels(oip: Any, sdk: Client) -> None:
    z = np.random.default_rng(4).standard_normal((3, sdk.get_model("tiny-cond").latent_dim))
    z = z.astype(np.float32)
    labels = np.array([0, 1, 2], dtype=np.int32)
    expected = sdk.decode("tiny-cond", z, class_labels=[0, 1, 2]).images
    result = oip.infer("tiny-cond", [_input(oip, "latent", z, "FP32"),
                                     _input(oip, "class_label", labels, "INT32")])
    assert result.as_numpy("image").tobytes() == expected.tobytes()


def test_sample_and_edit_models_take_parameters(oip: Any, sdk: Client) -> None:
    sample = oip.infer("tiny.sample", [], parameters={"seed": 11, "n": 4,
                                                      "truncation_psi": 0.7})
    expected = sdk.sample("tiny", n=4, seed=11, truncation_psi=0.7)
    assert sample.as_numpy("image").tobytes() == expected.images.tobytes()
    assert sample.as_numpy("latent").tobytes() == expected.latents.tobytes()
    direction = sdk.get_model("tiny").directions[0].name
    edit = oip.infer("tiny.edit", [], parameters={"seeds": "1,2", "direction": direction,
                                                   "strengths": "-1,0,1.5"})
    expected_edit = sdk.edit("tiny", seeds=[1, 2], direction=direction,
                             strengths=[-1, 0, 1.5])
    assert edit.as_numpy("image").tobytes() == expected_edit.images.tobytes()


@pytest.mark.parametrize(("call", "field"), [
    ({"model_name": "tiny", "inputs": [("z", "FP32")]}, "inputs[z]"),
    ({"model_name": "tiny", "inputs": [("latent", "FP64")]}, "inputs[latent].datatype"),
    ({"model_name": "tiny.sample", "inputs": [], "parameters": {"seed": -1}},
     "parameters.seed"),
    ({"model_name": "tiny.sample", "inputs": [], "parameters": {"sed": 1}}, "parameters.sed"),
    ({"model_name": "tiny.edit", "inputs": [], "parameters": {"seeds": "1"}},
     "parameters.direction"),
])
def test_client_mistakes_name_the_field(oip: Any, sdk: Client, call: dict[str, Any],
                                        field: str) -> None:
    dim = sdk.get_model("tiny").latent_dim
    inputs = [_input(oip, name, np.zeros((2, dim), dtype=np.float64 if t == "FP64"
                                         else np.float32), t) for name, t in call["inputs"]]
    with pytest.raises(InferenceServerException) as raised:
        oip.infer(call["model_name"], inputs, parameters=call.get("parameters"))
    status = str(raised.value.status())
    assert status in ("400", "StatusCode.INVALID_ARGUMENT"), status
    assert field in raised.value.message()


def test_unknown_model_is_not_found(oip: Any) -> None:
    with pytest.raises(InferenceServerException) as raised:
        oip.infer("no-such-model", [])
    assert str(raised.value.status()) in ("404", "StatusCode.NOT_FOUND")
