"""Promotion gates: the gates file, gate results, and the gates that need no backend.

`latentserve registry promote` runs, in order: `bundle` (schema, ONNX checker, spec/ONNX IO
agreement), `onnx_parity`, one `quality.<metric>` gate per latent-quality metric, `smoke` and
`latency` (the last two run the embedded backend: see `gates_runtime`). Each gate is a plain
function returning a `GateResult`, so it can be tested on its own::

    config = load_gates()                                   # the packaged gates.toml
    parity_gate({"onnx_parity_max_abs_diff": 3e-6}, config.parity).passed      # True
    quality_gates({"recon_mse": 0.031}, {"recon_mse": 0.020}, config.metrics)
    # → [GateResult("quality.recon_mse", False, "0.031", "holder 0.02; allowed ≤ 0.022 …"), …]

The gates file (TOML) has `[parity]`, `[smoke]`, `[latency]` tables and a `[[metrics]]` list of
rules; the packaged `gates.toml` documents every key.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from latentserve.core.errors import InvalidArgument
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.spec import BundleError
from latentserve.registry.store.mlflow_store import TAG_METRIC_PREFIX

DEFAULT_GATES_FILE = "gates.toml"
"""The default gates file, shipped inside the `latentserve.registry` package."""
_GLOB_CHARS = frozenset("*?[")


class GatesFileError(InvalidArgument):
    """The gates file is missing, not TOML, or has a bad key; the message names file and key."""


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate: `passed` is True, False, or None when the gate was skipped.

    `value` is the measured value (as text, recorded in the `gate.<name>.value` tag) and
    `detail` says what it was compared with.
    """

    name: str
    passed: bool | None
    value: str
    detail: str
    key: str = ""
    """The gates-file keys that decide this gate (e.g. `[latency] factor, slack_ms`)."""

    @property
    def outcome(self) -> Literal["pass", "fail", "skip"]:
        """`pass`, `fail` or `skip`: the value of the `gate.<name>` tag."""
        if self.passed is None:
            return "skip"
        return "pass" if self.passed else "fail"


# ---------------------------------------------------------------- the gates file


DETERMINISM_METRIC = "onnx_determinism_max_abs_diff"
"""Stands in for parity on a bundle built from ONNX files (recorded by `bundle evaluate`)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ParityConfig(_Strict):
    """`[parity]`: the exported ONNX must match the training framework."""

    metric: str = "onnx_parity_max_abs_diff"
    max_abs_diff: float = Field(default=1e-4, ge=0)
    required: bool = True


class SmokeConfig(_Strict):
    """`[smoke]`: Sample / Interpolate / Edit (and Encode) on the embedded backend."""

    items: int = Field(default=8, ge=2, le=1024)
    steps: int = Field(default=5, ge=2, le=256)
    psi: float = Field(default=0.7, gt=0)
    strengths: list[float] = Field(default_factory=lambda: [-3.0, -1.0, 0.0, 1.0, 3.0],
                                   min_length=1)
    range_tolerance: float = Field(default=1e-4, ge=0)
    seed: int = Field(default=0, ge=0)


class LatencyConfig(_Strict):
    """`[latency]`: p50 of a batch decode on the embedded backend, relative to the holder's;
    without a holder, per output pixel (`budget_us_per_pixel`) unless `budget_ms` is set."""

    batch: int = Field(default=64, ge=1, le=4096)
    runs: int = Field(default=20, ge=3, le=1000)
    warmup: int = Field(default=2, ge=0, le=100)
    factor: float = Field(default=1.5, gt=0)
    slack_ms: float = Field(default=1.0, ge=0)
    budget_us_per_pixel: float = Field(default=5.0, gt=0)
    budget_ms: float | None = Field(default=None, gt=0)
    intra_op_threads: int = Field(default=1, ge=0, le=1024)


class ImagesConfig(_Strict):
    """`[images]`: what the candidate draws — drift from the holder's pictures for the same
    seeds, and sample diversity."""

    items: int = Field(default=32, ge=2, le=1024)
    seed: int = Field(default=0, ge=0)
    drift_max_rms: float = Field(default=0.05, ge=0)
    diversity_rel_tol: float = Field(default=0.25, ge=0, le=1)
    diversity_min: float = Field(default=0.02, ge=0)


class ReferenceConfig(_Strict):
    """`[reference]`: Fréchet distance and precision/recall against the user's images, over
    the features of the user's ONNX network (both unset: the gates are skipped)."""

    images: Path | None = None
    features: Path | None = None
    input: str | None = None
    output: str | None = None
    input_range: tuple[float, float] = (0.0, 1.0)
    samples: int = Field(default=256, ge=8, le=50000)
    seed: int = Field(default=0, ge=0)
    k: int = Field(default=3, ge=1, le=100)
    fid_rel_tol: float = Field(default=0.1, ge=0)
    max_fid: float | None = Field(default=None, ge=0)
    pr_abs_tol: float = Field(default=0.05, ge=0, le=1)
    min_precision: float | None = Field(default=None, ge=0, le=1)
    min_recall: float | None = Field(default=None, ge=0, le=1)


