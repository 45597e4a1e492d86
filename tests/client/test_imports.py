"""The SDK imports with the base install only: no Pillow, typer, rich or server packages."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    for name in ("PIL", "typer", "rich", "click", "onnxruntime", "mlflow", "torch",
                 "pydantic", "latentserve.service", "latentserve.registry"):
        sys.modules[name] = None  # importing any of these now raises ImportError

    import numpy as np
    import latentserve.client as lc
    from latentserve.client.results import generate_result_from_proto
    from latentserve.v1 import generator_pb2 as pb

    resp = pb.GenerateResponse(latents=lc.to_tensor(np.zeros((1, 2), np.float32)),
                               images=lc.to_tensor(np.zeros((1, 1, 2, 2), np.uint8)))
    out = generate_result_from_proto(resp)
    try:
        out.to_pil()
    except ImportError as err:
        print("ImportError:", err)
    """
)


def test_sdk_needs_only_the_base_install() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "ImportError: latentserve.client image helpers need Pillow" in done.stdout
    assert "pip install" in done.stdout
