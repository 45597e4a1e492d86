"""Promotion gates as plain functions: the gates file, each gate's verdict and its value."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from latentserve.promotion.gates import (
    GateResult,
    GatesFileError,
    LatencyConfig,
    MetricRule,
    ParityConfig,
    SmokeConfig,
    bundle_gate,
    load_gates,
    parity_gate,
    quality_gates,
    version_metrics,
)
from latentserve.promotion.gates_runtime import latency_gate, smoke_gate
from latentserve.service.settings import Settings
from tests.fixtures.promote import GOOD_METRICS, corrupt_decoder_dir, tiny_with_decoder
from tests.fixtures.tiny import build_tiny_bundle

LOWER = MetricRule(pattern="recon_mse", better="lower", rel_tol=0.10, abs_tol=1e-4, threshold=0.05)
HIGHER = MetricRule(pattern="monotonicity_*", better="higher", abs_tol=0.05, threshold=0.5)
RECORD_ONLY = MetricRule(pattern="path_length_*", better="lower", rel_tol=0.25)
RULES = [LOWER, HIGHER, RECORD_ONLY]
QUICK_LATENCY = LatencyConfig(batch=64, runs=5, warmup=1, slack_ms=25.0)
"""A loaded test machine delays single decodes by milliseconds: the slack absorbs that."""


def _settings() -> Settings:
    return Settings(log_level="WARNING")  # type: ignore[call-arg]


def _by_name(results: list[GateResult]) -> dict[str, GateResult]:
    return {r.name: r for r in results}


# ---------------------------------------------------------------- gates file


def test_packaged_gates_file_loads_with_the_documented_defaults() -> None:
    config = load_gates()
    assert config.parity.max_abs_diff == 1e-4 and config.parity.required
    assert config.latency.factor == 1.5 and config.latency.batch == 64
    assert config.latency.runs == 20
    patterns = [r.pattern for r in config.metrics]
    assert patterns[0] == "recon_mse" and "monotonicity_*" in patterns
    # the specific leakage rule comes before the glob that would also match it
    assert patterns.index("leakage_top_pair_ratio") < patterns.index("leakage_*")


@pytest.mark.parametrize(("text", "needle"), [
    ("[latency]\nfactor = -1\n", "latency.factor"),
    ("[latency]\nfactr = 2\n", "latency.factr"),
    ("[[metrics]]\npattern = 'x'\nbetter = 'sideways'\n", "metrics.0.better"),
    ("[parity\n", "not valid TOML"),
])
def test_bad_gates_file_names_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "gates.toml"
    path.write_text(text)
    with pytest.raises(GatesFileError, match=r"gates\.toml") as err:
        load_gates(path)
    assert needle in err.value.message


def test_gates_file_is_laid_over_the_packaged_one(tmp_path: Path) -> None:
    path = tmp_path / "gates.toml"
    path.write_text("[latency]\nfactor = 3.0\n")
    config = load_gates(path)
    assert config.latency.factor == 3.0 and config.latency.runs == 20
    assert config.metrics == load_gates().metrics
    path.write_text("[[metrics]]\npattern = 'fid'\nbetter = 'lower'\nthreshold = 10.0\n")
    assert [r.pattern for r in load_gates(path).metrics] == ["fid"]


def test_missing_gates_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(GatesFileError, match="cannot read gates file"):
        load_gates(tmp_path / "nope.toml")


# ---------------------------------------------------------------- metrics and parity


def test_version_metrics_prefers_the_bundle_spec_and_ignores_other_tags(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", metrics={"recon_mse": 0.02})
    tags = {"metric.recon_mse": "0.5", "metric.mig": "0.3", "metric.bad": "n/a", "other": "1"}
    assert version_metrics(tags) == {"recon_mse": 0.5, "mig": 0.3}
    assert version_metrics(tags, bundle) == {"recon_mse": 0.02, "mig": 0.3}


@pytest.mark.parametrize(("metrics", "required", "outcome"), [
    ({"onnx_parity_max_abs_diff": 3e-6}, True, "pass"),
    ({"onnx_parity_max_abs_diff": 1e-4}, True, "pass"),
    ({"onnx_parity_max_abs_diff": 2e-4}, True, "fail"),
    ({"onnx_parity_max_abs_diff": math.nan}, True, "fail"),
    ({}, True, "fail"),
    ({}, False, "skip"),
])
def test_parity_gate(metrics: dict[str, float], required: bool, outcome: str) -> None:
    result = parity_gate(metrics, ParityConfig(required=required))
    assert result.name == "onnx_parity" and result.outcome == outcome


@pytest.mark.parametrize(("metrics", "outcome"), [
    ({"onnx_determinism_max_abs_diff": 2e-7}, "pass"),
    ({"onnx_determinism_max_abs_diff": 1e-3}, "fail"),
    ({}, "fail"),
    ({"onnx_parity_max_abs_diff": 3e-6, "onnx_determinism_max_abs_diff": 1.0}, "pass"),
])
def test_parity_gate_on_a_bundle_built_from_onnx(metrics: dict[str, float], outcome: str) -> None:
    """ONNX files are their own reference: determinism stands in for a framework parity."""
    result = parity_gate(metrics, ParityConfig(), source="onnx")
    assert result.outcome == outcome, result.detail
    if not metrics:
        assert "bundle evaluate" in result.detail
    assert parity_gate({}, ParityConfig(), source="torch").outcome == "fail"


# ---------------------------------------------------------------- quality


def test_quality_within_tolerance_of_the_holder_passes() -> None:
    found = _by_name(quality_gates({"recon_mse": 0.0105, "monotonicity_d0": 0.86},
                                   {"recon_mse": 0.010, "monotonicity_d0": 0.90}, RULES))
    assert found["quality.recon_mse"].outcome == "pass"
    assert found["quality.monotonicity_d0"].outcome == "pass"
    assert found["quality.recon_mse"].value == "0.0105"
    assert "holder 0.01" in found["quality.recon_mse"].detail


def test_quality_worse_than_the_holder_beyond_tolerance_fails() -> None:
    found = _by_name(quality_gates({"recon_mse": 0.0115, "monotonicity_d0": 0.84},
                                   {"recon_mse": 0.010, "monotonicity_d0": 0.90}, RULES))
    assert found["quality.recon_mse"].outcome == "fail"
    assert found["quality.monotonicity_d0"].outcome == "fail"


def test_quality_without_holder_uses_absolute_thresholds() -> None:
    found = _by_name(quality_gates({"recon_mse": 0.2, "monotonicity_d0": 0.7,
                                    "path_length_lerp": 3.0}, None, RULES))
    assert found["quality.recon_mse"].outcome == "fail"
    assert "absolute threshold ≤ 0.05" in found["quality.recon_mse"].detail
    assert found["quality.monotonicity_d0"].outcome == "pass"
    assert found["quality.path_length_lerp"].outcome == "skip"  # no threshold: recorded only
    assert found["quality.path_length_lerp"].value == "3"


def test_direction_quality_is_gated_against_the_holder_with_the_packaged_rules() -> None:
    rules = load_gates().metrics
    holder = {"direction.scale.spearman_within": 0.99, "direction.scale.spearman_pooled": 0.97,
              "direction.scale.leak_conditional": 0.05, "prior_holes": 0.0,
              "roundtrip_class_accuracy": 0.99, "roundtrip_orientation_error_deg": 3.0}
    same = _by_name(quality_gates(dict(holder), holder, rules))
    assert {same[f"quality.{m}"].outcome for m in holder} == {"pass"}, same
    worse = dict(holder, **{"direction.scale.spearman_within": 0.93,
                            "direction.scale.leak_conditional": 0.3, "prior_holes": 0.02,
                            "roundtrip_class_accuracy": 0.9,
                            "roundtrip_orientation_error_deg": 9.0})
    found = _by_name(quality_gates(worse, holder, rules))
    for metric in worse:
        expected = "pass" if metric == "direction.scale.spearman_pooled" else "fail"
        assert found[f"quality.{metric}"].outcome == expected, metric
    # a new model without a holder must meet the absolute thresholds
    alone = _by_name(quality_gates({"direction.scale.spearman_within": 0.9,
                                    "direction.scale.spearman_pooled": 0.95}, None, rules))
    assert alone["quality.direction.scale.spearman_within"].outcome == "fail"
    assert alone["quality.direction.scale.spearman_pooled"].outcome == "pass"


def test_quality_metric_the_candidate_lacks_fails_and_absent_from_both_skips() -> None:
    found = _by_name(quality_gates({}, {"monotonicity_d0": 0.9}, RULES))
    assert found["quality.monotonicity_d0"].outcome == "fail"
    assert "candidate does not" in found["quality.monotonicity_d0"].detail
    assert found["quality.recon_mse"].outcome == "skip"  # a literal rule neither version has
    assert set(found) == {"quality.monotonicity_d0", "quality.recon_mse"}


def test_quality_first_matching_rule_wins_and_excluded_metrics_are_not_gated() -> None:
    rules = [MetricRule(pattern="leakage_top_pair_ratio", better="lower", threshold=0.5),
             MetricRule(pattern="leakage_*", better="lower", threshold=1.0)]
    found = _by_name(quality_gates({"leakage_top_pair_ratio": 0.8, "leakage_d0_plain": 0.8,
                                    "onnx_parity_max_abs_diff": 1.0}, None, rules,
                                   exclude=frozenset({"onnx_parity_max_abs_diff"})))
    assert found["quality.leakage_top_pair_ratio"].outcome == "fail"
    assert found["quality.leakage_d0_plain"].outcome == "pass"
    assert "quality.onnx_parity_max_abs_diff" not in found


def test_quality_non_finite_candidate_value_fails() -> None:
    found = _by_name(quality_gates({"recon_mse": math.inf}, {"recon_mse": 0.01}, RULES))
    assert found["quality.recon_mse"].outcome == "fail"


# ---------------------------------------------------------------- bundle, smoke, latency


def test_bundle_gate_passes_a_good_bundle_and_fails_a_corrupt_decoder(tmp_path: Path) -> None:
    good = build_tiny_bundle(tmp_path / "good")
    result, loaded = bundle_gate(good.root)
    assert result.outcome == "pass" and result.value == "valid"
    assert good.content_hash in result.detail
    assert loaded is not None and loaded.content_hash == good.content_hash
    two_stage, _ = bundle_gate(build_tiny_bundle(tmp_path / "w", name="tiny-w", w_dim=6).root)
    assert two_stage.outcome == "pass" and "decoder + mapping + encoder" in two_stage.detail

    bad = corrupt_decoder_dir(tmp_path / "bad")
    result, loaded = bundle_gate(bad.root)
    assert result.outcome == "fail" and loaded is None
    assert "decoder.onnx" in result.detail and "not a valid ONNX model" in result.detail


def test_smoke_gate_passes_good_bundles(tmp_path: Path) -> None:
    for bundle in (build_tiny_bundle(tmp_path / "plain"),
                   build_tiny_bundle(tmp_path / "cond", name="tiny-cond", num_classes=3),
                   build_tiny_bundle(tmp_path / "w", name="tiny-w", w_dim=6),
                   build_tiny_bundle(tmp_path / "noenc", with_encoder=False)):
        result = smoke_gate(bundle, _settings(), SmokeConfig())
        assert result.outcome == "pass", result
    assert "encode" not in result.detail  # the last one has no encoder


@pytest.mark.parametrize(("kind", "needle"), [("nan", "NaN or infinite"),
                                              ("out_of_range", "outside output.range")])
def test_smoke_gate_fails_bad_outputs(tmp_path: Path, kind: str, needle: str) -> None:
    bundle = tiny_with_decoder(tmp_path / kind, kind)  # type: ignore[arg-type]
    result = smoke_gate(bundle, _settings(), SmokeConfig())
    assert result.outcome == "fail" and result.value == "bad output"
    assert result.detail.startswith("sample:") and needle in result.detail


def test_latency_gate_compares_with_the_holder(tmp_path: Path) -> None:
    holder = build_tiny_bundle(tmp_path / "holder")
    same = latency_gate(build_tiny_bundle(tmp_path / "same", seed=1), holder, _settings(),
                        QUICK_LATENCY)
    assert same.outcome == "pass", same
    assert same.value.endswith(" ms") and "holder" in same.detail

    slow = tiny_with_decoder(tmp_path / "slow", "slow")  # tens of ms per decode
    strict = QUICK_LATENCY.model_copy(update={"slack_ms": 2.0})
    result = latency_gate(slow, holder, _settings(), strict)
    assert result.outcome == "fail", result
    assert "budget" in result.detail


def test_latency_gate_without_holder_uses_the_absolute_budget(tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b")
    assert latency_gate(bundle, None, _settings(), QUICK_LATENCY).outcome == "pass"
    two_stage = build_tiny_bundle(tmp_path / "w", name="tiny-w", w_dim=6)
    assert latency_gate(two_stage, None, _settings(), QUICK_LATENCY).outcome == "pass"
    tight = QUICK_LATENCY.model_copy(update={"budget_ms": 1e-6})
    result = latency_gate(bundle, None, _settings(), tight)
    assert result.outcome == "fail" and "absolute budget" in result.detail


def test_gate_result_outcomes() -> None:
    assert [GateResult("g", p, "v", "d").outcome for p in (True, False, None)] == [
        "pass", "fail", "skip"]


def test_good_metrics_pass_the_packaged_rules_alone() -> None:
    config = load_gates()
    assert parity_gate(GOOD_METRICS, config.parity).outcome == "pass"
    results = quality_gates(GOOD_METRICS, None, config.metrics,
                            exclude=frozenset({config.parity.metric}))
    assert all(r.passed is not False for r in results), results
