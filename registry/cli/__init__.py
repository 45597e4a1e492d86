"""The `registry`, `bundle` and `directions` command groups of the `latentserve` CLI."""
