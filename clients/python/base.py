"""What Client and AsyncClient share apart from I/O: settings, model refs, result building.

Example (internal; use `Client` or `AsyncClient`)::

    core = ClientCore(ClientConfig("127.0.0.1:50051"))
    ref = core.ref("sprites-vae@staging", None, None)
"""

from __future__ import annotations

import threading

import grpc

from latentserve.v1 import generator_pb2 as pb

from .refs import ModelArg, ModelRef, parse_model_ref
from .results import GenerateResult, ModelInfo, generate_result_from_proto
from .transport import ClientConfig

RangeKey = tuple[str, int]


class ClientCore:
    """Config plus a cache of each served version's float output range (for `to_pil`)."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._ranges: dict[RangeKey, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self.closed = False

    def ref(self, model: ModelArg, version: int | None, alias: str | None) -> ModelRef:
        """The ModelRef for a method's `model` argument and `version=`/`alias=` keywords."""
        return parse_model_ref(model, version=version, alias=alias)

    def check_open(self) -> None:
        """Raise if the client was closed (a closed client does not reconnect)."""
        if self.closed:
            raise RuntimeError(f"client for {self.config.address} is closed")

    def make_channel(self, aio: bool) -> grpc.Channel:
        """A new (sync or grpc.aio) channel to the configured address."""
        cfg = self.config
        options = cfg.channel_options()
        if aio:
            if cfg.credentials is not None:
                return grpc.aio.secure_channel(cfg.address, cfg.credentials, options=options)
            return grpc.aio.insecure_channel(cfg.address, options=options)
        if cfg.credentials is not None:
            return grpc.secure_channel(cfg.address, cfg.credentials, options=options)
        return grpc.insecure_channel(cfg.address, options=options)

    def remember(self, info: ModelInfo) -> None:
        """Cache the output range of a described version."""
        with self._lock:
            self._ranges[(info.model.name, info.model.version)] = info.output_range

    def needs_range(self, resp: pb.GenerateResponse) -> RangeKey | None:
        """The version whose range must be fetched before `resp` can become pixels, if any."""
        if not resp.HasField("images") or resp.images.dtype != pb.D_TYPE_FLOAT32:
            return None
        key = (resp.model.name, int(resp.model.version))
        with self._lock:
            return None if key in self._ranges else key

    def result(self, resp: pb.GenerateResponse) -> GenerateResult:
        """GenerateResult for `resp`, with the cached output range when it has float images."""
        with self._lock:
            known = self._ranges.get((resp.model.name, int(resp.model.version)))
        float_images = resp.HasField("images") and resp.images.dtype == pb.D_TYPE_FLOAT32
        return generate_result_from_proto(resp, known if float_images else None)
