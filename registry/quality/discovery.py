"""Direction discovery for any bundle, in numpy on the bundle's ONNX files (no torch); the
fits themselves (on latents or weights, no bundle) are in `direction_fits`:

- `sefa`: SeFa — A is the first weight acting on the latent, read from the decoder's
  initializers;
- `pca`: GANSpace — for the isotropic N(0, I) prior, PCA of an early decoder activation over
  prior samples, regressed back onto the latents; with given latents (e.g. encoded data, not
  isotropic) plain PCA of those latents (`pca_of_latents`);
- supervised InterFaceGAN normals of labelled latents need no bundle:
  `direction_fits.supervised`.

A two-stage (StyleGAN-like) bundle edits in W, and so do its directions: SeFa reads every
weight acting on the decoder's W input, stacked with unit rows (as SeFa does with StyleGAN's
style affines; `weight` picks one instead), and PCA is
GANSpace's StyleGAN variant, PCA of sampled w = mapping(z) itself; σ is measured on those
mapped samples, and supervised fits take W latents (given, or encoded images). Example::

    found = sefa(load_bundle(Path("out/my-vae")), k=4)
    found[0].name, found[0].sigma, found[0].score     # "sefa0", 1.0, top eigenvalue
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import onnx

from latentserve.core.arrays import F64
from latentserve.core.seeding import sample_latents
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.bundle.onnx_graph import (
    early_activation,
    first_latent_layer,
    style_layers,
    with_outputs,
)
from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.quality.direction_fits import (
    Discovered,
    pca_of_activations,
    pca_of_latents,
    sefa_from_matrix,
)
from latentserve.registry.quality.onnx_generator import OnnxGenerator, cpu_session

PCA_SAMPLES = 4096
"""Prior samples (Sample seed 0) whose activations PCA sees."""
NOT_SPATIAL = ("SeFa factorises a weight acting on a vector latent; find directions of a "
               "spatial latent with --method pca (GANSpace on an early activation) or "
               "--method supervised (labelled latents or images)")


def sefa(bundle: Bundle, k: int, *, weight: str | None = None,
         names: Sequence[str] | None = None, samples: int = PCA_SAMPLES,
         layers: tuple[int, int] | None = None) -> list[Discovered]:
    """SeFa directions of a bundle, A read from its decoder (or the initializer `weight`); in
    W (two-stage), σ is the std of `samples` mapped prior samples along each direction.

    A W+ synthesis stacks the style affines reading ws[:, l] for l in `layers` [start, end)
    (default all), as SeFa does for StyleGAN; the directions then default to that range.
    A spatial latent ([C, H, W] with H·W > 1) is refused: SeFa has no weight to factorise."""
    spec = bundle.spec
    shape = tuple(getattr(spec, "latent_shape", None) or ())
    if spec.mapping is None and len(shape) > 1 and math.prod(shape[1:]) > 1:
        raise BundleError(f"method: the latent is spatial {list(shape)}; {NOT_SPATIAL}")
    num_ws = int(getattr(spec, "num_ws", 0) or 0)
    if layers is not None and not num_ws:
        raise BundleError("layers: only a W+ generator (mapping.num_ws) has layers to pick "
                          "style weights from")
    model = onnx.load(str(bundle.decoder_path))
    if spec.mapping is not None and weight is None:
        found = style_layers(model, spec.decoder.input, spec.editing_dim)
        span = layers or (0, num_ws)
        if num_ws:
            found = [f for f in found if f.ws_index is None or span[0] <= f.ws_index < span[1]]
            if not found:
                raise BundleError(f"layers: no style weight reads ws[:, l] for l in "
                                  f"[{span[0]}, {span[1]})")
        stacked = np.concatenate([_unit_rows(layer.matrix) for layer in found])
        reads = f"ws[:, {span[0]}:{span[1]}]" if num_ws else "w"
        where = (f"{len(found)} weights reading {reads} stacked [{stacked.shape[0]} × "
                 f"{stacked.shape[1]}], unit rows")
        out = sefa_from_matrix(stacked, k, names=names, where=where,
                               latents=mapped_prior(bundle, samples), what=MAPPED)
        return [with_layers(d, layers) for d in out] if layers is not None else out
    layer = first_latent_layer(model, spec.decoder.input, spec.editing_dim, weight)
    if layer.spatial:
        raise BundleError(f"method: the latent reaches {layer.op} {layer.node!r} as a spatial "
                          f"map {list(layer.spatial)}; {NOT_SPATIAL}")
    where = f"{layer.op} {layer.node!r} weight {layer.weight!r} [{layer.matrix.shape[0]} × " \
            f"{layer.matrix.shape[1]}]"
    if spec.mapping is None:
        return sefa_from_matrix(layer.matrix, k, names=names, where=where)
    return sefa_from_matrix(layer.matrix, k, names=names, where=where,
                            latents=mapped_prior(bundle, samples), what=MAPPED)


def _unit_rows(matrix: F64) -> F64:
    """Rows scaled to unit length (SeFa's normalisation of the style weights)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    out: F64 = matrix / np.where(norms > 0, norms, 1.0)
    return out


MAPPED = "mapped prior samples w"


def with_layers(found: Discovered, layers: tuple[int, int]) -> Discovered:
    """`found` with its default W+ layer range set (`DirectionSpec.layers`)."""
    return replace(found, layers=layers,
                   unit=f"{found.unit}; applied to W+ layers [{layers[0]}, {layers[1]})")


def mapped_prior(bundle: Bundle, samples: int) -> F64:
    """W codes of `samples` prior latents (Sample seed 0, untruncated) of a two-stage bundle
    (one w per sample: a W+ mapping's first layer)."""
    rows = OnnxGenerator(bundle).sample_latents(0, samples).astype(np.float64)
    return rows[:, : bundle.spec.editing_dim]


def pca(bundle: Bundle, k: int, *, layer: str | None = None, samples: int = PCA_SAMPLES,
        names: Sequence[str] | None = None, weight: str | None = None) -> list[Discovered]:
    """GANSpace directions of a bundle: PCA of the first activation after the latent's first
    layer (or after the layer whose weight is `weight`, or of the tensor `layer`) over
    `samples` prior latents, regressed onto the latents.

    A two-stage bundle gets GANSpace's StyleGAN variant: PCA of `samples` mapped prior
    samples w (no `layer` or `weight`), σ their std along each component."""
    spec = bundle.spec
    if layer is not None and weight is not None:
        raise BundleError("weight: give --layer (the tensor PCA sees) or --weight (PCA sees "
                          "the first activation after that weight's layer), not both")
    if spec.mapping is not None:
        if layer is not None or weight is not None:
            option = "layer" if layer is not None else "weight"
            raise BundleError(f"{option}: a two-stage bundle's PCA is of sampled w = "
                              f"mapping(z) itself (GANSpace for StyleGAN); --{option} does "
                              "not apply")
        return pca_of_latents(mapped_prior(bundle, samples), k, names=names, what=MAPPED)
    model = onnx.load(str(bundle.decoder_path))
    if layer is None:
        layer = early_activation(model, first_latent_layer(model, spec.decoder.input,
                                                           spec.latent_dim, weight))
    elif not any(layer in n.output for n in model.graph.node):
        raise BundleError(f"layer: the decoder has no tensor named {layer!r}")
    session = cpu_session(with_outputs(model, [layer], only=True))
    z = sample_latents(0, samples, spec.latent_dim)
    shape = tuple(getattr(spec, "prior_shape", ()) or (spec.latent_dim,))
    prior = getattr(spec, "prior", None)
    scale, mean = float(getattr(prior, "scale", 1.0)), float(getattr(prior, "mean", 0.0))
    chunks = []
    for lo in range(0, samples, spec.max_batch_size):
        rows = z[lo : lo + spec.max_batch_size]
        fed = (mean + scale * rows).astype(np.float32).reshape(len(rows), *shape)
        feeds: dict[str, np.ndarray] = {spec.decoder.input: fed}
        if spec.decoder.condition_input is not None:
            items = np.arange(lo, lo + len(rows), dtype=np.int64)
            feeds[spec.decoder.condition_input] = items % spec.num_classes
        out = session.run([layer], feeds)[0]
        chunks.append(np.asarray(out, np.float64).reshape(len(rows), -1))
    return pca_of_activations(mean + scale * z, np.concatenate(chunks), k, names=names,
                              layer=repr(layer))


