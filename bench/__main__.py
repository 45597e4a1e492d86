"""`python -m bench`: the benchmark harness entry point (see bench/cli.py)."""

from bench.cli import main

raise SystemExit(main())
