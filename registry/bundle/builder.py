"""Build a generator bundle from ONNX files: the public way in for a VAE/GAN trained elsewhere.

The caller states what a graph cannot say (a name, the output range, class label names, the
largest batch); IO names, latent size and output shape are read from the graphs when they are
unambiguous. The files get the checks the service makes when it loads a bundle, plus a probe
batch through onnxruntime (prior samples of seed 0: finite, inside the stated range), and the
probe batch becomes `preview.png`::

    options = BundleOptions(name="my-vae", output_range=(0.0, 1.0), latent_dim=16)
    bundle = build_bundle(Path("out/my-vae"), options,
                          {"decoder": Path("decoder.onnx"), "encoder": Path("encoder.onnx")})

A two-stage (StyleGAN-like) generator adds its mapping network z → w: the bundle then edits
in W (`editing_space: "w"`), the decoder takes W codes, an encoder returns them, the
truncation center is w̄ (mean of 10,000 mapped prior samples) and the probe batch is
z → mapping → decoder, as the service samples::

    bundle = build_bundle(Path("out/my-gan"), BundleOptions("my-gan", (0.0, 1.0)),
                          {"mapping": Path("mapping.onnx"), "decoder": Path("synthesis.onnx")})

Every failure is a `BundleError` whose message opens with the option or component at fault
(`latent_dim: …`, `output_range: …`, `mapping.w_dim: …`, `decoder: …`). A torch module is
exported and parity-checked first by `latentserve.generators.torch_bundle` (torch never loads
here).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from latentserve.core.arrays import F32, I64
from latentserve.core.layer_ops import broadcast_ws
from latentserve.core.seeding import noise, prior_latents, sample_latents
from latentserve.registry.bundle.builder_io import (
    COMPONENT_ORDER,
    RESOLVERS,
    Found,
    adapt_graph,
)
from latentserve.registry.bundle.feeds import encoder_rows, flat, shaped
from latentserve.registry.bundle.files import Bundle, write_bundle
from latentserve.registry.bundle.onnx_checks import (
    check_decoder,
    check_encoder,
    check_mapping,
    external_data_tensors,
    read_onnx,
)
from latentserve.registry.bundle.preview import rgb_grid_png, to_unit_range
from latentserve.registry.bundle.spec import (
    SCHEMA_VERSION,
    BundleError,
    BundleSpec,
    DecoderSpec,
    EncoderSpec,
    MappingSpec,
)
from latentserve.registry.bundle.truncation import mean_of_mapping
from latentserve.registry.quality.onnx_generator import cpu_session

RANGE_TOLERANCE = 1e-3
"""Probe outputs may leave the stated output range by this fraction of its width."""
PREVIEW_ITEMS = 16
"""Prior samples (Sample seed 0) in the probe batch and the preview of an unconditional model."""
PREVIEW_ROWS = 4
"""Rows of the preview of a conditional model (one column per class, up to PREVIEW_CLASSES)."""
PREVIEW_CLASSES = 10


@dataclass(frozen=True)
class OnnxComponent:
    """One network of a bundle: an ONNX file (a path or serialized bytes) and, where its graph
    is ambiguous, which tensor plays which role.

    Roles — mapping: `latent`, `output`; decoder: `latent`, `condition`, `output`; encoder:
    `image`, `condition`, `mean`, `logvar`. Example:
    ``OnnxComponent(Path("dec.onnx"), {"latent": "noise"})``.
    """

    source: Path | bytes
    names: Mapping[str, str] = field(default_factory=dict)


ComponentSource = OnnxComponent | Path | bytes
"""A component as `build_bundle` takes it (a bare path or bytes: every role read from the graph)."""


@dataclass(frozen=True)
class BundleOptions:
    """What the caller states about the generator; the rest is read from the ONNX graphs."""

    name: str
    """Bundle/model name: lowercase letters, digits, '_' and '-'."""
    output_range: tuple[float, float]
    """[lo, hi] of decoder outputs, e.g. (0, 1) for a sigmoid, (-1, 1) for a tanh."""
    latent_dim: int | None = None
    """N, the size of z; read from the mapping's (else the decoder's) latent input when None
    (checked against it otherwise)."""
    output_shape: tuple[int, int, int] | None = None
    """[C, H, W]; read from the decoder output (or the probe batch) when None."""
    labels: Sequence[str] = ()
    """Class label names of a class-conditional generator (empty: unconditional)."""
    max_batch_size: int = 64
    """The largest batch the service sends to the networks."""
    description: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    metric_notes: Mapping[str, str] = field(default_factory=dict)
    provenance: Mapping[str, Any] = field(default_factory=dict)
    prior_mean: float = 0.0
    """The prior z = prior_mean + prior_scale·ε (an SD-VAE latent: prior_scale 1/0.18215)."""
    prior_scale: float = 1.0
    noise_default: str = "const"
    """Noise of a decoder with noise inputs when a request names none: const, seeded or none."""


def build_bundle(out_dir: Path, options: BundleOptions,
                 components: Mapping[str, ComponentSource]) -> Bundle:
    """Check the components against `options`, probe them, write the bundle to `out_dir`
    (replacing a bundle there) with a preview grid, and return it loaded and validated.

    `components` maps a kind (`decoder`, required; `mapping`, `encoder`) to its ONNX file.
    """
    _check_options(options)
    unknown = sorted(set(components) - set(COMPONENT_ORDER))
    if unknown:
        raise BundleError(f"components: unknown component {unknown[0]!r} (known: "
                          f"{', '.join(COMPONENT_ORDER)})")
    if "decoder" not in components:
        raise BundleError("components: a bundle needs a decoder")
    found = Found(options.latent_dim,
                  None if options.output_shape is None else tuple(options.output_shape),  # type: ignore[arg-type]
                  bool(options.labels))
    with tempfile.TemporaryDirectory(prefix="latentserve-build-") as scratch:
        paths: dict[str, Path] = {}
        parts: dict[str, object] = {}
        adaptations: dict[str, str] = {}
        for kind in COMPONENT_ORDER:
            if kind not in components:
                continue
            given = components[kind]
            component = given if isinstance(given, OnnxComponent) else OnnxComponent(given)
            paths[kind] = _materialise(kind, component.source, Path(scratch))
            model = _read(kind, paths[kind])
            adapted, note = adapt_graph(kind, model, component.names, found)
            if adapted is not model:
                model, paths[kind] = adapted, Path(scratch) / f"{kind}.adapted.onnx"
                onnx.save_model(model, str(paths[kind]))
                adaptations[kind] = note
            parts[kind] = RESOLVERS[kind](paths[kind], model, component.names, found)
        decoder, mapping, encoder = parts["decoder"], parts.get("mapping"), parts.get("encoder")
        assert isinstance(decoder, DecoderSpec)
        assert mapping is None or isinstance(mapping, MappingSpec)
        assert encoder is None or isinstance(encoder, EncoderSpec)
        center = None
        if mapping is not None:
            assert found.latent_dim is not None
            center = _mean_w(paths["mapping"], mapping, found, options)
        probe = _probe_decoder(paths["decoder"], decoder, found, options,
                               None if mapping is None else (paths["mapping"], mapping))
        if found.output_shape is None:
            found.output_shape = (probe.shape[1], probe.shape[2], probe.shape[3])
        if adaptations:
            options = replace(options, provenance={**options.provenance,
                                                   "adapted_by_builder": adaptations})
        spec = _spec(options, found, decoder, encoder, mapping, center)
        if mapping is not None:
            check_mapping(paths["mapping"].parent, paths["mapping"], spec)
        check_decoder(paths["decoder"].parent, paths["decoder"], spec)
        if encoder is not None:
            check_encoder(paths["encoder"].parent, paths["encoder"], spec)
            _probe_encoder(paths["encoder"], encoder, spec, probe)
        preview = rgb_grid_png(to_unit_range(probe.images, options.output_range), probe.cols)
        return write_bundle(out_dir, spec, decoder=paths["decoder"], mapping=paths.get("mapping"),
                            encoder=paths.get("encoder"), preview_png=preview)


def _mean_w(path: Path, mapping: MappingSpec, found: Found, options: BundleOptions) -> F32:
    """w̄ of the mapping (the truncation center); onnxruntime errors name the mapping."""
    assert found.latent_dim is not None
    try:
        return mean_of_mapping(path, mapping.input, mapping.output, found.latent_dim,
                               input_shape=found.latent_shape,
                               prior=(options.prior_mean, options.prior_scale))
    except BundleError:
        raise BundleError("mapping: produces non-finite W codes for prior latents; w̄ is "
                          "undefined") from None
    except Exception as exc:  # onnxruntime raises its own untyped errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"mapping: onnxruntime failed on prior latents ({first})") from None


def _check_options(options: BundleOptions) -> None:
    lo, hi = options.output_range
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise BundleError(f"output_range: must be lo,hi with lo < hi, got {lo},{hi}")
    if options.latent_dim is not None and options.latent_dim < 1:
        raise BundleError(f"latent_dim: must be >= 1, got {options.latent_dim}")
    if options.output_shape is not None:
        shape = list(options.output_shape)
        if len(shape) != 3 or any(d < 1 for d in shape) or shape[0] not in (1, 3):
            raise BundleError(f"output_shape: must be [C, H, W] with C = 1 or 3 and positive "
                              f"sizes, got {shape}")
    if len(options.labels) == 1:
        raise BundleError("labels: a class-conditional generator needs at least 2 labels")
    if len(set(options.labels)) != len(options.labels):
        raise BundleError(f"labels: names must be distinct, got {list(options.labels)}")
    if not 1 <= options.max_batch_size <= 4096:
        raise BundleError(f"max_batch_size: must be in 1..4096, got {options.max_batch_size}")


def _materialise(kind: str, source: Path | bytes, scratch: Path) -> Path:
    """A path holding the component: the caller's file, or bytes written to the scratch dir."""
    if isinstance(source, bytes):
        path = scratch / kind / f"{kind}.onnx"
        path.parent.mkdir()
        path.write_bytes(source)
        return path
    path = Path(source)
    if not path.is_file():
        raise BundleError(f"{kind}: {path} is not a file")
    return path


