"""MLflow model registry I/O: register bundles as logged-model versions, resolve, download.

Each registered version is an MLflow 3 *logged model* whose artifacts are exactly the bundle's
plain files (no MLmodel flavour, no pickle); its version tags carry the provenance, the
content hash (`latentserve.content_hash`), the schema version and the spec metrics
(`metric.<name>`, also logged as MLflow metrics of the registering run). Aliases, never stages.
For `sqlite:///` registries the artifacts live next to the database, in `<db dir>/artifacts`.

Example::

    version = register_bundle("sqlite:////tmp/reg/mlflow.db", Path("zoo/tiny"), alias="production")
    client = RegistryClient("sqlite:////tmp/reg/mlflow.db")
    bundle_dir = client.download("tiny", client.resolve("tiny", "production"), Path("/tmp/cache"))
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
# MLflow draws a tqdm bar per artifact download when tqdm is installed (the [ui] extra brings
# it): on stdout it would corrupt the registry commands' output and fill the server's logs.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import contextlib
import json
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from latentserve.core.errors import (
    InvalidArgument,
    LatentServeError,
    NotFound,
    Unavailable,
)
from latentserve.core.names import LISTED_NAMES, did_you_mean, shown
from latentserve.registry.bundle.files import Bundle, content_hash, load_bundle
from latentserve.registry.bundle.spec import SPEC_FILE, BundleError

EXPERIMENT = "latentserve"
"""The MLflow experiment holding the registering runs and logged models."""
TAG_HASH = "latentserve.content_hash"
TAG_SCHEMA = "latentserve.schema_version"
TAG_METRIC_PREFIX = "metric."
TAG_PROVENANCE_PREFIX = "provenance."
MODEL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_T = TypeVar("_T")
_GLOBAL_URI_LOCK = threading.Lock()


class RegistryUnavailable(Unavailable):
    """The registry cannot be reached or read; the message names its URI."""


@dataclass(frozen=True)
class ModelRecord:
    """One registered generator: its latentserve versions (ascending) and aliases."""

    name: str
    versions: list[int] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)


def sqlite_path(registry_uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (None for other schemes)."""
    if not registry_uri.startswith("sqlite:///"):
        return None
    return Path(unquote(registry_uri[len("sqlite:///"):].split("?", 1)[0]))


