"""Model reference parsing: strings, ModelRef, ResolvedModel, proto refs, keywords."""

from __future__ import annotations

import pytest

from latentserve.client import ModelRef, ResolvedModel, parse_model_ref
from latentserve.v1 import generator_pb2 as pb


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sprites-vae", ModelRef("sprites-vae")),
        ("sprites-vae@staging", ModelRef("sprites-vae", alias="staging")),
        ("sprites-vae:3", ModelRef("sprites-vae", version=3)),
        (" digits-cvae@production ", ModelRef("digits-cvae", alias="production")),
        ("", ModelRef("")),
        ("@staging", ModelRef("", alias="staging")),
    ],
)
def test_strings(text: str, expected: ModelRef) -> None:
    assert parse_model_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sprites-vae@", "empty alias"),
        ("sprites-vae:", "version after ':' must be an integer"),
        ("sprites-vae:x", "version after ':' must be an integer"),
        ("sprites-vae:0", "version after ':' must be an integer"),
        ("sprites-vae:-1", "version after ':' must be an integer"),
    ],
)
def test_bad_strings(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_model_ref(text)


def test_keywords_override_the_selector() -> None:
    assert parse_model_ref("m@staging", version=2) == ModelRef("m", version=2)
    assert parse_model_ref("m:2", alias="production") == ModelRef("m", alias="production")
    with pytest.raises(ValueError, match="not both"):
        parse_model_ref("m", version=1, alias="production")


def test_objects() -> None:
    assert parse_model_ref(ModelRef("m", alias="a")) == ModelRef("m", alias="a")
    # a ResolvedModel pins the version that served an earlier call
    assert parse_model_ref(ResolvedModel("m", 4, "production")) == ModelRef("m", version=4)
    assert parse_model_ref(pb.ModelRef(name="m", version=5)) == ModelRef("m", version=5)
    assert parse_model_ref(pb.ModelRef(name="m", alias="x")) == ModelRef("m", alias="x")
    assert parse_model_ref(pb.ModelRef(name="m")) == ModelRef("m")
    with pytest.raises(TypeError, match="model must be a str, ModelRef or ResolvedModel"):
        parse_model_ref(3)  # type: ignore[arg-type]


def test_model_ref_validation_and_wire_form() -> None:
    with pytest.raises(ValueError, match="not both"):
        ModelRef("m", version=1, alias="a")
    with pytest.raises(ValueError, match="≥ 1"):
        ModelRef("m", version=0)
    with pytest.raises(ValueError, match="alias must not be empty"):
        ModelRef("m", alias="")
    assert ModelRef("m", version=2).to_proto().WhichOneof("selector") == "version"
    assert ModelRef("m", alias="a").to_proto().alias == "a"
    assert ModelRef("m").to_proto().WhichOneof("selector") is None
    assert [str(ModelRef("m")), str(ModelRef("m", version=2)), str(ModelRef("m", alias="a"))] == [
        "m",
        "m:2",
        "m@a",
    ]
