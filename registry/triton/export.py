"""Triton model-repository export of a bundle version, in two flavours.

Each bundle version becomes Triton models named `<name>__v<version>` (decoder),
`<name>__v<version>__mapping` (two-stage generators) and `<name>__v<version>__encoder`, each
with one Triton version `1`:

- `onnxruntime`: `config.pbtxt` (backend onnxruntime, dynamic batching, KIND_GPU) + `1/model.onnx`,
  for the NGC Triton image in production;
- `python`: the same ONNX run by onnxruntime inside Triton's python backend (`1/model.py`), each
  dynamic batch as one `session.run` — the backend of the pip-installable CPU server.

Example::

    export_triton(bundle, 3, Path("triton-repo"), flavor="onnxruntime")
    # → ["sprites-vae__v3", "sprites-vae__v3__encoder"]
    config_json = triton_model_config(bundle, "decoder", "python", name="sprites-vae__v3")
    await client.load_model("sprites-vae__v3", config=config_json,
                            files=triton_load_files(bundle, "decoder", "python"))
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc

from latentserve.registry.bundle.files import Bundle
from latentserve.registry.bundle.spec import BundleError, BundleSpec

Flavor = Literal["onnxruntime", "python"]
InstanceKind = Literal["KIND_GPU", "KIND_CPU"]
TritonComponent = Literal["decoder", "encoder", "mapping"]
FLAVORS: tuple[Flavor, ...] = ("onnxruntime", "python")
MODEL_FILE = "model.onnx"
PYTHON_MODEL_FILE = "model.py"
DEFAULT_INSTANCE_KIND: dict[Flavor, InstanceKind] = {
    "onnxruntime": "KIND_GPU",
    "python": "KIND_CPU",
}


def triton_model_name(name: str, version: int, component: TritonComponent = "decoder") -> str:
    """The Triton model name of a bundle version's component:
    `<name>__v<version>[__encoder|__mapping]`."""
    base = f"{name}__v{version}"
    return base if component == "decoder" else f"{base}__{component}"


@dataclass(frozen=True)
class TensorIO:
    """One Triton input/output without the batch dimension; `reshape` drops the trailing 1."""

    name: str
    data_type: str  # Triton DataType name, e.g. TYPE_FP32
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None


def component_io(
    spec: BundleSpec, component: TritonComponent
) -> tuple[list[TensorIO], list[TensorIO]]:
    """Inputs and outputs of a component as Triton sees them (class labels go as [batch, 1]):
    latents shaped as the networks take them (z [4, 16, 16], ws [num_ws, w_dim]) and the
    decoder's noise inputs [C, H, W]. An encoder of a shaped latent is declared with the
    editing shape (an encoder returning one w for every W+ layer is not exported)."""
    shape = tuple(spec.output.shape)
    latent = tuple(spec.editing_shape)
    if component == "mapping":
        mapping = spec.mapping
        if mapping is None:
            raise BundleError(f"{spec.name}: mapping: the bundle has no mapping to export")
        per_layer = mapping.output_per_layer and mapping.num_ws is not None
        out = (mapping.num_ws or 1, mapping.w_dim) if per_layer else (mapping.w_dim,)
        return ([TensorIO(mapping.input, "TYPE_FP32", tuple(spec.prior_shape))],
                [TensorIO(mapping.output, "TYPE_FP32", out)])
    if component == "decoder":
        dec = spec.decoder
        inputs = [TensorIO(dec.input, "TYPE_FP32", latent)]
        if dec.condition_input is not None:
            inputs.append(TensorIO(dec.condition_input, "TYPE_INT64", (1,), reshape=()))
        inputs += [TensorIO(n.name, "TYPE_FP32", tuple(n.shape)) for n in dec.noise_inputs]
        return inputs, [TensorIO(dec.output, "TYPE_FP32", shape)]
    enc = spec.encoder
    if enc is None:
        raise BundleError(f"{spec.name}: encoder: the bundle has no encoder to export")
    inputs = [TensorIO(enc.input, "TYPE_FP32", shape)]
    if enc.condition_input is not None:
        inputs.append(TensorIO(enc.condition_input, "TYPE_INT64", (1,), reshape=()))
    outputs = [TensorIO(enc.output_mean, "TYPE_FP32", latent)]
    if enc.output_logvar is not None:
        outputs.append(TensorIO(enc.output_logvar, "TYPE_FP32", latent))
    return inputs, outputs


def components(bundle: Bundle) -> list[TritonComponent]:
    """The bundle's components: decoder, plus mapping and encoder when it has them."""
    found: list[TritonComponent] = ["decoder"]
    if bundle.spec.mapping is not None:
        found.append("mapping")
    if bundle.spec.encoder is not None:
        found.append("encoder")
    return found


