"""deploy/k8s: every overlay and component renders, validates strictly, and is hardened.

Objects are validated with kubernetes-validate (schemas ship in its wheel, no network) in strict
mode against Kubernetes 1.30 and the newest version it knows. Prometheus-operator objects have
no schema there: their metadata is validated against ObjectMeta and their spec is checked here.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
import promql_parser
import pytest
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from latentserve.service.metrics import ServiceMetrics
from tests.fixtures.deploy import (
    K8S,
    TARGETS,
    Obj,
    all_containers,
    container_port,
    labels_match,
    objects,
    one,
    pod_specs,
    render,
)

KUBE_VERSIONS = ("1.30.0", kv_utils.latest_version())
CRD_GROUPS = ("monitoring.coreos.com/",)


def _exported_metrics() -> set[str]:
    """Every series name the service exports (latentserve.service.metrics.ServiceMetrics)."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    return {
        family.name + suffix
        for family in ServiceMetrics().registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }


def _validate(obj: Obj, version: str) -> str | None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path)
        return f"{obj['kind']}/{obj['metadata']['name']} @ {path or '<root>'}: {exc.message}"
    return None


def test_every_overlay_and_component_is_rendered() -> None:
    listed = {o for o, _ in TARGETS.values()} | {c for _, cs in TARGETS.values() for c in cs}
    present = {
        f"{kind}/{d.name}"
        for kind in ("overlays", "components")
        for d in (K8S / kind).iterdir()
        if (d / "kustomization.yaml").exists()
    }
    assert present <= listed, f"not rendered by the tests: {sorted(present - listed)}"


def _unique_objects() -> dict[str, tuple[Obj, list[str]]]:
    """Every rendered non-CRD object once (targets share most of them), with its targets."""
    unique: dict[str, tuple[Obj, list[str]]] = {}
    for target in TARGETS:
        for obj in render(target):
            if not obj["apiVersion"].startswith(CRD_GROUPS):
                key = json.dumps(obj, sort_keys=True)
                unique.setdefault(key, (obj, []))[1].append(target)
    return unique


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_objects_validate_strictly(version: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # kubernetes-validate re-reads its schema files for every object; read each once.
    monkeypatch.setattr(kv_utils, "schema_contents", functools.cache(kv_utils.schema_contents))
    errors = [
        f"{err} (in {', '.join(targets)})"
        for obj, targets in _unique_objects().values()
        for err in [_validate(obj, version)]
        if err
    ]
    assert not errors, f"against Kubernetes {version}:\n" + "\n".join(errors)


def test_validator_rejects_unknown_fields() -> None:
    """Guards the check above: strict mode must reject what the API server would drop."""
    deployment = one(render("embedded"), "Deployment", "latentserve")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    assert _validate(deployment, KUBE_VERSIONS[0]) is not None


def _object_meta_validator(version: str) -> jsonschema.Draft202012Validator:
    """Strict ObjectMeta schema of that Kubernetes version, from kubernetes-validate's files."""
    definitions = kv_utils.schema_contents(
        f"kubernetes-json-schema/v{version}-local-strict/_definitions.json", version
    )
    registry: Registry[Any] = Resource.from_contents(definitions) @ Registry()
    ref = definitions["$id"] + "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    return jsonschema.Draft202012Validator({"$ref": ref}, registry=registry)


def _crd_objects() -> list[tuple[str, Obj]]:
    return [
        (target, obj)
        for target in TARGETS
        for obj in render(target)
        if obj["apiVersion"].startswith(CRD_GROUPS)
    ]


def test_crd_metadata_is_valid_object_meta() -> None:
    crds = _crd_objects()
    assert {o["kind"] for _, o in crds} == {"ServiceMonitor", "PrometheusRule"}
    validator = _object_meta_validator(KUBE_VERSIONS[0])
    assert list(validator.iter_errors({"name": "x", "lables": {}})), "ObjectMeta check not strict"
    for target, obj in crds:
        errors = [e.message for e in validator.iter_errors(obj["metadata"])]
        assert not errors, f"{target}: {obj['kind']} metadata: {errors}"
        assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, obj["kind"]
        assert obj["apiVersion"] == "monitoring.coreos.com/v1"


@pytest.mark.parametrize("target", ["embedded+components", "triton-gpu+components"])
def test_service_monitor_scrapes_every_metrics_port(target: str) -> None:
    docs = render(target)
    monitor = one(docs, "ServiceMonitor", "latentserve")["spec"]
    assert set(monitor) == {"selector", "endpoints"}
    selector = monitor["selector"]
    assert set(selector) <= {"matchLabels", "matchExpressions"}
    components = next(
        e["values"]
        for e in selector["matchExpressions"]
        if e["key"] == "app.kubernetes.io/component" and e["operator"] == "In"
    )
    selected = [
        s
        for s in objects(docs, "Service")
        if labels_match(selector["matchLabels"], s["metadata"]["labels"])
        and s["metadata"]["labels"].get("app.kubernetes.io/component") in components
    ]
    assert {e["port"] for e in monitor["endpoints"]} == {"metrics"}
    for endpoint in monitor["endpoints"]:
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}
        assert endpoint["path"] == "/metrics"
        assert re.fullmatch(r"\d+s", endpoint["interval"])
    with_metrics = [s for s in selected if any(p["name"] == "metrics" for p in s["spec"]["ports"])]
    expected = {"latentserve"} | ({"latentserve-triton"} if target.startswith("triton") else set())
    assert {s["metadata"]["name"] for s in with_metrics} == expected


