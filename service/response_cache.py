"""The exact response cache: an LRU of finished responses, bounded in bytes.

A generating RPC's output is fully determined by its request and the model version that
serves it (seeded latents, given latents or images, a resolved version), so a repeated request
(an explorer re-rendering a slider position, a page reloading a grid) can be answered with the
response computed the first time. The key is the version that serves the request as the
response names it (name, version, the version's registry identity, alias) plus the rest of
the request (all but its `ModelRef`), serialized deterministically and hashed (128 bits of
SHA-256, plus its length):
a request never sees another version's bytes (nor those of an earlier version that had the same
number before its model was deleted and registered again), and moving an alias makes new
requests miss. Each entry is counted as the memory it really holds (`charged_bytes`).

Values are the response messages themselves, shared read-only between hits (gRPC serializes
them; nothing mutates a returned response). Requests larger than `max_key_bytes` skip the
cache (hashing them could cost more than it saves), responses larger than an eighth of the
capacity are not stored, failed requests store nothing, and the entries of a version are
dropped when the version is retired. Two identical requests in flight at once are both
computed (the first to finish is stored). Example::

    cache = ResponseCache(256 << 20, 1 << 20, metrics)
    lookup = cache.lookup("Sample", request, lease, outcome, pb.GenerateResponse)
    if lookup.hit is not None:
        return lookup.hit
    return lookup.keep(await compute())
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from latentserve.service.grpc_errors import Outcome
from latentserve.service.metrics import ServiceMetrics
from latentserve.service.models.lease import Lease

M = TypeVar("M", bound=Message)

MAX_ENTRY_SHARE = 8
"""A response larger than capacity / MAX_ENTRY_SHARE is not stored (one entry never flushes
the whole cache)."""
_MODEL_REF_TAG = (1 << 3) | 2
"""Wire tag of a request's `model` (field 1, length-delimited): every cached request has it."""
ENTRY_OVERHEAD_BYTES = 1152
"""Bytes charged per entry on top of the response's serialized size: the parsed message's
arena, the key and the LRU's bookkeeping (measured: 0.8-1.1 KiB per entry; charging 256 let
a cache of small responses hold ~4x its capacity)."""
ARENA_SLACK_SHARE = 64
"""A parsed response takes about 1/64 more than its serialized size (arena block rounding)."""


def charged_bytes(response: Message) -> int:
    """The memory one cached response is counted as (see ENTRY_OVERHEAD_BYTES)."""
    size = response.ByteSize()
    return size + size // ARENA_SLACK_SHARE + ENTRY_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class CacheKey:
    """What identifies a response: the RPC, the resolved model and the canonical request."""

    rpc: str
    name: str
    version: int
    identity: str
    alias: str
    request_bytes: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class _Entry:
    response: Message
    items: int
    size: int


class Lookup(Generic[M]):
    """One request's cache lookup: `hit` (the stored response) or `keep` to store its result."""

    __slots__ = ("_cache", "_key", "_lease", "_outcome", "hit")

    def __init__(self, cache: ResponseCache | None, key: CacheKey | None, lease: Lease,
                 outcome: Outcome, hit: M | None) -> None:
        self._cache, self._key, self._lease, self._outcome = cache, key, lease, outcome
        self.hit = hit

    def keep(self, response: M) -> M:
        """Store `response` (the request succeeded) and return it."""
        if self._cache is not None and self._key is not None and not self._lease.served.retired:
            self._cache.put(self._key, response, self._outcome.items)
        return response


