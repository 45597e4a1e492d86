"""Attack regression, workers (second pass, item 6): with LATENTSERVE_WORKERS=2, a worker restart
that fails (its token file is missing meanwhile) no longer stops the workers that serve; the
restart is retried and succeeds once the file is back. Real `latentserve serve` processes."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import grpc
import pytest

from latentserve.v1 import generator_pb2 as pb
from latentserve.v1 import generator_pb2_grpc as pb_grpc
from tests.fixtures.process import ServeProcess


def _sample(address: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        try:
            pb_grpc.GeneratorServiceStub(channel).Sample(
                pb.SampleRequest(n=1), metadata=(("authorization", "Bearer t0k3n"),),
                timeout=60)
        except grpc.RpcError as error:
            return error.code()
    return grpc.StatusCode.OK


@pytest.mark.timeout(300)
def test_a_failed_restart_does_not_stop_the_other_workers(registry_uri: str,
                                                          tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("t0k3n\n")
    served = ServeProcess(registry_uri, tmp_path / "cache", workers=2, auth_token_file=tokens,
                          grace_period_s=5)
    try:
        served.wait_serving()
        victim = served.children()[0]
        hidden = tokens.rename(tmp_path / "tokens.away")  # the file is gone when it restarts
        os.kill(victim, signal.SIGKILL)
        failed = served.wait_event("restarted worker failed to start; the others keep serving")
        assert failed["serving"] == 1
        assert served.proc is not None and served.proc.poll() is None  # was: all stopped
        assert _sample(served.address) in (grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED)
        hidden.rename(tokens)
        served.wait_event("worker ready", timeout_s=120, slot=failed["slot"])
        assert len(served.children()) == 2
        assert _sample(served.address) == grpc.StatusCode.OK
        assert served.terminate() == 0
    finally:
        served.close()
