"""Fuzz pass over the HTTP port (the gRPC fuzzer's cases, over HTTP, plus JSON and OIP bodies):
every client mistake is a 4xx JSON error (400s naming a field), never a 5xx. Hypothesis, fixed
seed, bounded count, one real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentserve.service.http.api import kebab
from latentserve.v1 import generator_pb2 as pb
from tests.attack.test_fuzz import METHODS, _mutated

ALLOWED = {200, 400, 404, 405, 406, 412, 413, 429}
FUZZ = settings(max_examples=50, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))
VALID_JSON: dict[str, dict[str, Any]] = {
    "Sample": {"model": {"name": "tiny"}, "n": 2, "seed": 3, "truncationPsi": 0.7},
    "Interpolate": {"model": {"name": "tiny"}, "keyframes": {"seeds": {"seeds": [1, 2]}},
                    "steps": 3, "method": "INTERPOLATION_METHOD_SLERP"},
    "Edit": {"model": {"name": "tiny"}, "base": {"seeds": {"seeds": [1]}},
             "directionName": "d0", "strengths": [1.0], "output": "OUTPUT_FORMAT_PNG"},
    "Decode": {"model": {"name": "tiny"},
               "latents": {"dtype": "D_TYPE_FLOAT32", "shape": [1, 2], "data": "AAAAAAAAAAA="}},
    "GetModel": {"model": {"name": "tiny"}},
}
VALID_INFER: dict[str, Any] = {
    "inputs": [{"name": "latent", "datatype": "FP32", "shape": [1, 4], "data": [0, 1, 2, 3]}],
    "outputs": [{"name": "image"}], "parameters": {},
}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def http(http_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_url, timeout=60) as client:
        yield client


def check(answer: httpx.Response, sent: object) -> None:
    """A deliberate answer: allowed status; errors JSON; 400s name a field."""
    assert answer.status_code in ALLOWED, (sent, answer.status_code, answer.text[:400])
    if answer.status_code >= 400:
        error = answer.json()
        assert error["status"] == answer.status_code and error["code"] and error["message"]
        if answer.status_code == 400:
            fields = [v["field"] for v in error.get("field_violations", [])]
            assert fields and all(fields), (sent, error)


def _mutate(value: Any, path: list[Any], replacement: Any) -> Any:
    """`value` with the item at `path` (keys/indices, as far as they reach) replaced."""
    if not path or not isinstance(value, dict | list) or not value:
        return replacement
    if isinstance(value, dict):
        key = sorted(value)[path[0] % len(value)]
        return {**value, key: _mutate(value[key], path[1:], replacement)}
    index = path[0] % len(value)
    return [*value[:index], _mutate(value[index], path[1:], replacement), *value[index + 1:]]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_fuzzed_protobuf_bodies_get_deliberate_answers(http: httpx.Client, method: str) -> None:
    @FUZZ
    @given(st.one_of(st.binary(max_size=64), _mutated(method)))
    def run(data: bytes) -> None:
        answer = http.post(f"/v1/{kebab(method)}", content=data,
                           headers={"content-type": "application/proto"})
        check(answer, data)

    run()


@pytest.mark.parametrize("method", sorted(VALID_JSON))
def test_fuzzed_json_bodies_get_deliberate_answers(http: httpx.Client, method: str) -> None:
    @FUZZ
    @given(st.lists(st.integers(0, 50), max_size=4), json_values,
           st.sampled_from(["*/*", "image/png", "application/x-npy", "text/html"]))
    def run(path: list[int], replacement: Any, accept: str) -> None:
        body = _mutate(VALID_JSON[method], path, replacement)
        answer = http.post(f"/v1/{kebab(method)}", json=body, headers={"accept": accept})
        check(answer, body)

    run()


def test_fuzzed_oip_infer_bodies_get_deliberate_answers(http: httpx.Client) -> None:
    @FUZZ
    @given(st.lists(st.integers(0, 50), max_size=5), json_values,
           st.sampled_from(["tiny", "tiny.sample", "tiny.edit", "tiny-cond", "x.edit"]))
    def run(path: list[int], replacement: Any, model: str) -> None:
        body = _mutate(VALID_INFER, path, replacement)
        answer = http.post(f"/v2/models/{model}/infer", json=body)
        check(answer, body)

    run()


def test_fuzzed_binary_tensor_bodies_get_deliberate_answers(http: httpx.Client) -> None:
    @FUZZ
    @given(st.integers(-3, 400), st.binary(max_size=96), st.integers(-2, 64))
    def run(header_length: int, tail: bytes, size: int) -> None:
        head = json.dumps({"inputs": [{"name": "latent", "datatype": "FP32", "shape": [1, 4],
                                       "parameters": {"binary_data_size": size}}]}).encode()
        answer = http.post("/v2/models/tiny/infer", content=head + tail,
                           headers={"inference-header-content-length": str(header_length)})
        check(answer, (header_length, tail, size))

    run()


def test_fuzzed_routes_methods_and_headers(http: httpx.Client) -> None:
    @FUZZ
    @given(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
           st.sampled_from(["/v1/sample", "/v1/models", "/v1/models/tiny", "/v2",
                            "/v2/models/tiny", "/v2/models/tiny/versions/x/ready",
                            "/v2/models//infer", "/latentserve.v1.GeneratorService/Nope",
                            "/v1/stream-interpolate", "/docs", "/"]),
           st.text(alphabet="abcdefghij/.:-_0123456789", max_size=12),
           st.sampled_from(["application/json", "application/proto", "text/plain",
                            "application/connect+json", ""]),
           st.sampled_from(["", "abc", "-5", "99999999999"]))
    def run(verb: str, route: str, suffix: str, content_type: str, timeout: str) -> None:
        headers = {"content-type": content_type}
        if timeout:
            headers["connect-timeout-ms"] = timeout
        answer = http.request(verb, route + suffix, content=b'{"n": 1}', headers=headers)
        assert answer.status_code != 500 and answer.status_code < 503, (
            verb, route + suffix, answer.status_code, answer.text[:300])
        if answer.status_code >= 400:
            assert answer.json()["code"]

    run()


def test_every_rpc_has_an_http_route(http: httpx.Client) -> None:
    for method in pb.DESCRIPTOR.services_by_name["GeneratorService"].methods:
        answer = http.post(f"/v1/{kebab(method.name)}", content=b"[]")
        check(answer, method.name)