def model_config_proto(
    bundle: Bundle,
    component: TritonComponent,
    flavor: Flavor,
    *,
    name: str,
    instance_kind: InstanceKind | None = None,
    instance_count: int = 1,
    max_queue_delay_us: int = 100,
    preferred_batch_sizes: list[int] | None = None,
) -> mc.ModelConfig:
    """The Triton `ModelConfig` message of one component (what config.pbtxt / JSON encode)."""
    if flavor not in FLAVORS:
        raise ValueError(f"flavor must be one of {FLAVORS}, got {flavor!r}")
    spec = bundle.spec
    preferred = list(preferred_batch_sizes or [spec.max_batch_size])
    bad = [b for b in preferred if not 1 <= b <= spec.max_batch_size]
    if bad:
        raise ValueError(f"preferred_batch_sizes must lie in [1, {spec.max_batch_size}], got {bad}")
    if max_queue_delay_us < 0 or instance_count < 1:
        raise ValueError("max_queue_delay_us must be >= 0 and instance_count >= 1")
    config = mc.ModelConfig(name=name, backend=flavor, max_batch_size=spec.max_batch_size)
    inputs, outputs = component_io(spec, component)
    for tensor, message in [(t, config.input.add()) for t in inputs] + [
        (t, config.output.add()) for t in outputs
    ]:
        message.name = tensor.name
        message.data_type = mc.DataType.Value(tensor.data_type)
        message.dims.extend(tensor.dims)
        if tensor.reshape is not None:
            message.reshape.SetInParent()
            message.reshape.shape.extend(tensor.reshape)
    config.dynamic_batching.preferred_batch_size.extend(preferred)
    config.dynamic_batching.max_queue_delay_microseconds = max_queue_delay_us
    kind = instance_kind or DEFAULT_INSTANCE_KIND[flavor]
    config.instance_group.add(kind=mc.ModelInstanceGroup.Kind.Value(kind), count=instance_count)
    if flavor == "onnxruntime":
        config.default_model_filename = MODEL_FILE
    return config


def triton_model_config(
    bundle: Bundle,
    component: TritonComponent,
    flavor: Flavor,
    *,
    name: str,
    instance_kind: InstanceKind | None = None,
    max_queue_delay_us: int = 100,
    preferred_batch_sizes: list[int] | None = None,
) -> str:
    """The component's Triton model config as JSON, for `load_model(name, config=...)`."""
    config = model_config_proto(
        bundle, component, flavor, name=name, instance_kind=instance_kind,
        max_queue_delay_us=max_queue_delay_us, preferred_batch_sizes=preferred_batch_sizes,
    )  # fmt: skip
    return json_format.MessageToJson(config, preserving_proto_field_name=True, indent=None)


def python_model_source() -> bytes:
    """The python-flavour `model.py` (registry/triton/python_model.py)."""
    return (resources.files("latentserve.registry.triton") / "python_model.py").read_bytes()


def _onnx_path(bundle: Bundle, component: TritonComponent) -> Path:
    paths = {"decoder": bundle.decoder_path, "mapping": bundle.mapping_path,
             "encoder": bundle.encoder_path}
    path = paths[component]
    if path is None:
        raise BundleError(f"{bundle.spec.name}: {component}: the bundle has no {component} "
                          "to export")
    return path


def triton_load_files(
    bundle: Bundle, component: TritonComponent, flavor: Flavor
) -> dict[str, bytes]:
    """File overrides for `load_model(files=...)`: `file:1/model.onnx` (+ `file:1/model.py`)."""
    files = {f"file:1/{MODEL_FILE}": _onnx_path(bundle, component).read_bytes()}
    if flavor == "python":
        files[f"file:1/{PYTHON_MODEL_FILE}"] = python_model_source()
    return files


def export_triton(
    bundle: Bundle,
    version: int,
    out_repo: Path,
    *,
    flavor: Flavor,
    instance_kind: InstanceKind | None = None,
    max_queue_delay_us: int = 100,
    preferred_batch_sizes: list[int] | None = None,
) -> list[str]:
    """Write the version's Triton models into the repository `out_repo`; returns their names.

    An existing model folder of the same name is replaced. `instance_kind` defaults to KIND_GPU
    for onnxruntime and KIND_CPU for python.
    """
    if version < 1:
        raise ValueError(f"version must be >= 1, got {version}")
    written = []
    for component in components(bundle):
        name = triton_model_name(bundle.spec.name, version, component)
        config = model_config_proto(
            bundle, component, flavor, name=name, instance_kind=instance_kind,
            max_queue_delay_us=max_queue_delay_us, preferred_batch_sizes=preferred_batch_sizes,
        )  # fmt: skip
        model_dir = out_repo / name
        if model_dir.exists():
            shutil.rmtree(model_dir)
        (model_dir / "1").mkdir(parents=True)
        (model_dir / "config.pbtxt").write_text(text_format.MessageToString(config))
        for file, content in triton_load_files(bundle, component, flavor).items():
            (model_dir / file.removeprefix("file:")).write_bytes(content)
        written.append(name)
    return written
