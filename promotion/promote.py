"""Promotion and rollback of registered versions: run the gates, then move an alias.

`promote` runs the gates of `latentserve.promotion.gates` on a version against the current
holder of the baseline alias, records each as version tags (`gate.<name>` = pass|fail|skip,
`gate.<name>.value`, and `gate.<name>.detail` for a failed gate) and moves the alias only when
no gate failed. On promotion the new version records where the alias came from, so `rollback`
can undo it::

    result = promote(uri, "sprites-vae", 7, "production")
    result.outcome, result.exit_code            # "promoted", 0  |  "rejected", 1
    rollback(uri, "sprites-vae", "production")  # production → the version before v7

Registry problems, unknown names and bad gates files raise `LatentServeError`s (the CLI maps
them to exit code 2); gate failures never raise.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from latentserve.core.errors import FailedPrecondition, InvalidArgument, NotFound
from latentserve.promotion.gates import (
    GateResult,
    GatesConfig,
    bundle_gate,
    load_gates,
    parity_gate,
    policy_gate,
    quality_gates,
    skipped,
    version_metrics,
)
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.store.mlflow_store import RegistryClient
from latentserve.service.settings import Settings

EXIT_OK = 0
"""Promoted, already the holder, a dry run whose gates all passed, or rolled back."""
EXIT_GATE_FAILED = 1
"""At least one gate failed; the alias did not move."""
EXIT_ERROR = 2
"""Infrastructure or usage error (registry unreachable, unknown model/version, bad gates
file, nothing to roll back); the alias did not move."""

TAG_GATE_PREFIX = "gate."
TAG_GATES_RESULT = "gates.result"
TAG_GATES_AT = "gates.at"
TAG_GATES_BASELINE = "gates.baseline"
TAG_PREVIOUS = "latentserve.previous.{alias}"
"""On a promoted version: the version the alias pointed at before (empty: none)."""
TAG_HISTORY = "latentserve.history.{alias}"
"""On a promoted version: JSON list of the alias's earlier holders, oldest first."""
TAG_PROMOTED_AT = "promoted.{alias}.at"
TAG_ROLLED_BACK_AT = "rolled_back.{alias}.at"
TAG_RESTORED_AT = "restored.{alias}.at"
HISTORY_LIMIT = 20
"""Earlier holders kept in the history tag (rollbacks possible in a row)."""
_TAG_TEXT_LIMIT = 4000
_ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_RESERVED_ALIAS = re.compile(r"^(latest|[vV]\d+)$")
_GATE_ERRORS = (BundleError, NotFound)
"""A candidate download that fails this way is the bundle's fault (a gate failure)."""

Outcome = Literal["promoted", "rejected", "dry-run", "already-holds"]


@dataclass(frozen=True)
class PromotionResult:
    """What `promote` did: the gates it ran (in order) and the outcome."""

    name: str
    version: int
    alias: str
    baseline_alias: str
    holder: int | None
    """The version the gates compared against (holder of the baseline alias)."""
    previous: int | None
    """The version the alias pointed at before (None: unset)."""
    gates: list[GateResult]
    outcome: Outcome
    at: str
    registry_uri: str

    @property
    def passed(self) -> bool:
        """True when no gate failed (skipped gates do not block)."""
        return all(g.passed is not False for g in self.gates)

    @property
    def failed(self) -> list[GateResult]:
        """The gates that failed."""
        return [g for g in self.gates if g.passed is False]

    @property
    def exit_code(self) -> int:
        """`EXIT_OK` or `EXIT_GATE_FAILED`."""
        return EXIT_OK if self.passed else EXIT_GATE_FAILED


@dataclass(frozen=True)
class RollbackResult:
    """What `rollback` did: the alias moved from `from_version` back to `to_version`."""

    name: str
    alias: str
    from_version: int
    to_version: int
    at: str


