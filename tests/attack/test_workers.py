"""Attack regressions, workers (second pass, items 6 and 11): with LATENTSERVE_WORKERS=2, a worker
restart that fails (its token file is missing meanwhile) no longer stops the workers that
serve, and a foreign process joining the port with SO_REUSEPORT stops the server instead of
taking connections. Real `latentserve serve` processes."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import grpc
import pytest

from latentserve.service.port_owners import foreign_listeners
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


# ------------------------------------------------------------------ item 11: port hijack
def test_foreign_listeners_are_told_apart() -> None:
    with socket.socket() as mine:
        mine.bind(("127.0.0.1", 0))
        mine.listen()
        port = mine.getsockname()[1]
        assert foreign_listeners(port, [os.getpid()]) == set()
        assert len(foreign_listeners(port, [])) == 1


@pytest.mark.timeout(300)
def test_a_process_joining_the_port_stops_the_server(registry_uri: str, tmp_path: Path) -> None:
    # With SO_REUSEPORT any process of the same user could bind the serving port and take a
    # share of the new connections; single-process mode refuses the bind.
    served = ServeProcess(registry_uri, tmp_path / "cache", workers=2, grace_period_s=5)
    try:
        served.wait_serving()
        port = int(served.address.rsplit(":", 1)[1])
        with socket.socket() as intruder:
            intruder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            intruder.bind(("127.0.0.1", port))
            intruder.listen()
            event = served.wait_event("a process outside this server listens on the serving "
                                      "port (SO_REUSEPORT): it would receive connections; "
                                      "stopping")
            assert event["port"] == port
            assert served.proc is not None and served.proc.wait(120) == 1
    finally:
        served.close()