def _read(kind: str, path: Path) -> onnx.ModelProto:
    model = read_onnx(path)
    external = external_data_tensors(model)
    if external:
        raise BundleError(
            f"{kind}: {path} keeps tensors {external[:3]} in external data files; a bundle's "
            "ONNX files hold their weights inline (re-save it: onnx.save_model(onnx.load(p), "
            "p, save_as_external_data=False))")
    return model


def _spec(options: BundleOptions, found: Found, decoder: DecoderSpec,
          encoder: EncoderSpec | None, mapping: MappingSpec | None,
          center: F32 | None) -> BundleSpec:
    assert found.latent_dim is not None and found.output_shape is not None
    raw: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "name": options.name,
        "description": options.description,
        "latent_dim": found.latent_dim,
        "output": {"shape": list(found.output_shape), "range": list(options.output_range)},
        "condition": {"num_classes": len(options.labels), "labels": list(options.labels)}
        if options.labels else None,
        "latent_shape": None if found.latent_shape is None else list(found.latent_shape),
        "prior": {"kind": "normal", "mean": options.prior_mean, "scale": options.prior_scale},
        "decoder": {**decoder.model_dump(), "noise_default": options.noise_default},
        "mapping": None if mapping is None else {
            **mapping.model_dump(), "num_ws": found.num_ws,
            "output_per_layer": found.output_per_layer},
        "editing_space": "z" if mapping is None else "w",
        "truncation_center": None if center is None else [float(v) for v in center],
        "encoder": None if encoder is None else encoder.model_dump(),
        "max_batch_size": options.max_batch_size,
        "metrics": dict(options.metrics),
        "metric_notes": dict(options.metric_notes),
        "provenance": {"built_by": "latentserve.registry.bundle.builder", "source": "onnx",
                       **options.provenance},
    }
    return BundleSpec.parse(raw, source="bundle options")