def promote(
    registry_uri: str,
    name: str,
    version: int,
    alias: str,
    *,
    baseline_alias: str | None = None,
    gates: GatesConfig | None = None,
    dry_run: bool = False,
    settings: Settings | None = None,
    on_gate: Callable[[GateResult], None] | None = None,
) -> PromotionResult:
    """Gate `name` v`version` and point `alias` at it if every gate passes.

    The holder of `baseline_alias` (default: `alias`) is the version the quality and latency
    gates compare with; with none, absolute thresholds apply. A version that already holds
    `alias` is a no-op success (no gates run). `dry_run` runs the gates and writes nothing to
    the registry. `on_gate` sees each result as it is decided (for progress output).

    Example::

        result = promote(uri, "tiny", 2, "production", dry_run=True)
        [g.outcome for g in result.gates]
    """
    _check_alias(alias, "alias")
    baseline_alias = baseline_alias or alias
    _check_alias(baseline_alias, "baseline_alias")
    config = gates if gates is not None else load_gates()
    client = RegistryClient(registry_uri)
    client.check_version(name, version)
    previous = _holder(client, name, alias)
    at = _now()

    def result(outcome: Outcome, holder: int | None, found: list[GateResult]) -> PromotionResult:
        return PromotionResult(name, version, alias, baseline_alias, holder, previous, found,
                               outcome, at, registry_uri)

    if previous == version:
        return result("already-holds", previous, [])
    holder = previous if baseline_alias == alias else _holder(client, name, baseline_alias)
    found = _run_gates(client, name, version, holder, config,
                       settings if settings is not None else _settings(), on_gate)
    outcome: Outcome = "dry-run" if dry_run else (
        "promoted" if all(g.passed is not False for g in found) else "rejected")
    done = result(outcome, holder, found)
    if dry_run:
        return done
    _record_gates(client, done)
    if outcome == "promoted":
        if _holder(client, name, alias) != previous:
            raise FailedPrecondition(f"{name}@{alias} moved while the gates ran; nothing was "
                                     "promoted, run the promotion again")
        history = _history(client, name, alias, previous)
        tags = {TAG_PREVIOUS.format(alias=alias): "" if previous is None else str(previous),
                TAG_HISTORY.format(alias=alias): json.dumps(history),
                TAG_PROMOTED_AT.format(alias=alias): at}
        for key, value in tags.items():
            client.set_version_tag(name, version, key, value)
        client.set_alias(name, alias, version)
    return done


def rollback(registry_uri: str, name: str, alias: str) -> RollbackResult:
    """Point `alias` back at the version it held before its last promotion.

    Works repeatedly: each promotion records the alias's earlier holders, and each rollback
    hands the rest of that history to the version it restores. FailedPrecondition when the
    current holder has no recorded predecessor (e.g. the alias was set by hand).

    Example::

        rollback(uri, "sprites-vae", "production").to_version
    """
    _check_alias(alias, "alias")
    client = RegistryClient(registry_uri)
    current = client.resolve(name, alias)
    tags = client.version_tags(name, current)
    history = _parse_history(tags, alias)
    if not history:
        raise FailedPrecondition(f"{name}@{alias} → v{current} has no recorded previous holder "
                                 f"(tag {TAG_PREVIOUS.format(alias=alias)}); it was not put "
                                 "there by `latentserve registry promote`, nothing to roll back")
    target, rest = history[-1], history[:-1]
    client.check_version(name, target)
    at = _now()
    restored = {TAG_PREVIOUS.format(alias=alias): str(rest[-1]) if rest else "",
                TAG_HISTORY.format(alias=alias): json.dumps(rest),
                TAG_RESTORED_AT.format(alias=alias): at}
    for key, value in restored.items():
        client.set_version_tag(name, target, key, value)
    client.set_version_tag(name, current, TAG_ROLLED_BACK_AT.format(alias=alias), at)
    client.set_alias(name, alias, target)
    return RollbackResult(name, alias, current, target, at)


# ---------------------------------------------------------------- gates


