"""deploy/ agrees with the code: settings names and values, ports, health names, drain timing.

Everything is read from the rendered manifests (`kubectl kustomize`), the Dockerfiles and
triton-serve.sh, and compared with latentserve.service.settings.
"""

from __future__ import annotations

import base64
import re
import tomllib
from typing import Any

import pytest

from latentserve.service.settings import HEALTH_SERVICE_NAME, Settings
from tests.fixtures.deploy import (
    DOCKER,
    REPO,
    TARGETS,
    Obj,
    container,
    container_port,
    dockerfile_stages,
    dockerfiles,
    env_literals,
    named,
    objects,
    one,
    pod_specs,
    render,
    render_text,
)

PREFIX = "LATENTSERVE_"
SERVICE_TARGETS = list(TARGETS)
TRITON_TARGETS = [t for t in TARGETS if t.startswith("triton-gpu")]
TRITON_SCRIPT = DOCKER / "triton-serve.sh"


def _env_name(field: str) -> str:
    return PREFIX + field.upper()


SETTING_ENV_NAMES = {_env_name(f) for f in Settings.model_fields}


def _settings(docs: list[Obj]) -> Settings:
    """The service container's settings as the pod would read them (literal values only)."""
    _, c = container(docs, "latentserve", "latentserve")
    values = {
        k[len(PREFIX) :].lower(): v
        for k, v in env_literals(docs, c).items()
        if k.startswith(PREFIX)
    }
    return Settings.model_validate(values)


def _script_flag(flag: str) -> str:
    match = re.search(rf"--{flag}=(\S+)", TRITON_SCRIPT.read_text())
    assert match, f"{TRITON_SCRIPT.name} does not pass --{flag}"
    return match[1].strip("\"'")


@pytest.mark.parametrize("target", SERVICE_TARGETS)
def test_every_latentserve_name_is_a_setting(target: str) -> None:
    used = set(re.findall(r"\bLATENTSERVE_[A-Z0-9_]+\b", render_text(target)))
    assert used, "the manifests set no LATENTSERVE_* variable"
    unknown = used - SETTING_ENV_NAMES
    assert not unknown, f"not fields of Settings (typos are ignored at run time): {sorted(unknown)}"


def test_dockerfiles_and_settings_file_use_only_settings() -> None:
    sources = [*dockerfiles(), REPO / "deploy/k8s/base/settings.env"]
    for path in sources:
        unknown = (
            set(re.findall(r"\bLATENTSERVE_[A-Z0-9_]+\b", path.read_text())) - SETTING_ENV_NAMES
        )
        assert not unknown, f"{path.name}: not fields of Settings: {sorted(unknown)}"


@pytest.mark.parametrize("target", SERVICE_TARGETS)
def test_settings_values_are_valid(target: str) -> None:
    docs = render(target)
    settings = _settings(docs)
    assert settings.host == "0.0.0.0", "the pod must listen on all interfaces"
    _, c = container(docs, "latentserve", "latentserve")
    secret_env = {e["name"]: e["valueFrom"] for e in c["env"] if "valueFrom" in e}
    assert secret_env["LATENTSERVE_REGISTRY_URI"]["secretKeyRef"]["key"] == "uri"
    assert not secret_env["LATENTSERVE_REGISTRY_URI"]["secretKeyRef"].get("optional", False)