class PolicyConfig(_Strict):
    """`[policy]`: rules about what the candidate must carry."""

    require_measured: list[str] = []
    """Directions that must have a measured quality (`bundle evaluate`); "*" = all."""


class MetricRule(_Strict):
    """One `[[metrics]]` rule; `pattern` is a metric name or a glob (`monotonicity_*`)."""

    pattern: str = Field(min_length=1)
    better: Literal["lower", "higher"]
    rel_tol: float = Field(default=0.0, ge=0)
    abs_tol: float = Field(default=0.0, ge=0)
    threshold: float | None = None

    def matches(self, metric: str) -> bool:
        """Whether this rule governs `metric`."""
        return fnmatchcase(metric, self.pattern)

    @property
    def literal(self) -> bool:
        """True when `pattern` names one metric (no glob characters)."""
        return not (_GLOB_CHARS & set(self.pattern))


class GatesConfig(_Strict):
    """The whole gates file."""

    parity: ParityConfig = ParityConfig()
    smoke: SmokeConfig = SmokeConfig()
    latency: LatencyConfig = LatencyConfig()
    images: ImagesConfig = ImagesConfig()
    reference: ReferenceConfig = ReferenceConfig()
    policy: PolicyConfig = PolicyConfig()
    metrics: list[MetricRule] = []


def load_gates(path: Path | None = None) -> GatesConfig:
    """The packaged `gates.toml`, with the keys of the gates file at `path` laid over it.

    A table in `path` (`[parity]`, `[smoke]`, `[latency]`) changes only the keys it names; a
    `[[metrics]]` list replaces the packaged rules as a whole. Errors name file and key.

    Example::

        config = load_gates(Path("deploy/ci/gates.toml"))
        config.latency.factor
    """
    packaged = resources.files(__package__ or "latentserve.registry").joinpath(DEFAULT_GATES_FILE)
    raw = _read_toml(packaged.read_text(encoding="utf-8"), f"{__package__}/{DEFAULT_GATES_FILE}")
    source = f"{__package__}/{DEFAULT_GATES_FILE}"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise GatesFileError(f"{path}: cannot read gates file ({exc})", field="gates") from None
        for key, value in _read_toml(text, source).items():
            base = raw.get(key)
            raw[key] = base | value if isinstance(base, dict) and isinstance(value, dict) else value
    try:
        return GatesConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise GatesFileError(f"{source}: {problems}", field="gates") from None


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GatesFileError(f"{source}: not valid TOML ({exc})", field="gates") from None


# ---------------------------------------------------------------- metrics of a version


def version_metrics(tags: Mapping[str, str], bundle: Bundle | None = None) -> dict[str, float]:
    """A version's metrics: its `metric.<name>` tags, overridden by the bundle spec's metrics.

    Tags that are not numbers are ignored (they are not metrics this code wrote).
    """
    found: dict[str, float] = {}
    for key, text in tags.items():
        if key.startswith(TAG_METRIC_PREFIX):
            try:
                found[key[len(TAG_METRIC_PREFIX):]] = float(text)
            except ValueError:
                continue
    if bundle is not None:
        found.update({k: float(v) for k, v in bundle.spec.metrics.items()})
    return found