def _run_gates(client: RegistryClient, name: str, version: int, holder: int | None,
               config: GatesConfig, settings: Settings,
               on_gate: Callable[[GateResult], None] | None) -> list[GateResult]:
    found: list[GateResult] = []

    def add(*results: GateResult) -> None:
        for r in results:
            found.append(r)
            if on_gate is not None:
                on_gate(r)

    with tempfile.TemporaryDirectory(prefix="latentserve-promote-") as work:
        try:
            candidate_dir: Path | None = client.download(name, version, Path(work) / "candidate")
        except _GATE_ERRORS as exc:
            candidate_dir = None
            add(GateResult("bundle", False, "invalid", exc.message))
        bundle: Bundle | None = None
        if candidate_dir is not None:
            gate, bundle = bundle_gate(candidate_dir)
            add(gate)
        metrics = version_metrics(client.version_tags(name, version), bundle)
        holder_tags = client.version_tags(name, holder) if holder is not None else None
        holder_metrics = None if holder_tags is None else version_metrics(holder_tags)
        source = None if bundle is None else bundle.spec.provenance.get("source")
        add(parity_gate(metrics, config.parity, source if isinstance(source, str) else None))
        add(*quality_gates(metrics, holder_metrics, config.metrics,
                           exclude=frozenset({config.parity.metric})))
        add(policy_gate(bundle, config.policy))
        if bundle is None:
            why = "not run: the bundle gate failed"
            add(*(skipped(gate, why) for gate in RUNTIME_GATES))
            return found
        from latentserve.promotion.gates_images import (
            diversity_gate,
            image_drift_gate,
            reference_gates,
        )
        from latentserve.promotion.gates_runtime import latency_gate, smoke_gate

        add(smoke_gate(bundle, settings, config.smoke))
        held, note = _holder_bundle(client, name, holder, Path(work) / "holder")
        add(latency_gate(bundle, held, settings, config.latency, holder_note=note))
        add(image_drift_gate(bundle, held, config.images))
        add(diversity_gate(bundle, held, config.images))
        add(*reference_gates(bundle, held, config.reference))
    return found


RUNTIME_GATES = ("smoke", "latency", "image_drift", "diversity", "fid", "precision", "recall")
"""The gates that run the candidate (skipped when it does not load)."""


def _holder_bundle(client: RegistryClient, name: str, holder: int | None,
                   dest: Path) -> tuple[Bundle | None, str]:
    if holder is None:
        return None, ""
    try:
        return load_bundle(client.download(name, holder, dest)), ""
    except _GATE_ERRORS as exc:
        return None, f"the holder v{holder} cannot be loaded ({exc.message})"


def _record_gates(client: RegistryClient, result: PromotionResult) -> None:
    tags = {TAG_GATES_RESULT: "pass" if result.passed else "fail",
            TAG_GATES_AT: result.at,
            TAG_GATES_BASELINE: f"{result.baseline_alias} → "
                                f"{'none' if result.holder is None else f'v{result.holder}'}"}
    for gate in result.gates:
        key = TAG_GATE_PREFIX + gate.name
        tags |= {key: gate.outcome, f"{key}.value": gate.value[:_TAG_TEXT_LIMIT]}
        if gate.passed is False:
            tags[f"{key}.detail"] = gate.detail[:_TAG_TEXT_LIMIT]
    for key, value in tags.items():
        client.set_version_tag(result.name, result.version, key, value)


# ---------------------------------------------------------------- aliases and history


def _holder(client: RegistryClient, name: str, alias: str) -> int | None:
    """The version `name@alias` points at, or None when the alias is unset."""
    try:
        return client.resolve(name, alias)
    except NotFound:
        return None


def _history(client: RegistryClient, name: str, alias: str, previous: int | None) -> list[int]:
    """The alias's holders before the promotion, oldest first (bounded)."""
    if previous is None:
        return []
    earlier = _parse_history(client.version_tags(name, previous), alias)
    return [*earlier, previous][-HISTORY_LIMIT:]


def _parse_history(tags: dict[str, str], alias: str) -> list[int]:
    raw = tags.get(TAG_HISTORY.format(alias=alias))
    if raw:
        try:
            values = json.loads(raw)
            if isinstance(values, list) and all(isinstance(v, int) for v in values):
                return list(values)
        except ValueError:
            pass
    previous = tags.get(TAG_PREVIOUS.format(alias=alias), "")
    return [int(previous)] if previous.isdigit() else []


def _check_alias(alias: str, field: str) -> None:
    if not _ALIAS.match(alias) or _RESERVED_ALIAS.match(alias):
        raise InvalidArgument(f"{field} {alias!r} must be letters, digits, '_' or '-', and not "
                              "'latest' or v<number> (reserved by MLflow)", field=field)


def _settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # env-sourced


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