@dataclass(frozen=True)
class _Probe:
    latents: F32
    labels: I64 | None
    images: F32
    cols: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape)


PROBE_THREADS = 2
"""onnxruntime intra-op threads of the probe sessions."""


def _run(kind: str, session: ort.InferenceSession, output: str,
         feeds: Mapping[str, np.ndarray], batch: int) -> F32:  # fmt: skip
    """One output over the feeds in chunks of `batch` rows; ORT errors name the component."""
    rows = len(next(iter(feeds.values())))
    chunks = []
    try:
        for lo in range(0, rows, batch):
            chunk = {k: v[lo : lo + batch] for k, v in feeds.items()}
            chunks.append(np.asarray(session.run([output], chunk)[0], np.float32))
    except Exception as exc:  # onnxruntime raises its own untyped errors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(f"{kind}: onnxruntime failed on a probe batch ({first})") from None
    return np.concatenate(chunks)


def _probe_decoder(path: Path, decoder: DecoderSpec, found: Found, options: BundleOptions,
                   mapping: tuple[Path, MappingSpec] | None) -> _Probe:
    """Decode the preview batch (prior samples, mapped to W by a mapping as the service's
    Sample does); check its shape, finiteness and range."""
    assert found.latent_dim is not None
    classes = len(options.labels)
    if classes:
        cols = min(classes, PREVIEW_CLASSES)
        z = np.repeat(sample_latents(0, PREVIEW_ROWS, found.latent_dim), cols, axis=0)
        labels: I64 | None = np.tile(np.arange(cols, dtype=np.int64), PREVIEW_ROWS)
    else:
        cols, labels = PREVIEW_ITEMS // 2, None
        z = sample_latents(0, PREVIEW_ITEMS, found.latent_dim)
    z = prior_latents(z, options.prior_mean, options.prior_scale)
    prior_shape = found.latent_shape or (found.latent_dim,)
    if mapping is not None:
        z = flat(_run("mapping", cpu_session(mapping[0], threads=PROBE_THREADS),
                      mapping[1].output, {mapping[1].input: shaped(z, prior_shape)},
                      options.max_batch_size))
        if found.num_ws and not found.output_per_layer:
            z = broadcast_ws(z, found.num_ws)
        if not np.all(np.isfinite(z)):
            raise BundleError("mapping: produces non-finite W codes for prior latents (Sample "
                              "seed 0)")
    if mapping is None:
        latent_shape: tuple[int, ...] = prior_shape
    elif found.num_ws:
        latent_shape = (found.num_ws, z.shape[1] // found.num_ws)
    else:
        latent_shape = (z.shape[1],)
    feeds: dict[str, np.ndarray] = {decoder.input: shaped(z, latent_shape)}
    for index, entry in enumerate(decoder.noise_inputs):  # the const noise the service feeds
        one = noise(0, 0, index, entry.shape)
        feeds[entry.name] = np.ascontiguousarray(np.broadcast_to(one, (len(z), *one.shape)))
    if decoder.condition_input is not None and labels is not None:
        feeds[decoder.condition_input] = labels
    images = _run("decoder", cpu_session(path, threads=PROBE_THREADS), decoder.output, feeds,
                  options.max_batch_size)
    if images.ndim != 4 or images.shape[0] != len(z):
        raise BundleError(f"decoder: output {decoder.output!r} has shape "
                          f"{list(images.shape)} for {len(z)} latents; expected [B, C, H, W]")
    got = tuple(int(d) for d in images.shape[1:])
    if found.output_shape is not None and got != tuple(found.output_shape):
        raise BundleError(f"output_shape: {list(found.output_shape)} was stated but the decoder "
                          f"produced items of shape {list(got)}")
    if got[0] not in (1, 3):
        raise BundleError(f"output_shape: the decoder produces {got[0]} channels per item "
                          f"(shape {list(got)}); latentserve serves [C, H, W] images with C = 1 "
                          "or 3 (is the output laid out channels-last?)")
    if not np.all(np.isfinite(images)):
        raise BundleError("decoder: produces non-finite values for prior latents (Sample seed 0)")
    lo, hi = options.output_range
    slack = RANGE_TOLERANCE * (hi - lo)
    seen_lo, seen_hi = float(images.min()), float(images.max())
    if seen_lo < lo - slack or seen_hi > hi + slack:
        raise BundleError(f"output_range: the decoder's outputs span [{seen_lo:.4g}, "
                          f"{seen_hi:.4g}] on {len(z)} prior samples, outside the stated range "
                          f"[{lo:g}, {hi:g}]; {range_hint(path, decoder.output, (lo, hi))}")
    return _Probe(z, labels, images, cols)


BOUNDED_OPS = frozenset({"Tanh", "Sigmoid", "Clip", "HardSigmoid", "Softmax"})
"""Final ops that bound a decoder's output."""


def range_hint(path: Path, output: str, stated: tuple[float, float]) -> str:
    """How to fix an output range the probe refuted: a decoder ending in an unbounded op (a
    diffusers VAE's conv_out) needs a clamp or a tanh; a bounded one, the range it has."""
    lo, hi = stated
    last = next((n for n in read_onnx(path).graph.node if output in n.output), None)
    op = "?" if last is None else last.op_type
    if op in BOUNDED_OPS:
        return (f"the decoder ends in {op}: state the range it has (e.g. -1,1 for Tanh, 0,1 "
                "for Sigmoid)")
    return (f"the decoder ends in {op}, which does not bound its output: end it with a clamp "
            f"or a tanh before exporting (torch: `x.clamp({lo:g}, {hi:g})`, or "
            f"`torch.tanh(x)` for -1,1) — or state the range it really has")


def _probe_encoder(path: Path, encoder: EncoderSpec, spec: BundleSpec, probe: _Probe) -> None:
    """Encode the probe images: the mean (and log-variance) must be finite [B, N]."""
    feeds: dict[str, np.ndarray] = {encoder.input: probe.images}
    if encoder.condition_input is not None and probe.labels is not None:
        feeds[encoder.condition_input] = probe.labels
    session = cpu_session(path, threads=PROBE_THREADS)
    for output in [encoder.output_mean, encoder.output_logvar]:
        if output is None:
            continue
        codes = _run("encoder", session, output, feeds, spec.max_batch_size)
        if encoder_rows(spec, codes).shape != (len(probe.images), spec.row_dim):
            raise BundleError(f"encoder: output {output!r} has shape {list(codes.shape)} for "
                              f"{len(probe.images)} images; expected "
                              f"[{len(probe.images)}, {', '.join(map(str, spec.editing_shape))}]")
        if not np.all(np.isfinite(codes)):
            raise BundleError(f"encoder: output {output!r} is non-finite on decoded prior "
                              "samples")
