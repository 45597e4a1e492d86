"""Alias resolution: which version each alias in use points at here, and version pins.

An alias is resolved against the registry the first time a request names it and remembered;
from then on only the watcher moves it (`point`). With `version_pin_aliases` set, a request may
name only those aliases (and the default alias) and pin only a version one of them points at:
any other alias, MLflow's built-in `latest` included, would reach unpromoted versions, and once
remembered the watcher would load every version it moves to. Every change is reported through
`on_change(name)`. Example::

    aliases = AliasTable(settings, registry)
    version = await aliases.version_of("tiny", "production")
"""

from __future__ import annotations

from collections.abc import Callable

from latentserve.core.errors import FailedPrecondition, NotFound
from latentserve.service.models.lease import Key
from latentserve.service.models.registry_access import RegistryAccess
from latentserve.service.settings import Settings


class AliasTable:
    """(name, alias) → version for every alias in use here."""

    def __init__(self, settings: Settings, registry: RegistryAccess,
                 on_change: Callable[[str], None] | None = None) -> None:
        self._settings = settings
        self._registry = registry
        self._on_change = on_change or (lambda _name: None)
        self._versions: dict[tuple[str, str], int] = {}

    async def version_of(self, name: str, alias: str) -> int:
        """The version `name@alias` serves here (asked of the registry the first time)."""
        known = self._versions.get((name, alias))
        if known is None:
            self._check_alias(alias)
            known = await self._registry.resolve(name, alias)
            self.point(name, alias, known)
        return known

    async def check_pin(self, name: str, version: int) -> None:
        """FailedPrecondition unless pins are free or a pin alias points at `version`."""
        pins = self._settings.pin_aliases()
        for alias in pins:
            try:
                known = await self.version_of(name, alias)
            except NotFound:
                continue
            if known == version:
                return
        if pins:
            raise FailedPrecondition(
                f"{name} version {version} cannot be pinned here: this service serves only the "
                f"versions that {', '.join(pins)} point at; ask for the alias instead")

    def _check_alias(self, alias: str) -> None:
        """FailedPrecondition when pins are set and `alias` is neither a pin alias nor the
        default alias."""
        pins = self._settings.pin_aliases()
        if pins and alias not in pins and alias != self._settings.default_alias:
            raise FailedPrecondition(
                f"alias {alias!r} is not served here: this service serves only the versions "
                f"that {', '.join(pins)} point at; ask for one of those aliases")

    def get(self, name: str, alias: str) -> int | None:
        """The version `name@alias` serves here, None when not in use."""
        return self._versions.get((name, alias))

    def point(self, name: str, alias: str, version: int) -> None:
        """Point `name@alias` at `version` (the atomic switch of a hot swap)."""
        self._versions[(name, alias)] = version
        self._on_change(name)

    def items(self) -> list[tuple[tuple[str, str], int]]:
        """((name, alias), version) for every alias in use."""
        return list(self._versions.items())

    def targets(self) -> set[Key]:
        """The versions some alias in use points at."""
        return {(n, v) for (n, _a), v in self._versions.items()}

    def aliases_of(self, name: str, version: int) -> list[str]:
        """Aliases known to point at (name, version)."""
        return sorted(a for (n, a), v in self._versions.items() if n == name and v == version)
