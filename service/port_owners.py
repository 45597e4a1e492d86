"""Who listens on the serving port: the check behind workers mode's SO_REUSEPORT.

Workers share one port with SO_REUSEPORT, and Linux lets any socket of the same user join that
group: another process of the user could bind the port and receive a share of the new
connections. The workers' parent compares the port's listening sockets (`/proc/net/tcp*`)
with the sockets its workers hold (`/proc/<pid>/fd`) and stops serving when a foreign one
appears. Example::

    foreign = foreign_listeners(50051, [worker.pid for worker in workers])
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_LISTEN = "0A"


def listening_inodes(port: int) -> set[int]:
    """Socket inodes listening on TCP `port` (any address, IPv4 and IPv6)."""
    found: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(int(fields[9]))
    return found


def socket_inodes(pids: Iterable[int]) -> set[int]:
    """Inodes of the sockets the processes `pids` hold open."""
    found: set[int] = set()
    for pid in pids:
        fd_dir = f"/proc/{pid}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(f"{fd_dir}/{name}")
            except OSError:
                continue
            if target.startswith("socket:["):
                found.add(int(target[8:-1]))
    return found


def foreign_listeners(port: int, pids: Iterable[int]) -> set[int]:
    """Listening sockets on `port` that none of `pids` holds (listeners are read first, so a
    socket a worker opens meanwhile is never taken for a foreign one)."""
    listening = listening_inodes(port)
    if not listening:
        return set()
    return listening - socket_inodes(pids)
