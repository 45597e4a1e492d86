"""GeneratorService over the HTTP port against a real server: JSON, binary, streams, errors."""

from __future__ import annotations

import io
import json
import struct

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format
from PIL import Image

from latentserve.service.devtools.background import BackgroundServer
from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc


@pytest.fixture(scope="module")
def http(http_url: str) -> httpx.Client:
    with httpx.Client(base_url=http_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def grpc_stub(http_server: BackgroundServer) -> pb_grpc.GeneratorServiceStub:
    with grpc.insecure_channel(http_server.address) as channel:
        yield pb_grpc.GeneratorServiceStub(channel)


SAMPLE = {"model": {"name": "tiny"}, "n": 3, "seed": 7}


def test_sample_json_mirrors_the_grpc_reply(http: httpx.Client,
                                            grpc_stub: pb_grpc.GeneratorServiceStub) -> None:
    answer = http.post("/v1/sample", json=SAMPLE)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-latentserve-model"] == "tiny"
    via_http = json_format.Parse(answer.text, pb.GenerateResponse())
    via_grpc = grpc_stub.Sample(json_format.ParseDict(SAMPLE, pb.SampleRequest()))
    assert via_http == via_grpc
    assert via_http.images.shape[0] == 3


def test_connect_path_and_binary_protobuf(http: httpx.Client) -> None:
    request = pb.SampleRequest(model=pb.ModelRef(name="tiny"), n=2, seed=1)
    answer = http.post("/latentserve.v1.GeneratorService/Sample",
                       content=request.SerializeToString(),
                       headers={"content-type": "application/proto"})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/proto"
    reply = pb.GenerateResponse.FromString(answer.content)
    assert reply.latents.shape[0] == 2


def test_png_grid_by_accept(http: httpx.Client) -> None:
    edit = {"model": {"name": "tiny"}, "base": {"seeds": {"seeds": [1, 2]}},
            "directionName": "d0", "strengths": [-1, 0, 1, 2]}
    answer = http.post("/v1/edit", json=edit, headers={"accept": "image/png"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    grid = Image.open(io.BytesIO(answer.content))
    info = http.get("/v1/models/tiny").json()
    _, height, width = (int(d) for d in info["outputShape"])
    assert grid.size == (4 * width, 2 * height)  # one column per strength, one row per base


def test_npy_by_accept_equals_float32_images(http: httpx.Client) -> None:
    answer = http.post("/v1/sample", json=SAMPLE, headers={"accept": "application/x-npy"})
    assert answer.status_code == 200
    images = np.load(io.BytesIO(answer.content), allow_pickle=False)
    reply = json_format.Parse(http.post("/v1/sample", json=SAMPLE).text, pb.GenerateResponse())
    expected = np.frombuffer(reply.images.data, "<f4").reshape(list(reply.images.shape))
    assert images.dtype == np.float32
    assert np.array_equal(images, expected)


def test_sse_stream_of_interpolation(http: httpx.Client) -> None:
    body = {"model": {"name": "tiny"}, "keyframes": {"seeds": {"seeds": [1, 2, 3]}},
            "steps": 40, "output": "OUTPUT_FORMAT_LATENTS_ONLY"}
    with http.stream("POST", "/v1/stream-interpolate", json=body) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "text/event-stream"
        text = "".join(answer.iter_text())
    events = [block for block in text.split("\n\n") if block.strip()]
    chunks = [json.loads(e.split("data: ", 1)[1]) for e in events if "event: message" in e]
    assert events[-1].startswith("event: end")
    frames = sum(int(c["latents"]["shape"][0]) for c in chunks)
    assert frames == 2 * 39 + 1
    assert [c.get("offset", 0) for c in chunks] == sorted(c.get("offset", 0) for c in chunks)


def test_stream_error_before_first_frame_is_a_plain_http_error(http: httpx.Client) -> None:
    body = {"model": {"name": "tiny"}, "keyframes": {"seeds": {"seeds": [1]}}, "steps": 4}
    answer = http.post("/v1/stream-interpolate", json=body)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_argument"


def test_connect_stream_protocol(http: httpx.Client) -> None:
    request = {"model": {"name": "tiny"}, "keyframes": {"seeds": {"seeds": [1, 2]}},
               "steps": 5, "output": "OUTPUT_FORMAT_LATENTS_ONLY"}
    payload = json.dumps(request).encode()
    answer = http.post("/latentserve.v1.GeneratorService/StreamInterpolate",
                       content=struct.pack(">BI", 0, len(payload)) + payload,
                       headers={"content-type": "application/connect+json"})
    assert answer.status_code == 200
    data, frames = answer.content, []
    while data:
        flags, length = struct.unpack_from(">BI", data)
        frames.append((flags, json.loads(data[5:5 + length])))
        data = data[5 + length:]
    assert frames[-1] == (2, {})
    assert sum(int(f["latents"]["shape"][0]) for _, f in frames[:-1]) == 5


@pytest.mark.parametrize(("body", "field"), [
    ({"model": {"name": "tiny"}, "n": 0}, "n"),
    ({"model": {"name": "tiny"}, "n": "many"}, "n"),
    ({"model": {"name": "tiny"}, "nn": 2}, "nn"),
    ({"model": {"name": "tiny"}, "n": 1, "output": "GIF"}, "output"),
    ({"model": {"name": "tiny"}, "n": 1, "truncationPsi": -1}, "truncation_psi"),
    ([1, 2], "request"),
])
def test_client_mistakes_are_400_naming_the_field(http: httpx.Client, body: object,
                                                  field: str) -> None:
    answer = http.post("/v1/sample", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["code"] == "invalid_argument"
    assert error["status"] == 400
    assert any(v["field"] == field for v in error["field_violations"]), error


def test_error_codes_follow_the_error_tree(http: httpx.Client) -> None:
    missing = http.post("/v1/sample", json={"model": {"name": "no-such-model"}, "n": 1})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    no_encoder = http.post("/v1/encode", json={"model": {"name": "tiny-noenc"},
                                               "images": {"dtype": "D_TYPE_FLOAT32"}})
    assert no_encoder.status_code == 412
    assert http.get("/v1/sample").status_code == 405
    assert http.post("/v1/nothing", json={}).status_code == 404
    assert http.post("/v1/sample", content=b"{", headers={
        "content-type": "application/json"}).status_code == 400


def test_oversized_body_refused_before_it_is_read(http_url: str,
                                                  http_server: BackgroundServer) -> None:
    limit = http_server.settings.max_message_bytes
    import socket
    from urllib.parse import urlparse

    where = urlparse(http_url)
    with socket.create_connection((where.hostname, where.port), timeout=30) as sock:
        sock.sendall(f"POST /v1/sample HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     f"\r\nContent-Length: {limit + 1}\r\n\r\n{{".encode())
        answer = b""
        while b"}" not in answer.partition(b"\r\n\r\n")[2]:
            answer += sock.recv(65536)
    head, _, body = answer.decode("latin-1").partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413"), head
    assert json.loads(body)["code"] == "resource_exhausted"


def test_cors_preflight_and_headers(http: httpx.Client) -> None:
    origin = {"origin": "http://localhost:5173"}
    pre = http.options("/v1/sample", headers={**origin,
                                              "access-control-request-method": "POST"})
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "content-type" in pre.headers["access-control-allow-headers"]
    answer = http.post("/v1/sample", json=SAMPLE, headers=origin)
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "x-latentserve-model" in answer.headers["access-control-expose-headers"]


def test_model_listing_and_description(http: httpx.Client) -> None:
    names = [m["name"] for m in http.get("/v1/models").json()["models"]]
    assert "tiny" in names
    info = http.get("/v1/models/tiny", params={"alias": "production"}).json()
    assert info["model"]["name"] == "tiny"
    assert http.get("/v1/models/tiny", params={"version": "x"}).status_code == 400


def test_openapi_lists_every_rpc_and_docs_page_serves(http: httpx.Client) -> None:
    doc = http.get("/openapi.json").json()
    for method in pb.DESCRIPTOR.services_by_name["GeneratorService"].methods:
        from latentserve.service.http.api import kebab

        assert f"/v1/{kebab(method.name)}" in doc["paths"]
    assert "/v2/models/{model}/infer" in doc["paths"]
    schema = doc["components"]["schemas"]["latentserve.v1.SampleRequest"]
    assert "truncationPsi" in schema["properties"]
    page = http.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text


def test_http_requests_are_counted(http: httpx.Client, http_server: BackgroundServer) -> None:
    from tests.fixtures.service import metric_value

    before = metric_value(http_server, "latentserve_http_requests_total", route="Sample")
    rpc_before = metric_value(http_server, "latentserve_requests_total", rpc="Sample")
    http.post("/v1/sample", json=SAMPLE)
    assert metric_value(http_server, "latentserve_http_requests_total",
                        route="Sample") == before + 1
    assert metric_value(http_server, "latentserve_requests_total", rpc="Sample") == rpc_before + 1