# ---------------------------------------------------------------- gates


def bundle_gate(bundle_dir: Path) -> tuple[GateResult, Bundle | None]:
    """`bundle`: spec schema, ONNX checker and spec/ONNX IO agreement (`load_bundle`).

    Returns the loaded bundle too (None when the gate fails), for the gates that run it.
    """
    try:
        bundle = load_bundle(bundle_dir)
    except BundleError as exc:
        return GateResult("bundle", False, "invalid", exc.message, BUNDLE_KEY), None
    parts = (["decoder"] + (["mapping"] if bundle.spec.mapping else [])
             + (["encoder"] if bundle.spec.encoder else []))
    detail = (f"schema {bundle.spec.schema_version}, {' + '.join(parts)} pass the ONNX checker "
              f"and match the spec's IO; {len(bundle.directions)} directions; "
              f"{bundle.content_hash}")
    return GateResult("bundle", True, "valid", detail, BUNDLE_KEY), bundle


BUNDLE_KEY = "no key: always run"


PARITY_KEY = "[parity] metric, max_abs_diff, required"


def parity_gate(metrics: Mapping[str, float], config: ParityConfig,
                source: str | None = None) -> GateResult:
    """`onnx_parity`: the recorded training-framework ↔ ONNX max |diff| is within the limit.

    A bundle built from ONNX files (`source` "onnx", from its provenance) has no framework to
    compare with: its graphs are the reference. For it the gate reads the ONNX Runtime
    batch-split determinism `latentserve bundle evaluate` records instead, with the same limit,
    and says so in its value (`0 (determinism; no torch parity: built from ONNX)`), so the
    line never reads as perfect torch parity.
    """
    return replace(_parity(metrics, config, source), key=PARITY_KEY)


def _parity(metrics: Mapping[str, float], config: ParityConfig,
            source: str | None) -> GateResult:
    name = "onnx_parity"
    limit = f"≤ {config.max_abs_diff:g}"
    metric = config.metric
    value = metrics.get(metric)
    if value is None and source == "onnx":
        metric = DETERMINISM_METRIC
        value = metrics.get(metric)
        if value is None and config.required:
            return GateResult(name, False, "missing",
                              f"built from ONNX files, so no {config.metric} can exist, and no "
                              f"{DETERMINISM_METRIC} is recorded: run `latentserve bundle "
                              "evaluate` on the bundle before registering it")
    if value is None:
        if config.required:
            return GateResult(name, False, "missing",
                              f"no {config.metric} metric recorded; a parity record is required "
                              "(a bundle built from torch modules records it, `latentserve "
                              "bundle evaluate` records the determinism check that stands in "
                              "for it on a bundle built from ONNX files; or promote with a gates "
                              "file holding [parity] required = false)")
        return GateResult(name, None, "missing", f"no {config.metric} metric recorded")
    shown = _num(value)
    if metric == DETERMINISM_METRIC:
        shown += " (determinism; no torch parity: built from ONNX)"
    if not math.isfinite(value):
        return GateResult(name, False, shown, f"{metric} is not finite")
    return GateResult(name, value <= config.max_abs_diff, shown, f"{metric} {limit}")


def quality_gates(
    candidate: Mapping[str, float],
    holder: Mapping[str, float] | None,
    rules: Sequence[MetricRule],
    *,
    exclude: frozenset[str] = frozenset(),
) -> list[GateResult]:
    """`quality.<metric>`: one result per metric governed by a rule, in rule order.

    Each metric goes to the first rule whose pattern matches it. With a holder value the
    candidate may be worse by at most max(abs_tol, rel_tol·|holder|); without one (no holder,
    or the holder lacks the metric) the absolute `threshold` applies, and with no threshold
    the value is only recorded (skip). A metric the holder has but the candidate lacks fails;
    a literal rule whose metric neither version has is skipped. `holder` is None when the
    alias has no holder.
    """
    names = sorted((set(candidate) | set(holder or {})) - exclude)
    assigned: dict[int, list[str]] = {}
    for metric in names:
        index = next((i for i, r in enumerate(rules) if r.matches(metric)), None)
        if index is not None:
            assigned.setdefault(index, []).append(metric)
    results: list[GateResult] = []
    for index, rule in enumerate(rules):
        metrics = assigned.get(index, [])
        key = rule_key(rule)
        if not metrics and rule.literal and rule.pattern not in exclude:
            results.append(GateResult(f"quality.{rule.pattern}", None, "missing",
                                      "neither version records this metric", key))
        for metric in metrics:
            results.append(replace(_quality_gate(
                metric, candidate.get(metric), None if holder is None else holder.get(metric),
                rule), key=key))
    return results


