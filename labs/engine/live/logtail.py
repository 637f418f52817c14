"""Following nginx's logs while the dashboard watches: a file on this machine (local
topology) or a file inside the nginx container (compose)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from docker.models.containers import Container


class LogTail:
    """The complete lines appended to a file since the last read (from its end at start:
    the dashboard shows what happens while it watches). A file that shrank was
    rewritten: read it again from the start."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.offset = self._size()
        self.partial = b""

    def _size(self) -> int:
        try:
            return self.path.stat().st_size if self.path else 0
        except OSError:
            return 0

    def read(self) -> list[str]:
        if self.path is None:
            return []
        size = self._size()
        if size < self.offset:
            self.offset, self.partial = 0, b""
        if size == self.offset:
            return []
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read(size - self.offset)
        except OSError:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in lines if line.strip()]


class ContainerLogTail:
    """LogTail's job for a file inside a container (the compose topology's nginx writes
    its logs under its own prefix, copied out only when it stops): `tail -c +N` through
    the Docker API, from the file's size at start. Blocking: call it in a thread."""

    def __init__(self, container: Callable[[], Container | None], path: str) -> None:
        self.container = container
        self.path = path
        self.offset: int | None = None
        self.partial = b""

    def _exec(self, argv: list[str]) -> bytes | None:
        try:
            target = self.container()
            if target is None:
                return None
            code, output = target.exec_run(argv)
        except Exception:  # noqa: BLE001 - a container gone or stopped: no lines this tick
            return None
        return output if code == 0 else None

    def read(self) -> list[str]:
        if self.offset is None:
            size = self._exec(["stat", "-c", "%s", self.path])
            self.offset = int(size.strip() or 0) if size is not None else None
            return []
        data = self._exec(["tail", "-c", f"+{self.offset + 1}", self.path])
        if not data:
            return []
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        return [line.decode(errors="replace") for line in lines if line.strip()]
