"""The README's "Serve your own generator" example, run as written: the script it shows
(trained for a few steps), then its shell commands against a throw-away sqlite registry and a
real `latentserve serve` process on a free port, including the hot swap to version 2 and the
bundle built from plain ONNX files."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from latentserve.client import Client
from latentserve.core import seeding
from latentserve.registry.bundle.files import load_bundle
from latentserve.registry.store.mlflow_store import RegistryClient

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Serve your own generator"
TRAIN_STEPS = 20
"""Training steps in the test (the README's default trains for about a minute)."""
DEADLINE_S = 180.0
"""How long the hot swap may take to show in responses on a loaded machine."""
PACE_S = 0.05
"""Pause between the background requests of the hot swap, leaving CPU to the promotion gates."""
ANNOUNCE = re.compile(r"on (127\.0\.0\.1:\d+) \(metrics: ")


def readme_block(mark: str) -> str:
    """The fenced code block right after `<!-- own-generator:<mark> -->` in the section."""
    text = README.read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    after = text.split(f"<!-- own-generator:{mark} -->", 1)[1]
    return after.split("```", 2)[1].split("\n", 1)[1]


def commands(block: str) -> list[str]:
    """Shell command lines of a block: continuations joined, comments and blanks dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    return out


@dataclass
class Shell:
    """Runs README command lines in one folder with the environment they build up."""

    cwd: Path
    env: dict[str, str]
    log: list[str] = field(default_factory=list)

    def run(self, line: str) -> str:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            self.env[name] = os.path.expandvars(value.replace("$PWD", str(self.cwd)))
            return ""
        if line.startswith("python my_generator.py"):
            line = f"{shlex.quote(sys.executable)} {line.removeprefix('python ')} " \
                   f"--steps {TRAIN_STEPS}"
        done = subprocess.run(["bash", "-c", line], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=600, check=False)
        self.log.append(f"$ {line}\n{done.stdout}{done.stderr}")
        assert done.returncode == 0, "\n".join(self.log[-3:])
        return done.stdout

    def block(self, mark: str) -> None:
        for line in commands(readme_block(mark)):
            self.run(line)

    def serve(self, line: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=self.cwd, env=self.env,
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        seen = []
        for text in proc.stderr:
            seen.append(text)
            found = ANNOUNCE.search(text)
            if found:
                threading.Thread(target=proc.stderr.read, daemon=True).start()
                self.env["LATENTSERVE_ADDRESS"] = found.group(1)
                return proc
        raise AssertionError("the server exited before serving:\n" + "".join(seen))


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATENTSERVE_")}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "MLFLOW_DISABLE_TELEMETRY": "true", "LATENTSERVE_PORT": "0",
            "LATENTSERVE_METRICS_PORT": "0", "LATENTSERVE_CACHE_DIR": str(tmp_path / "cache"),
            "LATENTSERVE_REGISTRY_POLL_S": "0.5", "LATENTSERVE_LOG_LEVEL": "WARNING",
            "OMP_NUM_THREADS": "2"}
    (tmp_path / "my_generator.py").write_text(readme_block("script"))
    return Shell(tmp_path, env)


@pytest.fixture
def served(shell: Shell) -> Iterator[Shell]:
    """The build block run, then the README's serve command running."""
    shell.block("build")
    (line,) = commands(readme_block("serve"))
    proc = shell.serve(line)
    try:
        yield shell
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Traffic(threading.Thread):
    """Sample requests back to back until stopped: the versions that answered, any failure."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True)
        self.address = address
        self.versions: list[int] = []
        self.failures: list[BaseException] = []
        self.halt = threading.Event()

    def run(self) -> None:
        with Client(self.address, timeout_s=60, retries=0) as client:
            seed = 0
            while not self.halt.is_set():
                try:
                    got = client.sample("my-gan", n=2, seed=seed, output="latents")
                    self.versions.append(got.model.version)
                except Exception as exc:  # every failure is a finding
                    self.failures.append(exc)
                seed += 1
                self.halt.wait(PACE_S)


def _mapped(bundle_root: Path, z: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(bundle_root / "mapping.onnx"),
                                   providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["w"], {"z": z})[0], np.float64)


@pytest.mark.timeout(900)
def test_readme_own_generator_example(served: Shell) -> None:
    root = served.cwd
    served.block("use")
    assert (root / "samples.png").is_file() and (root / "sefa1.png").is_file()
    bundle = load_bundle(root / "my-gan")
    spec = bundle.spec
    assert spec.mapping is not None and spec.editing_space == "w"
    assert (spec.latent_dim, spec.editing_dim) == (16, 32)
    assert set(bundle.directions) == {"sefa0", "sefa1", "sefa2", "sefa3"}

    address = served.env["LATENTSERVE_ADDRESS"]
    with Client(address, timeout_s=60) as client:
        info = client.get_model("my-gan")
        assert (info.editing_space, info.editing_dim, info.model.version) == ("w", 32, 1)
        # Sample with ψ = 0.5 is w̄ + ψ (mapping(z) − w̄), z from SeedSequence((seed, i))
        got = client.sample("my-gan", n=4, seed=7, truncation_psi=0.5, output="latents")
        assert got.latent_space == "w"
        z = seeding.sample_latents(7, 4, spec.latent_dim)
        center = np.asarray(spec.truncation_center, np.float64)
        expected = center + 0.5 * (_mapped(bundle.root, z) - center)
        np.testing.assert_allclose(got.latents, expected, atol=1e-5)
        # a discovered direction moves the images, more with more strength
        strengths = [0.0, 1.0, 2.0, 3.0]
        sweep = client.edit("my-gan", seeds=[1, 2], direction="sefa0", strengths=strengths)
        images = np.asarray(sweep.images, np.float64).reshape(2, len(strengths), -1)
        change = np.abs(images - images[:, :1]).mean(axis=2)[:, 1:]
        assert np.all(change > 0) and np.all(np.diff(change, axis=1) > 0), change

    traffic = Traffic(address)
    traffic.start()
    try:
        served.block("swap")
        registry = RegistryClient(served.env["LATENTSERVE_REGISTRY_URI"])
        assert registry.resolve("my-gan", "production") == 2
        deadline = time.monotonic() + DEADLINE_S
        with Client(address, timeout_s=60) as client:
            while client.sample("my-gan", n=1, output="latents").model.version != 2:
                assert time.monotonic() < deadline, "the service never switched to version 2"
                assert not traffic.failures, traffic.failures[:3]
    finally:
        traffic.halt.set()
        traffic.join(120)
    assert not traffic.failures, traffic.failures[:3]
    assert traffic.versions and traffic.versions[0] == 1, traffic.versions[:3]
    switched = traffic.versions.index(2) if 2 in traffic.versions else len(traffic.versions)
    assert set(traffic.versions[switched:]) <= {2}, "a request went back to version 1"
    served.block("swapped")
    assert (root / "pc_b.png").is_file()
    with Client(address, timeout_s=60) as client:
        info = client.get_model("my-gan")
        assert info.model.version == 2
        assert {"pc_a", "pc_b", "pc_c", "pc_d"} <= {d.name for d in info.directions}

    served.block("onnx")
    onnx_bundle = load_bundle(root / "my-gan-onnx")
    assert onnx_bundle.spec.mapping is not None and onnx_bundle.spec.editing_space == "w"
    assert onnx_bundle.spec.provenance["source"] == "onnx"
    assert "onnx_determinism_max_abs_diff" in onnx_bundle.spec.metrics
    assert (root / "onnx-samples.png").is_file()
    with Client(address, timeout_s=60) as client:
        got = client.sample("my-gan-onnx", n=2, seed=3, output="latents")
        np.testing.assert_allclose(
            got.latents, _mapped(onnx_bundle.root, seeding.sample_latents(3, 2, 16)),
            atol=1e-5)
