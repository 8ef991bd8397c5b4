"""What the kernel knows about a test's HTTP connections, so races wait on facts, not sleeps.

* `Pending` — one HTTP/1.1 request sent on its own connection, its answer not yet read:
  `answered()` says whether any byte of the answer has arrived, `peer_has_read()` whether
  the server process has read the whole request from its socket (from /proc/net/tcp).
* `serving_pid(...)` — which process holds the server's end of a connection: with
  `--workers 2`, which worker accepted it.
* `worker_connections(...)` — open connections until each worker of a server holds
  enough of them, so a test chooses which worker serves each request.

Linux only (/proc), like the machines the suite runs on.
"""

from __future__ import annotations

import json
import os
import select
import time
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path


def _tcp_sockets() -> list[dict]:
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            tx, rx = (int(n, 16) for n in parts[4].split(":"))
            rows.append(
                {
                    "local": int(parts[1].rsplit(":", 1)[1], 16),
                    "remote": int(parts[2].rsplit(":", 1)[1], 16),
                    "state": parts[3],
                    "tx": tx,
                    "rx": rx,
                    "inode": parts[9],
                }
            )
    return rows


ESTABLISHED = "01"


def _socket(local: int, remote: int) -> dict | None:
    for row in _tcp_sockets():
        if row["local"] == local and row["remote"] == remote and row["state"] == ESTABLISHED:
            return row
    return None


def wait_until(predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@dataclass
class Pending:
    """A request on a connection of its own (Connection: close), answer unread."""

    port: int
    connection: HTTPConnection = field(init=False)

    def __post_init__(self):
        self.connection = HTTPConnection("127.0.0.1", self.port, timeout=60)
        self.connection.connect()

    @property
    def local_port(self) -> int:
        return self.connection.sock.getsockname()[1]

    def send(self, method: str, path: str, body=None, headers: dict | None = None) -> Pending:
        payload = json.dumps(body).encode() if body is not None else None
        sent = {"Connection": "close", **(headers or {})}
        if payload is not None:
            sent.setdefault("Content-Type", "application/json")
        self.connection.request(method, path, body=payload, headers=sent)
        return self

    def answered(self) -> bool:
        """Has any byte of the answer arrived? (Never blocks.)"""
        readable, _, _ = select.select([self.connection.sock], [], [], 0)
        return bool(readable)

    def peer_has_read(self) -> bool:
        """The server process has read every byte we sent out of its socket."""
        mine = _socket(self.local_port, self.port)
        theirs = _socket(self.port, self.local_port)
        return bool(mine and theirs and mine["tx"] == 0 and theirs["rx"] == 0)

    def response(self) -> tuple[int, dict]:
        """(status, JSON body) of the answer, waiting for it."""
        answer = self.connection.getresponse()
        text = answer.read()
        self.connection.close()
        return answer.status, json.loads(text) if text else {}

    def close(self) -> None:
        self.connection.close()


def child_pids(parent: int) -> set[int]:
    """Every process below `parent` (Sanic's manager starts its workers as children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [parent]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _holders(inode: str, pids) -> set[int]:
    target = f"socket:[{inode}]"
    holders = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    holders.add(pid)
                    break
            except OSError:
                continue
    return holders


def serving_pid(server_pid: int, server_port: int, client_port: int) -> int:
    """The process (the server's, or one of its workers) that accepted this connection."""
    pids = {server_pid, *child_pids(server_pid)}

    def holder():
        row = _socket(server_port, client_port)
        found = _holders(row["inode"], pids) if row else set()
        return next(iter(found)) if len(found) == 1 else None

    return wait_until(holder, 10, f"a process of the server to accept port {client_port}")


def worker_connections(server, per_worker: int, workers: int = 2) -> dict[int, list[Pending]]:
    """Open connections to `server` until each of its `workers` holds `per_worker`."""
    port = int(server.url.rsplit(":", 1)[1])
    held: dict[int, list[Pending]] = {}
    for _ in range(50 * per_worker * workers):
        pending = Pending(port)
        pid = serving_pid(server.process.pid, port, pending.local_port)
        mine = held.setdefault(pid, [])
        if len(mine) < per_worker:
            mine.append(pending)
        else:
            pending.close()
        if len(held) == workers and all(len(c) >= per_worker for c in held.values()):
            return held
    raise AssertionError(f"connections reached {len(held)} worker(s): {sorted(held)}")
