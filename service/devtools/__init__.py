"""Development and test tooling around the service, not on its serving path.

`triton_local` builds a venv with the pip-installable CPU `tritonserver` and runs it as a
process; `triton_cli` is `latentserve triton venv|up`; `background` runs a whole LatentServer on
its own event-loop thread for embedding, tests and benchmarks; `processes` is the one way the
tools, tests and benchmarks pick a free port and start, wait on and stop a child process.
"""
