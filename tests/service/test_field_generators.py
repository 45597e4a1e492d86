"""Generators as the field builds them, end to end: a lucidrains-style StyleGAN2 (W+ synthesis with
per-layer noise inputs) and a diffusers-style VAE decoder (spatial latent [4, 16, 16], prior scale
1/0.18215), each exported by torch, built by the project's builder, registered in a real MLflow
registry and served by a real server, then used through the SDK.

StyleMix is checked bit for bit against a NumPy + onnxruntime reference and across the embedded
and Triton backends; seeded noise across batching and backends.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from latentserve.cli.client_commands import app as client_app
from latentserve.cli.mix_command import app as mix_app
from latentserve.client import Client, FailedPreconditionError, InvalidArgumentError
from latentserve.core import layer_ops, seeding
from latentserve.registry.bundle.files import Bundle
from latentserve.registry.quality.onnx_generator import cpu_session
from latentserve.service.devtools.background import BackgroundServer
from latentserve.service.settings import Settings
from tests.fixtures import field_generators as fg
from tests.fixtures.field_generators import NUM_WS, SD_SCALING_FACTOR, STYLE, VAE, W_DIM
from tests.fixtures.service import service_settings

field_bundles = fg.field_bundles
field_registry = fg.field_registry


@pytest.fixture(scope="module")
def address(field_registry: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = service_settings(field_registry, tmp_path_factory.mktemp("field-cache"),
                                default_model=STYLE)
    with BackgroundServer(settings) as bg:
        yield bg.address


@pytest.fixture(scope="module")
def served(address: str) -> Iterator[Client]:
    with Client(address) as client:
        yield client


def test_get_model_states_w_plus_noise_and_the_spatial_latent(served: Client) -> None:
    style = served.get_model(STYLE)
    assert style.num_ws == NUM_WS and style.w_dim == W_DIM
    assert style.editing_shape == (NUM_WS, W_DIM) and style.editing_space == "w+"
    assert [n for n, _ in style.noise_inputs] == [f"noise{i}" for i in range(5)]
    assert style.noise_inputs[0][1] == (1, 4, 4) and style.noise_default == "seeded"
    assert style.direction("coarse0").layers == (0, 2) and style.direction("all0").layers is None
    vae = served.get_model(VAE)
    assert vae.latent_shape == (4, 16, 16) and vae.editing_shape == (4, 16, 16)
    assert vae.prior_scale == pytest.approx(1 / SD_SCALING_FACTOR) and vae.prior_mean == 0.0
    assert vae.num_ws == 0 and vae.noise_inputs == ()


def test_the_vae_samples_scaled_spatial_latents_and_decodes_them_shaped(served: Client) -> None:
    out = served.sample(VAE, n=3, seed=5)
    assert out.latents.shape == (3, 4, 16, 16) and out.latent_space == "z"
    eps = seeding.sample_latents(5, 3, 4 * 16 * 16)
    want = (eps.astype(np.float64) / SD_SCALING_FACTOR).astype(np.float32)
    np.testing.assert_array_equal(out.latents.reshape(3, -1), want)
    again = served.decode(VAE, out.latents)
    flat = served.decode(VAE, out.latents.reshape(3, -1))
    np.testing.assert_array_equal(again.images, out.images)
    np.testing.assert_array_equal(flat.images, out.images)
    assert again.latents.shape == (3, 4, 16, 16)


def test_a_wrongly_shaped_latent_names_the_shape(served: Client) -> None:
    with pytest.raises(InvalidArgumentError, match=r"latent_shape \[4, 16, 16\]"):
        served.decode(VAE, np.zeros((1, 4, 16, 8), np.float32))


def test_truncation_cutoff_truncates_only_the_first_layers(served: Client) -> None:
    plain = served.sample(STYLE, n=2, seed=3, output="latents")
    cut = served.sample(STYLE, n=2, seed=3, truncation_psi=0.5, truncation_cutoff=2,
                        output="latents")
    assert cut.latents.shape == (2, NUM_WS, W_DIM) and cut.latent_space == "w+"
    np.testing.assert_array_equal(cut.latents[:, 2:], plain.latents[:, 2:])
    assert not np.array_equal(cut.latents[:, :2], plain.latents[:, :2])
    with pytest.raises(FailedPreconditionError, match="truncation_cutoff"):
        served.sample(VAE, n=1, truncation_psi=0.5, truncation_cutoff=2)


def test_layer_range_edits_move_only_their_layers(served: Client) -> None:
    base = served.sample(STYLE, n=1, seed=4, output="latents").latents
    own = served.edit(STYLE, seeds=[4], direction="coarse0", strengths=[0.0, 2.0])
    assert own.latents.shape == (2, NUM_WS, W_DIM)
    np.testing.assert_array_equal(own.latents[0], base[0])
    np.testing.assert_array_equal(own.latents[1, 2:], base[0, 2:])  # default range [0, 2)
    assert not np.array_equal(own.latents[1, :2], base[0, :2])
    fine = served.edit(STYLE, seeds=[4], direction="coarse0", strengths=[2.0], layers=(3, 6))
    np.testing.assert_array_equal(fine.latents[0, :3], base[0, :3])
    moved = fine.latents[0, 3:].astype(np.float64) - base[0, 3:]
    sigma = served.get_model(STYLE).direction("coarse0").sigma
    np.testing.assert_allclose(np.linalg.norm(moved, axis=1), 2.0 * sigma, rtol=1e-4)
    with pytest.raises(InvalidArgumentError, match="layers"):
        served.edit(STYLE, seeds=[4], direction="coarse0", strengths=[1.0], layers=(2, 9))


def _reference_mix(bundle: Bundle, rows: list[int], cols: list[int], layers: tuple[int, int],
                   noise_seed: int) -> np.ndarray:
    """The style-mixing grid computed without the service: numpy seeds, onnxruntime mapping
    and synthesis, numpy mixing, seeded noise of the published definition."""
    spec = bundle.spec
    mapping = cpu_session(bundle.root / "mapping.onnx")
    z = seeding.seed_latents(rows + cols, spec.latent_dim)
    (w,) = mapping.run(["w"], {"z": z})
    ws = layer_ops.broadcast_ws(w, NUM_WS)
    grid = layer_ops.style_mix(ws[:len(rows)], ws[len(rows):], NUM_WS, layers)
    n = len(grid)
    feeds = {"ws": grid.reshape(n, NUM_WS, W_DIM)}
    for k, entry in enumerate(spec.decoder.noise_inputs):
        feeds[entry.name] = np.stack([seeding.noise(noise_seed, i, k, entry.shape)
                                      for i in range(n)])
    (images,) = cpu_session(bundle.decoder_path).run(["x"], feeds)
    return np.asarray(images)


def test_style_mix_is_the_numpy_onnxruntime_reference_bit_for_bit(
        served: Client, field_bundles: dict[str, Bundle]) -> None:
    mix = served.style_mix(STYLE, row_seeds=[1, 2], col_seeds=[7, 8, 9], layers=(0, 3),
                           noise="seeded", noise_seed=11)
    assert mix.latents.shape == (6, NUM_WS, W_DIM) and mix.columns == 3
    want = _reference_mix(field_bundles[STYLE], [1, 2], [7, 8, 9], (0, 3), 11)
    np.testing.assert_array_equal(mix.images, want)
    rows = served.sample(STYLE, n=1, seed=2, output="latents").latents
    np.testing.assert_array_equal(mix.latents[3, 3:], rows[0, 3:])  # row 1 keeps its fine layers
    sources = served.style_mix(STYLE, row_seeds=[1, 2], col_seeds=[7, 8, 9], layers=(0, 3),
                               include_sources=True, output="latents")
    assert len(sources) == 2 + 3 + 6
    with pytest.raises(FailedPreconditionError, match="W\\+"):
        served.style_mix(VAE, row_seeds=[1], col_seeds=[2], layers=(0, 1))


def test_seeded_noise_is_the_same_whatever_the_batching(served: Client) -> None:
    one = served.sample(STYLE, n=1, seed=21, noise="seeded")
    eight = served.sample(STYLE, n=8, seed=21, noise="seeded")
    np.testing.assert_array_equal(one.images[0], eight.images[0])
    latents = eight.latents
    with ThreadPoolExecutor(4) as pool:  # concurrent requests share backend batches
        parts = list(pool.map(lambda i: served.decode(STYLE, latents[i:i + 1], noise="seeded",
                                                      noise_seed=5), range(8)))
    alone = served.decode(STYLE, latents[:1], noise="seeded", noise_seed=5)
    for part in parts:
        assert part.images is not None
    np.testing.assert_array_equal(parts[0].images, alone.images)
    other = served.decode(STYLE, latents[:1], noise="seeded", noise_seed=6)
    const = [served.decode(STYLE, latents[:1], noise="const", noise_seed=s) for s in (1, 2)]
    assert not np.array_equal(other.images, alone.images)  # and not a cached answer
    np.testing.assert_array_equal(const[0].images, const[1].images)


def test_noise_on_a_model_without_noise_inputs_is_refused(served: Client) -> None:
    with pytest.raises(FailedPreconditionError, match="noise"):
        served.sample(VAE, n=1, noise="seeded")


def test_style_mix_and_seeded_noise_are_bit_identical_on_triton(
        field_registry: str, served: Client, triton_settings: Settings,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    triton = {k: getattr(triton_settings, k)
              for k in ("backend", "triton_url", "triton_flavor", "triton_model_control")}
    settings = service_settings(field_registry, tmp_path_factory.mktemp("field-triton"),
                                default_model=STYLE, **triton)
    with BackgroundServer(settings) as bg, Client(bg.address) as on_triton:
        for client_call in (
            lambda c: c.style_mix(STYLE, row_seeds=[1, 2], col_seeds=[7, 8, 9], layers=(2, 6),
                                  truncation_psi=0.7, truncation_cutoff=4),
            lambda c: c.sample(STYLE, n=5, seed=3, noise="seeded"),
            lambda c: c.sample(VAE, n=2, seed=3),
        ):
            a, b = client_call(served), client_call(on_triton)
            np.testing.assert_array_equal(a.latents, b.latents)
            np.testing.assert_array_equal(a.images, b.images)


def test_cli_mix_edit_layers_and_info(address: str, served: Client, tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["--model", STYLE, "--address", address]
    mixed = runner.invoke(mix_app, [*common, "--rows", "1,2", "--cols", "7,8,9", "--layers",
                                    "0:3", "--sources", "--out", str(tmp_path / "mix.png")])
    assert mixed.exit_code == 0, mixed.output
    grid = Image.open(tmp_path / "mix.png")
    assert grid.size == (4 * 16 + 3 * 2, 3 * 16 + 2 * 2)  # (C + 1) × (R + 1) cells, padding 2
    edited = runner.invoke(client_app, ["edit", *common, "--seeds", "4", "--direction",
                                        "coarse0", "--strengths=0,2", "--layers", "3:6",
                                        "--out", str(tmp_path / "e.png"), "--json"])
    assert edited.exit_code == 0, edited.output
    bad = runner.invoke(client_app, ["edit", *common, "--direction", "coarse0",
                                     "--layers", "3-6"])
    assert bad.exit_code != 0 and "START:END" in bad.output
    shown = runner.invoke(client_app, ["info", STYLE, "--address", address])
    assert shown.exit_code == 0, shown.output
    assert "W+ [6, 32]" in shown.output and "layers 0:2" in shown.output
    assert "noise inputs" in shown.output
