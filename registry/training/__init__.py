"""Training on bundles ([train] extra: torch): fit an amortised encoder to any bundle.

Nothing here is imported by the service; the CLI imports it inside its command."""
