"""Connection reuse: how many work requests rode a connection that had already carried one.

A keep-alive pool is only worth having if its connections are reused. A proxy whose idle
timeout is shorter than the gaps in its traffic keeps a pool that never serves a second
request: no errors, but every request pays a new connection. The api sees that directly:
each work request arrives either on a new connection (its first) or on a reused one.

Connections are told apart by their transport object, held weakly, so a closed
connection is forgotten and its successor (even on the same port) counts as new.
"""

from __future__ import annotations

import weakref


class ConnectionReuse:
    def __init__(self) -> None:
        self._served: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self.requests = 0
        """Work requests counted (those whose connection was still open)."""
        self.reused = 0
        """Of those, requests on a connection that had already carried a work request."""
        self.connections = 0
        """Connections that carried at least one work request."""

    def record(self, connection: object | None) -> bool:
        """Count one work request on `connection` (the request's transport); True when
        the connection had carried one before. None (already gone) is not counted."""
        if connection is None:
            return False
        before = self._served.get(connection, 0)
        self._served[connection] = before + 1
        self.requests += 1
        if before:
            self.reused += 1
        else:
            self.connections += 1
        return bool(before)

    def snapshot(self) -> dict[str, int]:
        return {"requests": self.requests, "reused": self.reused, "opened": self.connections}