class ResponseCache:
    """An in-memory LRU of responses keyed by `CacheKey`, holding at most `capacity_bytes`."""

    def __init__(self, capacity_bytes: int, max_key_bytes: int,
                 metrics: ServiceMetrics) -> None:
        self.capacity_bytes = capacity_bytes
        self.max_key_bytes = max_key_bytes
        self._metrics = metrics
        self._entries: collections.OrderedDict[CacheKey, _Entry] = collections.OrderedDict()
        self._bytes = 0

    @property
    def charged(self) -> int:
        """Bytes the entries are counted as now (`charged_bytes` each)."""
        return self._bytes

    @property
    def enabled(self) -> bool:
        return self.capacity_bytes > 0

    # ------------------------------------------------------------------ lookups
    def lookup(self, rpc: str, request: Message, lease: Lease, outcome: Outcome,
               response_type: type[M]) -> Lookup[M]:
        """The stored `response_type` for `request` served by `lease` (recorded on `outcome`),
        or a miss whose `keep` stores the result."""
        if not self.enabled:
            return Lookup(None, None, lease, outcome, None)
        name, version = lease.served.name, lease.served.version
        canonical = _canonical(request, self.max_key_bytes)
        if canonical is None:
            self._metrics.cache_skips.labels(rpc=rpc, reason="request_size").inc()
            return Lookup(None, None, lease, outcome, None)
        key = CacheKey(rpc, name, version, lease.served.identity, lease.alias, *canonical)
        entry = self._entries.get(key)
        if entry is None:
            self._metrics.cache_misses.labels(rpc=rpc, model=name).inc()
            return Lookup(self, key, lease, outcome, None)
        self._entries.move_to_end(key)
        self._metrics.cache_hits.labels(rpc=rpc, model=name).inc()
        outcome.model, outcome.version, outcome.items = name, version, entry.items
        assert isinstance(entry.response, response_type)  # the key names the RPC
        return Lookup(None, None, lease, outcome, entry.response)

    def put(self, key: CacheKey, response: Message, items: int) -> None:
        """Store a response (not when larger than capacity / MAX_ENTRY_SHARE)."""
        if key in self._entries:  # an identical request computed concurrently stored it first
            self._entries.move_to_end(key)
            return
        size = charged_bytes(response)
        if size > self.capacity_bytes // MAX_ENTRY_SHARE:
            self._metrics.cache_skips.labels(rpc=key.rpc, reason="response_size").inc()
            return
        self._entries[key] = _Entry(response, items, size)
        self._bytes += size
        while self._bytes > self.capacity_bytes:
            self._evict(next(iter(self._entries)), "capacity")
        self._publish()

    # ------------------------------------------------------------------ eviction
    def drop_version(self, name: str, version: int) -> None:
        """Evict every entry of (name, version): the version was retired (unloaded)."""
        for key in [k for k in self._entries if k.name == name and k.version == version]:
            self._evict(key, "unloaded")
        self._publish()

    def _evict(self, key: CacheKey, reason: str) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size
        self._metrics.cache_evictions.labels(model=key.name, reason=reason).inc()

    def _publish(self) -> None:
        self._metrics.cache_bytes.set(self._bytes)
        self._metrics.cache_entries.set(len(self._entries))


def _canonical(request: Message, max_bytes: int) -> tuple[int, bytes] | None:
    """(length, 128-bit SHA-256 prefix) of `request` serialized deterministically without its
    leading ModelRef (field 1; the key names the resolved version instead), or None when the
    request is larger than `max_bytes`.

    Serializing once and slicing costs one pass over the request (ByteSize and a copy with the
    field cleared would cost three). Fields are written in number order, so ModelRef comes
    first when set; were it not first it would stay in the hashed bytes, which only splits
    entries between spellings of one version (the key's resolved name, version and alias
    decide what a response may answer). SHA-256 runs on the CPU's SHA extensions: about 3x
    faster than blake2b on 1 MiB here.
    """
    data = request.SerializeToString(deterministic=True)
    if len(data) > max_bytes:
        return None
    body = memoryview(data)[_leading_ref_length(data):]
    return len(body), hashlib.sha256(body).digest()[:16]


def _leading_ref_length(data: bytes) -> int:
    """Bytes taken by a leading field-1 length-delimited record of `data` (0: none)."""
    if not data or data[0] != _MODEL_REF_TAG:
        return 0
    length, shift, pos = 0, 0, 1
    while pos < len(data):
        byte = data[pos]
        length |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return min(pos + length, len(data))
        shift += 7
    return 0