class RegistryClient:
    """Thread-safe, blocking access to one MLflow registry (call it via asyncio.to_thread).

    `create=True` makes a missing sqlite database (and its folder); otherwise a missing
    database is reported as `RegistryUnavailable`. Nothing is contacted until the first call.

    Example::

        client = RegistryClient(RegistrySettings().registry_uri)
        version = client.resolve("sprites-vae", "production")
    """

    def __init__(self, registry_uri: str, *, create: bool = False) -> None:
        self.registry_uri = registry_uri
        self._create = create
        self._db = sqlite_path(registry_uri)
        self._client: MlflowClient | None = None
        self._lock = threading.Lock()
        self._download_locks: dict[tuple[str, int], threading.Lock] = {}

    # ------------------------------------------------------------ reads

    def list_models(self) -> list[ModelRecord]:
        """Every registered model with at least one latentserve version, sorted by name."""
        client = self._mlflow()
        versions: dict[str, list[int]] = {}
        for mv in self._call(lambda: _all_pages(client.search_model_versions)):
            if TAG_HASH in mv.tags:
                versions.setdefault(mv.name, []).append(int(mv.version))
        models = self._call(lambda: _all_pages(client.search_registered_models))
        records = []
        for model in sorted(models, key=lambda m: m.name):
            found = sorted(versions.get(model.name, []))
            if found:
                aliases = {a: int(v) for a, v in model.aliases.items() if int(v) in found}
                records.append(ModelRecord(model.name, found, dict(sorted(aliases.items()))))
        return records

    def resolve(self, name: str, alias: str) -> int:
        """The version `name@alias` points to; NotFound for an unknown model or alias."""
        client = self._mlflow()
        try:
            return int(self._call(lambda: client.get_model_version_by_alias(name, alias)).version)
        except NotFound:
            self._model(name)
            aliases = self._call(lambda: client.get_registered_model(name)).aliases
            raise NotFound(f"model {shown(name)} has no alias {shown(alias)}"
                           f"{did_you_mean(alias, aliases)}") from None

    def check_version(self, name: str, version: int) -> None:
        """Raise NotFound unless `name` has version `version`."""
        self._version(name, version)

    def version_identity(self, name: str, version: int) -> str:
        """What tells this version apart from any other that ever had its number: its creation
        time and content hash (a model deleted and registered again restarts at version 1)."""
        mv = self._version(name, version)
        return f"{mv.creation_timestamp}:{mv.tags.get(TAG_HASH, '')}"

    def version_tags(self, name: str, version: int) -> dict[str, str]:
        """The tags of one version (provenance, content hash, metrics, gate results)."""
        return dict(self._version(name, version).tags)

    def versions_with_hash(self, name: str, digest: str) -> list[int]:
        """Versions of `name` whose bundle has content hash `digest` (ascending)."""
        if not MODEL_NAME_PATTERN.match(name):
            return []
        client = self._mlflow()
        found = self._call(lambda: _all_pages(client.search_model_versions, f"name = '{name}'"))
        return sorted(int(mv.version) for mv in found if mv.tags.get(TAG_HASH) == digest)

    def download(self, name: str, version: int, dest: Path) -> Path:
        """Copy the version's bundle to `dest/<name>/<version>/` (reused when already complete).

        The files are downloaded to a temporary folder, checked against the version's content
        hash, and renamed into place, so a reader never sees a partial bundle.
        """
        mv = self._version(name, version)
        final = Path(dest) / name / str(version)
        expected = mv.tags.get(TAG_HASH)
        with self._lock:
            lock = self._download_locks.setdefault((name, version), threading.Lock())
        with lock:
            if self._complete(final, expected):
                return final
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{version}.partial-", dir=final.parent))
            try:
                source = self._artifact_uri(name, version)
                got = Path(self._call(lambda: mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=str(staging), tracking_uri=self.registry_uri)))
                if not (got / SPEC_FILE).is_file():
                    raise BundleError(f"{name} v{version}: artifacts at {source} hold no "
                                      f"{SPEC_FILE}; latentserve loads only bundles with "
                                      f"{SPEC_FILE} and plain ONNX files, never pickles")
                if expected and content_hash(got) != expected:
                    raise BundleError(f"{name} v{version}: files downloaded from {source} do "
                                      f"not match its {TAG_HASH} {expected}")
                if final.exists():
                    if self._complete(final, expected):  # another process was quicker
                        return final
                    shutil.rmtree(final)
                try:
                    got.rename(final)
                except OSError:
                    if not self._complete(final, expected):
                        raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        return final

    # ------------------------------------------------------------ writes

    def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point `name@alias` at `version` (NotFound if the version does not exist)."""
        self._version(name, version)
        client = self._mlflow()
        self._call(lambda: client.set_registered_model_alias(name, alias, str(version)),
                   invalid_field="alias")

    def set_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Set one tag on a version (e.g. a promotion gate result)."""
        self._version(name, version)
        client = self._mlflow()
        self._call(lambda: client.set_model_version_tag(name, str(version), key, value),
                   invalid_field="tag")

    def delete_version_tag(self, name: str, version: int, key: str) -> None:
        """Remove one tag from a version (nothing happens when it is not set)."""
        client = self._mlflow()
        with contextlib.suppress(NotFound):
            self._call(lambda: client.delete_model_version_tag(name, str(version), key),
                       invalid_field="tag")

    def register(self, bundle_dir: Path, name: str | None = None, alias: str | None = None,
                 *, force: bool = False) -> int:
        """Validate and register a bundle; see `register_bundle`."""
        bundle = load_bundle(Path(bundle_dir))
        name = name or bundle.spec.name
        if not MODEL_NAME_PATTERN.match(name):
            raise InvalidArgument(f"model name {name!r} must match {MODEL_NAME_PATTERN.pattern}",
                                  field="name")
        existing = [] if force else self.versions_with_hash(name, bundle.content_hash)
        version = existing[-1] if existing else self._create_version(bundle, name)
        if alias:
            self.set_alias(name, alias, version)
        return version

    # ------------------------------------------------------------ internals

    def _create_version(self, bundle: Bundle, name: str) -> int:
        spec = bundle.spec
        client = self._mlflow()
        exp_id = self._call(self._experiment_id)
        tags = {TAG_HASH: bundle.content_hash, TAG_SCHEMA: str(spec.schema_version)}
        tags |= {TAG_PROVENANCE_PREFIX + k: _text(v) for k, v in spec.provenance.items()}
        tags |= {TAG_METRIC_PREFIX + k: repr(float(v)) for k, v in spec.metrics.items()}

        def create() -> ModelVersion:
            run = client.create_run(exp_id, run_name=f"register-{name}",
                                    tags={"latentserve.model": name})
            run_id = run.info.run_id
            try:
                model = client.create_logged_model(
                    exp_id, name=name, source_run_id=run_id, model_type="latentserve-bundle",
                    tags={TAG_HASH: bundle.content_hash, TAG_SCHEMA: str(spec.schema_version)},
                    params={k: _text(v)[:6000] for k, v in spec.provenance.items()})
                for key, value in spec.metrics.items():
                    client.log_metric(run_id, key, float(value), model_id=model.model_id)
                client.log_model_artifacts(model.model_id, str(bundle.root))
                client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
                with contextlib.suppress(MlflowException):
                    client.create_registered_model(name)
                with self._source_uri_scope():
                    mv = client.create_model_version(
                        name, source=f"models:/{model.model_id}", run_id=run_id, tags=tags,
                        description=spec.description or None, model_id=model.model_id)
                client.set_logged_model_tags(model.model_id, {"mlflow.modelVersions": json.dumps(
                    [{"name": name, "version": int(mv.version)}])})
            except BaseException:
                with contextlib.suppress(Exception):
                    client.set_terminated(run_id, status="FAILED")
                raise
            client.set_terminated(run_id)
            return mv

        return int(self._call(create, invalid_field="bundle").version)

    @contextlib.contextmanager
    def _source_uri_scope(self) -> Iterator[None]:
        """MLflow's database-backed registry resolves `models:/<id>` sources through the
        *global* tracking URI; point it at this registry for the duration of the call."""
        if urlparse(self.registry_uri).scheme in ("http", "https"):
            yield
            return
        from mlflow.tracking._tracking_service.utils import _use_tracking_uri

        with _GLOBAL_URI_LOCK:
            env = os.environ.get("MLFLOW_TRACKING_URI")
            try:
                with _use_tracking_uri(self.registry_uri):
                    yield
            finally:
                if env is not None:
                    os.environ["MLFLOW_TRACKING_URI"] = env

    def _experiment_id(self) -> str:
        client = self._mlflow()
        exp = client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            if exp.lifecycle_stage == "deleted":
                client.restore_experiment(exp.experiment_id)
            return str(exp.experiment_id)
        location = (self._db.resolve().parent / "artifacts").as_uri() if self._db else None
        return str(client.create_experiment(EXPERIMENT, artifact_location=location))

    def _artifact_uri(self, name: str, version: int) -> str:
        """Where the version's files are; for a moved sqlite registry, under its own folder."""
        client = self._mlflow()
        uri = str(self._call(lambda: client.get_model_version_download_uri(name, str(version))))
        parsed = urlparse(uri)
        if self._db is None or parsed.scheme != "file":
            return uri
        path = Path(url2pathname(parsed.path))
        if path.exists():
            return uri
        parts = path.parts
        for i in range(len(parts) - 1, 0, -1):
            if parts[i] == "models" and parts[i - 1] == "artifacts":
                moved = self._db.resolve().parent / "artifacts" / Path(*parts[i:])
                if moved.exists():
                    return moved.as_uri()
        return uri

    @staticmethod
    def _complete(path: Path, expected: str | None) -> bool:
        if not (path / SPEC_FILE).is_file():
            return False
        try:
            return expected is None or content_hash(path) == expected
        except Exception:
            return False

    def _model(self, name: str) -> None:
        client = self._mlflow()
        try:
            self._call(lambda: client.get_registered_model(name))
        except NotFound:
            known = [m.name for m in self.list_models()]
            raise NotFound(f"unknown model {shown(name)}{did_you_mean(name, known)}") from None

    def _version(self, name: str, version: int) -> ModelVersion:
        client = self._mlflow()
        try:
            return self._call(lambda: client.get_model_version(name, str(version)))
        except NotFound:
            self._model(name)
            versions = next((m.versions for m in self.list_models() if m.name == name), [])
            listed = ", ".join(map(str, versions[-LISTED_NAMES:])) or "none"
            raise NotFound(f"model {shown(name)} has no version {version} (versions: "
                           f"{listed})") from None

    def _mlflow(self) -> MlflowClient:
        if self._db is not None and not self._create and not self._db.is_file():
            raise RegistryUnavailable(f"registry {self.registry_uri} is unavailable: database "
                                      f"{self._db} does not exist (run `latentserve registry "
                                      "init` to create it)")
        with self._lock:
            if self._client is None:
                db = self._db
                if db is not None and self._create:
                    self._call(lambda: db.parent.mkdir(parents=True, exist_ok=True))
                uri = self.registry_uri
                self._client = self._call(lambda: MlflowClient(tracking_uri=uri, registry_uri=uri))
            return self._client

    def _call(self, fn: Callable[[], _T], *, invalid_field: str | None = None) -> _T:
        """Run one MLflow call, turning its failures into NotFound / RegistryUnavailable."""
        try:
            return fn()
        except LatentServeError:
            raise
        except MlflowException as exc:
            code = exc.error_code
            if code == "RESOURCE_DOES_NOT_EXIST":
                raise NotFound(_first_line(exc)) from None
            if code == "INVALID_PARAMETER_VALUE":
                if invalid_field is None:
                    raise NotFound(_first_line(exc)) from None
                raise InvalidArgument(_first_line(exc), field=invalid_field) from None
            raise self._unavailable(exc) from None
        except Exception as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: Exception) -> RegistryUnavailable:
        return RegistryUnavailable(
            f"registry {self.registry_uri} is unavailable: {type(exc).__name__}: "
            f"{_first_line(exc)}")


def register_bundle(registry_uri: str, bundle_dir: Path, name: str | None = None,
                    alias: str | None = None, *, force: bool = False) -> int:
    """Validate the bundle in `bundle_dir`, register it as a new version, return the version.

    Idempotent: if a version of `name` (default: the spec's name) already holds a bundle with
    the same content hash, that version is returned (and `alias` still set) unless `force`.
    A missing sqlite database is created.

    Example::

        v = register_bundle("sqlite:////srv/reg/mlflow.db", Path("zoo/sprites-vae"),
                            alias="staging")
    """
    return RegistryClient(registry_uri, create=True).register(bundle_dir, name, alias, force=force)


def _all_pages(search: Callable[..., list[_T]], filter_string: str | None = None) -> list[_T]:
    found: list[_T] = []
    token: str | None = None
    while True:
        page = search(filter_string=filter_string, page_token=token)
        found.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return found


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0][:500]
