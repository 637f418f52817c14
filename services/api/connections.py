"""Keep-alive connections as the api sees them: how many work requests rode a connection
that had already carried one, and how many connections the api closed first.

A keep-alive pool is only worth having if its connections are reused. A proxy whose idle
timeout is shorter than the gaps in its traffic keeps a pool that never serves a second
request: no errors, but every request pays a new connection. The api sees that directly:
each work request arrives either on a new connection (its first) or on a reused one, and
says which in `X-Connection-Requests` (1 = a new connection, 2 = the second request on it).

Which side closes an idle connection first is the other half of the keep-alive rule: the
side that reuses connections (the proxy) must give up on them first. The kernel remembers
the side that closed first: its socket passes through FIN_WAIT and TIME_WAIT (about 60 s
on Linux), while the other side's socket just closes. So the api counts its own port's
sockets in those states in /proc/net/tcp (null where there is no /proc: macOS). A socket
that was reset (the api closed with a request unread, which is how the 502 race ends) is
not among them: that shows as a 502.

Connections are told apart by their transport object, held weakly, so a closed
connection is forgotten and its successor (even on the same port) counts as new.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from pathlib import Path

REQUESTS_HEADER = "X-Connection-Requests"
TCP_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
CLOSED_FIRST_STATES = frozenset({"04", "05", "06", "0B"})
"""FIN_WAIT1, FIN_WAIT2, TIME_WAIT, CLOSING: states only the side that closed first is in."""


def closed_first(port: int, tables: Sequence[Path] = TCP_TABLES) -> set[str] | None:
    """The sockets on local `port` that this host closed first, as "local remote" pairs
    (hex, as /proc/net/tcp writes them); None when no table can be read."""
    found: set[str] = set()
    readable = False
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) < 4 or fields[3] not in CLOSED_FIRST_STATES:
                continue
            local, remote = fields[1], fields[2]
            if int(local.rpartition(":")[2], 16) == port:
                found.add(f"{local} {remote}")
    return found if readable else None


class ConnectionReuse:
    def __init__(self, tables: Sequence[Path] = TCP_TABLES) -> None:
        self._served: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self._tables = tables
        self._port: int | None = None
        self._before: set[str] = set()
        """Sockets already closed first on the port before the first request (a process
        that ran on this port earlier): not this process's doing."""
        self.requests = 0
        """Work requests counted (those whose connection was still open)."""
        self.reused = 0
        """Of those, requests on a connection that had already carried a work request."""
        self.connections = 0
        """Connections that carried at least one work request."""

    def record(self, connection: object | None) -> int:
        """Count one work request on `connection` (the request's transport). Returns how
        many work requests that connection has carried, this one included (1 = new);
        0 when the connection is already gone (not counted)."""
        if connection is None:
            return 0
        if self._port is None:
            self._learn_port(connection)
        carried = self._served.get(connection, 0) + 1
        self._served[connection] = carried
        self.requests += 1
        if carried > 1:
            self.reused += 1
        else:
            self.connections += 1
        return carried

    def _learn_port(self, connection: object) -> None:
        get_extra_info = getattr(connection, "get_extra_info", None)
        sockname = get_extra_info("sockname") if get_extra_info else None
        if isinstance(sockname, tuple) and len(sockname) >= 2:
            self._port = int(sockname[1])
            self._before = closed_first(self._port, self._tables) or set()

    def closed_first(self) -> int | None:
        """Connections on the api's port it closed first since its first work request
        (within the kernel's memory of them: about a minute); None when unknown."""
        if self._port is None:
            return 0
        now = closed_first(self._port, self._tables)
        return None if now is None else len(now - self._before)

    def snapshot(self) -> dict[str, int | None]:
        return {
            "requests": self.requests,
            "reused": self.reused,
            "opened": self.connections,
            "closed_first": self.closed_first(),
        }