def test_prometheus_rules_are_well_formed() -> None:
    rule_obj = one(render("embedded+components"), "PrometheusRule", "latentserve")
    rules = [r for g in rule_obj["spec"]["groups"] for r in g["rules"]]
    exported = _exported_metrics()
    assert all(set(g) <= {"name", "rules", "interval"} for g in rule_obj["spec"]["groups"])
    for rule in rules:
        name = rule["alert"]
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        try:
            promql_parser.parse(rule["expr"])
        except ValueError as exc:
            pytest.fail(f"{name}: invalid PromQL: {exc}")
        used = set(re.findall(r"latentserve_\w+", rule["expr"]))
        assert used and used <= exported, f"{name}: not exported by the service: {used - exported}"
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "0s")), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
    exprs = " ".join(r["expr"] for r in rules)
    for needed in (
        "latentserve_requests_total",  # error ratio
        "histogram_quantile(0.99",  # p99 latency
        "latentserve_registry_up",  # registry unreachable
        "latentserve_model_load_failures_total",  # model load failures
    ):
        assert needed in exprs, f"no alert uses {needed}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_container_is_hardened(target: str) -> None:
    problems: list[str] = []
    for workload, pod in pod_specs(render(target)):
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        pod_sc = pod.get("securityContext", {})
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken not false")
        for c in all_containers(pod):
            at = f"{where}/{c['name']}"
            sc = c.get("securityContext", {})
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                missing = {"cpu", "memory"} - set(res.get(part, {}))
                if missing:
                    problems.append(f"{at}: no {part} for {sorted(missing)}")
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in c:
                    problems.append(f"{at}: no {probe}")
            if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
                problems.append(f"{at}: runAsNonRoot not set")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{at}: root filesystem writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{at}: allowPrivilegeEscalation not false")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{at}: capabilities not dropped")
            seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
            if seccomp.get("type") != "RuntimeDefault":
                problems.append(f"{at}: seccomp profile not RuntimeDefault")
            image = c["image"]
            if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                problems.append(f"{at}: image {image} has no pinned tag")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("target", TARGETS)
def test_service_accounts_mount_no_token(target: str) -> None:
    docs = render(target)
    accounts = {sa["metadata"]["name"]: sa for sa in objects(docs, "ServiceAccount")}
    assert all(sa.get("automountServiceAccountToken") is False for sa in accounts.values())
    for workload, pod in pod_specs(docs):
        assert pod.get("serviceAccountName") in accounts, workload["metadata"]["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_services_select_pods_and_ports(target: str) -> None:
    docs = render(target)
    pods = [(w, p) for w, p in pod_specs(docs)]
    for svc in objects(docs, "Service"):
        name = svc["metadata"]["name"]
        matched = [
            (w, p)
            for w, p in pods
            if labels_match(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matched) == 1, f"Service/{name} selects {len(matched)} workloads"
        containers = matched[0][1]["containers"]
        for port in svc["spec"]["ports"]:
            assert any(
                port["targetPort"] in {p.get("name") for p in c.get("ports", [])}
                for c in containers
            ), f"Service/{name} port {port['name']}: no container port {port['targetPort']}"
            if port["name"] == "grpc":
                assert port.get("appProtocol") == "grpc", (
                    f"Service/{name}: grpc without appProtocol"
                )


@pytest.mark.parametrize("target", TARGETS)
def test_network_policies_open_only_declared_ports(target: str) -> None:
    docs = render(target)
    for policy in objects(docs, "NetworkPolicy"):
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        selected = [
            p
            for w, p in pod_specs(docs)
            if labels_match(
                spec["podSelector"]["matchLabels"], w["spec"]["template"]["metadata"]["labels"]
            )
        ]
        assert selected, f"NetworkPolicy/{policy['metadata']['name']} selects no pods"
        for rule in spec["ingress"]:
            assert rule["from"], "an ingress rule without `from` admits everyone"
            for port in rule["ports"]:
                for pod in selected:
                    container_port(pod["containers"][0], port["port"])


def test_service_ingress_policy_admits_labelled_clients_and_monitoring() -> None:
    spec = one(render("embedded"), "NetworkPolicy", "latentserve")["spec"]
    by_port = {r["ports"][0]["port"]: r["from"] for r in spec["ingress"]}
    assert by_port[50051] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"latentserve.io/client": "true"}}}
    ]
    assert by_port[9464] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_rollout_autoscaling_and_disruption_budget() -> None:
    docs = render("embedded")
    deployment = one(docs, "Deployment", "latentserve")
    spec = deployment["spec"]
    assert "replicas" not in spec, "replicas belong to the HorizontalPodAutoscaler"
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod_labels = spec["template"]["metadata"]["labels"]
    hpa = one(docs, "HorizontalPodAutoscaler", "latentserve")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "latentserve",
    }
    assert hpa["minReplicas"] >= 2
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    pdb = one(docs, "PodDisruptionBudget", "latentserve")["spec"]
    assert labels_match(pdb["selector"]["matchLabels"], pod_labels)
    assert pdb["maxUnavailable"] < hpa["minReplicas"]


def test_queue_depth_component_adds_the_custom_metric() -> None:
    hpa = one(render("embedded+components"), "HorizontalPodAutoscaler", "latentserve")["spec"]
    kinds = [(m["type"], m.get("pods", {}).get("metric", {}).get("name")) for m in hpa["metrics"]]
    assert kinds == [("Resource", None), ("Pods", "latentserve_queue_items")]
    assert "latentserve_queue_items" in _exported_metrics()
