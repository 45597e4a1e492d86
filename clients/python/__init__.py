"""latentserve.client: the Python SDK of the latentserve GeneratorService (gRPC).

Needs only grpcio, grpcio-status, protobuf and numpy; the image helpers (`to_pil`, `grid`,
PIL encode input, GIF/APNG `save_animation`) need Pillow, the `[images]` extra, and MP4 export
PyAV, the `[video]` extra. An interpolation of k keyframes with `steps=s` has
(k - 1) * (s - 1) + 1 frames (3 seeds, steps=8 → 15); its `grid()` is one row. Example::

    from latentserve.client import Client

    with Client("127.0.0.1:50051") as client:
        out = client.sample("sprites-vae", n=8, seed=1, truncation_psi=0.7, class_labels=[0])
        out.latents.shape, out.images.shape, out.model.version   # (8, 4) (8, 1, 64, 64) 1
        path = client.interpolate("shapes3d", seeds=[1, 2, 3], steps=8, class_labels=[2])
        sweep = client.edit("sprites-vae", seeds=[1, 2], direction="scale",
                            strengths=[-2, -1, 0, 1, 2], conditional_on=["pos_y"],
                            class_labels=[0, 2])
        z = client.encode("sprites-vae", out.images, class_labels=[0]).latents
        again = client.decode("sprites-vae", z, class_labels=[0])
        path.grid().save("strip.png")            # [images]: one row of 15 frames
        path.save_animation("walk.gif", scale=4) # [images]; .mp4 needs [video]
"""

from latentserve.core.tensors import TensorError, from_tensor, to_tensor

from .aio import AsyncClient
from .client import Client
from .errors import (
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    LatentServeClientError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
)
from .refs import ModelRef, parse_model_ref
from .results import (
    DirectionInfo,
    DirectionQuality,
    EncodeResult,
    GenerateResult,
    ModelInfo,
    ModelSummary,
    ResolvedModel,
)

__all__ = [
    "AsyncClient",
    "Client",
    "DeadlineExceededError",
    "DirectionInfo",
    "DirectionQuality",
    "EncodeResult",
    "FailedPreconditionError",
    "FieldViolation",
    "GenerateResult",
    "InternalError",
    "InvalidArgumentError",
    "LatentServeClientError",
    "ModelInfo",
    "ModelRef",
    "ModelSummary",
    "NotFoundError",
    "ResolvedModel",
    "ResourceExhaustedError",
    "TensorError",
    "UnavailableError",
    "from_tensor",
    "parse_model_ref",
    "to_tensor",
]
