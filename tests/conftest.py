"""Shared test fixtures, registered as plugins (one module per area)."""

pytest_plugins = [
    "fixtures_registry",
    "fixtures_service",
    "fixtures_triton",
    "fixtures_generators",
    "fixtures_attack",
]
