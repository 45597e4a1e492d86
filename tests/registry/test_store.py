"""MLflow registry I/O against real sqlite registries: register, resolve, download, errors."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus

from latentserve.core.errors import InvalidArgument, NotFound
from latentserve.registry.bundle.files import Bundle, load_bundle
from latentserve.registry.bundle.spec import SPEC_FILE, BundleError
from latentserve.registry.store.mlflow_store import (
    TAG_HASH,
    TAG_SCHEMA,
    ModelRecord,
    RegistryClient,
    RegistryUnavailable,
    register_bundle,
    sqlite_path,
)
from latentserve.service.devtools.processes import free_port
from tests.fixtures.tiny import build_tiny_bundle


def test_session_registry_holds_the_tiny_models(
    registry_uri: str, registry_bundles: dict[str, Bundle], tmp_path: Path
) -> None:
    client = RegistryClient(registry_uri)
    assert client.list_models() == [
        ModelRecord("tiny", [1], {"production": 1}),
        ModelRecord("tiny-cond", [1], {"production": 1}),
        ModelRecord("tiny-noenc", [1], {"production": 1}),
        ModelRecord("tiny-w", [1], {"production": 1}),
    ]
    for name, bundle in registry_bundles.items():
        version = client.resolve(name, "production")
        loaded = load_bundle(client.download(name, version, tmp_path / "cache"))
        assert loaded.content_hash == bundle.content_hash
        assert loaded.spec == bundle.spec
    assert load_bundle(tmp_path / "cache" / "tiny-noenc" / "1").encoder_path is None


def test_register_resolve_download_load(empty_registry_uri: str, tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", metrics={"recon_mse": 0.25, "fid": 3.0})
    tracking_env = os.environ.get("MLFLOW_TRACKING_URI")
    version = register_bundle(empty_registry_uri, bundle.root, alias="production")
    assert version == 1
    assert os.environ.get("MLFLOW_TRACKING_URI") == tracking_env  # global state restored

    client = RegistryClient(empty_registry_uri)
    assert client.resolve("tiny", "production") == 1
    client.check_version("tiny", 1)
    tags = client.version_tags("tiny", 1)
    assert tags[TAG_HASH] == bundle.content_hash
    assert tags[TAG_SCHEMA] == "1"
    assert tags["metric.recon_mse"] == "0.25" and tags["metric.fid"] == "3.0"
    assert tags["provenance.generator"] == "tests.fixtures.tiny" and tags["provenance.seed"] == "0"

    path = client.download("tiny", 1, tmp_path / "cache")
    assert path == tmp_path / "cache" / "tiny" / "1"
    assert load_bundle(path).content_hash == bundle.content_hash
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in bundle.root.iterdir())
    assert [p.name for p in path.parent.iterdir()] == ["1"]  # no partial folders left


def test_version_is_a_logged_model_with_plain_files(empty_registry_uri: str,
                                                    tiny_bundle: Bundle) -> None:
    register_bundle(empty_registry_uri, tiny_bundle.root)
    mlflow = MlflowClient(tracking_uri=empty_registry_uri, registry_uri=empty_registry_uri)
    version = mlflow.get_model_version("tiny", "1")
    assert version.source is not None and version.run_id is not None
    assert version.source.startswith("models:/m-")
    model = mlflow.get_logged_model(version.source.removeprefix("models:/"))
    assert model.status == LoggedModelStatus.READY
    assert model.tags[TAG_HASH] == tiny_bundle.content_hash
    artifacts = Path(model.artifact_location.removeprefix("file://"))
    db = sqlite_path(empty_registry_uri)
    assert db is not None and artifacts.is_relative_to(db.parent / "artifacts")
    names = sorted(p.name for p in artifacts.iterdir())
    assert names == sorted(p.name for p in tiny_bundle.root.iterdir())
    assert "MLmodel" not in names and not any(n.endswith(".pkl") for n in names)
    run = mlflow.get_run(version.run_id)
    assert run.info.status == "FINISHED"


def test_metrics_are_logged_on_the_run(empty_registry_uri: str, tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b", metrics={"recon_mse": 0.5})
    register_bundle(empty_registry_uri, bundle.root)
    mlflow = MlflowClient(tracking_uri=empty_registry_uri, registry_uri=empty_registry_uri)
    run_id = mlflow.get_model_version("tiny", "1").run_id
    assert run_id is not None
    assert mlflow.get_run(run_id).data.metrics == {"recon_mse": 0.5}


def test_register_is_idempotent_unless_forced(empty_registry_uri: str, tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b")
    assert register_bundle(empty_registry_uri, bundle.root) == 1
    assert register_bundle(empty_registry_uri, bundle.root, alias="staging") == 1
    client = RegistryClient(empty_registry_uri)
    assert client.list_models() == [ModelRecord("tiny", [1], {"staging": 1})]

    assert register_bundle(empty_registry_uri, bundle.root, force=True) == 2
    assert register_bundle(empty_registry_uri, bundle.root) == 2  # the newest matching version
    other = build_tiny_bundle(tmp_path / "other", seed=1)
    assert register_bundle(empty_registry_uri, other.root, alias="production") == 3
    assert register_bundle(empty_registry_uri, other.root, name="tiny-copy") == 1
    assert client.list_models() == [
        ModelRecord("tiny", [1, 2, 3], {"production": 3, "staging": 1}),
        ModelRecord("tiny-copy", [1], {}),
    ]
    assert client.versions_with_hash("tiny", bundle.content_hash) == [1, 2]


def test_aliases_and_tags(empty_registry_uri: str, tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b")
    register_bundle(empty_registry_uri, bundle.root)
    register_bundle(empty_registry_uri, bundle.root, force=True)
    client = RegistryClient(empty_registry_uri)
    client.set_alias("tiny", "production", 1)
    assert client.resolve("tiny", "production") == 1
    client.set_alias("tiny", "production", 2)
    assert client.resolve("tiny", "production") == 2
    client.set_version_tag("tiny", 2, "gate.latency", "passed")
    assert client.version_tags("tiny", 2)["gate.latency"] == "passed"
    with pytest.raises(NotFound, match="no version 7"):
        client.set_alias("tiny", "production", 7)
    with pytest.raises(InvalidArgument):
        client.set_alias("tiny", "v3", 1)  # MLflow reserves v<number> aliases


def test_not_found(registry_uri: str, tmp_path: Path) -> None:
    client = RegistryClient(registry_uri)
    with pytest.raises(NotFound, match="model 'tiny' has no alias 'canary'"):
        client.resolve("tiny", "canary")
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        client.resolve("nope", "production")
    with pytest.raises(NotFound, match="model 'tiny' has no version 9"):
        client.check_version("tiny", 9)
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        client.download("nope", 1, tmp_path)
    with pytest.raises(NotFound):
        client.version_tags("tiny", 0)


def test_unknown_names_come_with_close_matches(registry_uri: str) -> None:
    client = RegistryClient(registry_uri)
    with pytest.raises(NotFound, match=r"unknown model 'tiny-cnd' \(did you mean 'tiny-cond'"):
        client.resolve("tiny-cnd", "production")
    with pytest.raises(NotFound, match=r"known: .*tiny-noenc"):
        client.resolve("zzz", "production")
    with pytest.raises(NotFound, match=r"has no alias 'prodution' \(did you mean 'production'"):
        client.resolve("tiny", "prodution")
    with pytest.raises(NotFound, match=r"has no version 9 \(versions: 1"):
        client.check_version("tiny", 9)
    with pytest.raises(NotFound) as long_name:
        client.resolve("x" * 100_000, "production")
    assert len(str(long_name.value)) < 500  # a long name is echoed cut, never compared


def test_download_reuses_a_complete_copy_and_replaces_a_damaged_one(
    registry_uri: str, tmp_path: Path
) -> None:
    client = RegistryClient(registry_uri)
    first = client.download("tiny", 1, tmp_path)
    stamp = (first / SPEC_FILE).stat().st_mtime_ns
    assert client.download("tiny", 1, tmp_path) == first
    assert (first / SPEC_FILE).stat().st_mtime_ns == stamp

    (first / "decoder.onnx").write_bytes(b"damaged")
    again = client.download("tiny", 1, tmp_path)
    assert again == first
    load_bundle(again)


def test_concurrent_downloads_share_one_copy(registry_uri: str, tmp_path: Path) -> None:
    clients = [RegistryClient(registry_uri), RegistryClient(registry_uri)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        paths = list(pool.map(lambda i: clients[i % 2].download("tiny-cond", 1, tmp_path),
                              range(6)))
    assert set(paths) == {tmp_path / "tiny-cond" / "1"}
    assert [p.name for p in (tmp_path / "tiny-cond").iterdir()] == ["1"]
    load_bundle(paths[0])


def test_download_from_a_moved_registry(empty_registry_uri: str, tmp_path: Path) -> None:
    bundle = build_tiny_bundle(tmp_path / "b")
    register_bundle(empty_registry_uri, bundle.root, alias="production")
    db = sqlite_path(empty_registry_uri)
    assert db is not None
    moved = tmp_path / "moved"
    db.parent.rename(moved)
    client = RegistryClient(f"sqlite:///{moved / db.name}")
    path = client.download("tiny", client.resolve("tiny", "production"), tmp_path / "cache")
    assert load_bundle(path).content_hash == bundle.content_hash


def test_invalid_bundles_and_names_are_refused(empty_registry_uri: str,
                                               tiny_bundle: Bundle) -> None:
    with pytest.raises(InvalidArgument, match="model name 'bad name'"):
        register_bundle(empty_registry_uri, tiny_bundle.root, name="bad name")
    (tiny_bundle.root / "decoder.onnx").unlink()
    with pytest.raises(BundleError, match=r"decoder\.onnx"):
        register_bundle(empty_registry_uri, tiny_bundle.root)
    assert RegistryClient(empty_registry_uri).list_models() == []


def test_a_pyfunc_version_is_refused_on_download(empty_registry_uri: str,
                                                 tmp_path: Path) -> None:
    pyfunc = tmp_path / "pyfunc"
    pyfunc.mkdir()
    (pyfunc / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    (pyfunc / "python_model.pkl").write_bytes(b"\x80\x04K\x01.")
    mlflow = MlflowClient(tracking_uri=empty_registry_uri, registry_uri=empty_registry_uri)
    mlflow.create_registered_model("pickled")
    mlflow.create_model_version("pickled", source=pyfunc.as_uri())
    client = RegistryClient(empty_registry_uri)
    assert client.list_models() == []
    with pytest.raises(BundleError, match="never pickles"):
        client.download("pickled", 1, tmp_path / "cache")
    assert not (tmp_path / "cache" / "pickled" / "1").exists()


def test_unreachable_registries_fail_fast_with_the_uri(tmp_path: Path,
                                                       tiny_bundle: Bundle) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a sqlite database" * 100)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    uris = [
        f"http://127.0.0.1:{free_port()}",
        f"sqlite:///{garbage}",
        f"sqlite:///{tmp_path / 'missing' / 'mlflow.db'}",
    ]
    for uri in uris:
        client = RegistryClient(uri)
        started = time.monotonic()
        with pytest.raises(RegistryUnavailable) as caught:
            client.list_models()
        assert uri in str(caught.value)
        assert time.monotonic() - started < 10
        with pytest.raises(RegistryUnavailable):
            client.resolve("tiny", "production")
    assert not (tmp_path / "missing").exists()
    with pytest.raises(RegistryUnavailable, match="a-file"):
        register_bundle(f"sqlite:///{blocker / 'sub' / 'mlflow.db'}", tiny_bundle.root)
    with pytest.raises(RegistryUnavailable, match=r"garbage\.db"):
        register_bundle(f"sqlite:///{garbage}", tiny_bundle.root)
