"""Shared test fixtures, registered as plugins (one module per area)."""

pytest_plugins = [
    "tests.fixtures.registry",
    "tests.fixtures.service",
    "tests.fixtures.triton",
    "tests.fixtures.generators",
    "tests.fixtures.attack",
    "tests.fixtures.http",
]