def rule_key(rule: MetricRule) -> str:
    """How a `[[metrics]]` rule is found in the gates file."""
    return f'[[metrics]] pattern = "{rule.pattern}"'


def idle_rules(rules: Sequence[MetricRule], results: Sequence[GateResult]) -> list[str]:
    """The keys of `[[metrics]]` rules that governed no gate (no metric of either version
    matched them), for `promote --explain`."""
    used = {r.key for r in results}
    return [rule_key(rule) for rule in rules if rule_key(rule) not in used]


def policy_gate(bundle: Bundle | None, config: PolicyConfig) -> GateResult:
    """`directions.measured`: every direction `[policy] require_measured` names ("*": all)
    has a measured quality (`latentserve bundle evaluate` with measures or labels)."""
    key = "[policy] require_measured"
    wanted = config.require_measured
    if not wanted:
        return GateResult("directions.measured", None, "not required",
                          "no direction is required to be measured", key)
    if bundle is None:
        return GateResult("directions.measured", None, "not run", "the bundle gate failed", key)
    have = {d.name: d.quality is not None for d in bundle.spec.directions}
    names = list(have) if "*" in wanted else wanted
    absent = [n for n in names if n not in have]
    unmeasured = [n for n in names if n in have and not have[n]]
    problems = ([f"no direction named {', '.join(absent)}"] if absent else []) + (
        [f"no measured quality for {', '.join(unmeasured)} (run `latentserve bundle evaluate "
         "--measures …` or `--labels …`)"] if unmeasured else [])
    value = f"{len(names) - len(absent) - len(unmeasured)}/{len(names)} measured"
    if problems:
        return GateResult("directions.measured", False, value, "; ".join(problems), key)
    return GateResult("directions.measured", True, value,
                      f"{', '.join(names) or 'no directions'} carry measured quality", key)


def _quality_gate(metric: str, value: float | None, held: float | None,
                  rule: MetricRule) -> GateResult:
    name = f"quality.{metric}"
    sense = f"{rule.better} is better"
    if value is None:
        return GateResult(name, False, "missing", f"the holder records {metric} = {_num(held)}, "
                          "the candidate does not")
    if not math.isfinite(value):
        return GateResult(name, False, _num(value), f"{metric} is not finite")
    if held is not None and math.isfinite(held):
        tol = max(rule.abs_tol, rule.rel_tol * abs(held))
        bound = held + tol if rule.better == "lower" else held - tol
        ok = value <= bound if rule.better == "lower" else value >= bound
        sign = "≤" if rule.better == "lower" else "≥"
        return GateResult(name, ok, _num(value), f"holder {_num(held)}; allowed {sign} "
                          f"{_num(bound)} ({sense}, tolerance {_num(tol)})")
    if rule.threshold is None:
        return GateResult(name, None, _num(value),
                          f"no holder value and no absolute threshold ({sense}); recorded only")
    ok = value <= rule.threshold if rule.better == "lower" else value >= rule.threshold
    sign = "≤" if rule.better == "lower" else "≥"
    return GateResult(name, ok, _num(value),
                      f"no holder value; absolute threshold {sign} {_num(rule.threshold)}")


def skipped(name: str, why: str, key: str = "") -> GateResult:
    """A gate that was not run (e.g. because the bundle gate failed)."""
    return GateResult(name, None, "not run", why, key)


def _num(value: float | None) -> str:
    return "none" if value is None else f"{value:.6g}"
