"""latentserve benchmarks: one harness, scenarios as small modules, results as JSON + Markdown.

Run from the repository root (the package is not installed with latentserve)::

    python -m bench                          # every scenario, full length → bench/results/
    python -m bench --scenario triton        # one scenario; other sections of latest.json stay
    python -m bench --quick --out /tmp/b     # seconds-long smoke run of the harness itself

See bench/README.md for what each scenario measures and how the numbers are produced.
"""