@pytest.mark.parametrize("target", SERVICE_TARGETS)
def test_ports_agree_with_settings(target: str) -> None:
    docs = render(target)
    settings = _settings(docs)
    _, c = container(docs, "latentserve", "latentserve")
    assert container_port(c, "grpc") == settings.port
    assert container_port(c, "metrics") == settings.metrics_port
    assert container_port(c, "http") == settings.http_port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["grpc"]["port"] == settings.port, probe
    template = one(docs, "Deployment", "latentserve")["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == settings.metrics_port
    service = one(docs, "Service", "latentserve")
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    assert container_port(c, ports["grpc"]["targetPort"]) == settings.port
    assert container_port(c, ports["metrics"]["targetPort"]) == settings.metrics_port
    assert container_port(c, ports["http"]["targetPort"]) == settings.http_port
    policy = one(docs, "NetworkPolicy", "latentserve")["spec"]
    assert {p["port"] for r in policy["ingress"] for p in r["ports"]} == {
        settings.port,
        settings.metrics_port,
        settings.http_port,
    }


def test_image_exposes_the_default_ports() -> None:
    final = dockerfile_stages(DOCKER / "service.Dockerfile")[-1]
    exposed = {int(p) for args in final.all("EXPOSE") for p in args.split()}
    defaults = Settings.model_validate({})
    http_port = _settings(render(SERVICE_TARGETS[0])).http_port  # off by default; manifests set it
    assert exposed == {defaults.port, defaults.metrics_port, http_port}


@pytest.mark.parametrize("target", SERVICE_TARGETS)
def test_probes_use_the_health_service_names(target: str) -> None:
    _, c = container(render(target), "latentserve", "latentserve")
    assert c["readinessProbe"]["grpc"]["service"] == HEALTH_SERVICE_NAME
    assert c["startupProbe"]["grpc"]["service"] == HEALTH_SERVICE_NAME
    assert c["livenessProbe"]["grpc"]["service"] in {"", HEALTH_SERVICE_NAME}


@pytest.mark.parametrize("target", SERVICE_TARGETS)
def test_termination_grace_exceeds_prestop_plus_drain(target: str) -> None:
    docs = render(target)
    pod, c = container(docs, "latentserve", "latentserve")
    pre_stop = c["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = _settings(docs).grace_period_s
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain


@pytest.mark.parametrize("target", SERVICE_TARGETS)
def test_writable_paths_are_empty_dirs(target: str) -> None:
    docs = render(target)
    pod, c = container(docs, "latentserve", "latentserve")
    env = env_literals(docs, c)
    empty_dirs = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    for path in (str(_settings(docs).cache_dir), env["HOME"], env["TMPDIR"], "/tmp"):
        mount = next((p for p in mounts if path == p or path.startswith(p + "/")), None)
        assert mount is not None, f"{path} is on the read-only root filesystem"
        assert mounts[mount] in empty_dirs, f"{path} is not on an emptyDir"


def test_service_image_tag_is_the_project_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    _, c = container(render("embedded"), "latentserve", "latentserve")
    assert c["image"] == f"latentserve/service:{version}"


def test_embedded_overlay_runs_the_service_alone() -> None:
    docs = render("embedded")
    assert _settings(docs).backend == "embedded"
    assert [w["metadata"]["name"] for w, _ in pod_specs(docs)] == ["latentserve"]


@pytest.mark.parametrize("target", TRITON_TARGETS)
def test_triton_url_reaches_the_triton_grpc_port(target: str) -> None:
    docs = render(target)
    settings = _settings(docs)
    assert settings.backend == "triton"
    assert settings.triton_model_control == "explicit"
    assert settings.triton_shared_memory is False, "Triton is in another pod; shm is restricted"
    host, _, port = settings.triton_url.rpartition(":")
    service = one(docs, "Service", host)
    svc_port = next(p for p in service["spec"]["ports"] if p["port"] == int(port))
    assert svc_port["appProtocol"] == "grpc"
    _, triton = container(docs, "latentserve-triton", "triton")
    grpc_port = container_port(triton, svc_port["targetPort"])
    assert grpc_port == int(_script_flag("grpc-port"))
    assert container_port(triton, "metrics") == int(_script_flag("metrics-port"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert triton[probe]["grpc"]["port"] == grpc_port, probe


@pytest.mark.parametrize("target", TRITON_TARGETS)
def test_triton_pod_runs_on_a_gpu_and_drains(target: str) -> None:
    docs = render(target)
    pod, triton = container(docs, "latentserve-triton", "triton")
    resources: dict[str, Any] = triton["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["nodeSelector"]
    pre_stop = triton["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + int(_script_flag("exit-timeout-secs"))
    env = env_literals(docs, triton)
    mounts = {m["mountPath"] for m in triton["volumeMounts"]}
    assert env["TRITON_MODEL_REPOSITORY"] in mounts and "/tmp" in mounts


def test_mlflow_component_points_the_service_at_its_server() -> None:
    docs = render("embedded+components")
    secret = named(docs, "Secret", "latentserve-registry")
    uri = base64.b64decode(secret["data"]["uri"]).decode()
    match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)", uri)
    assert match, uri
    service = one(docs, "Service", match[1])
    assert int(match[2]) in {p["port"] for p in service["spec"]["ports"]}
    _, c = container(docs, "latentserve", "latentserve")
    ref = next(e for e in c["env"] if e["name"] == "LATENTSERVE_REGISTRY_URI")
    assert ref["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert objects(docs, "StatefulSet"), "PostgreSQL backend store missing"
