"""The sandbox's state: objects, events, idempotent responses, delivery attempts.

Everything lives in memory; with a state file it is written there (atomically,
off the event loop, at most a few times a second) and read back at start.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Any

from .settings import SettingsError

log = logging.getLogger("shopctl.sandbox")
_PERSISTED = ("objects", "line_items", "events", "idempotency", "deliveries", "order_keys")


class Store:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.line_items: dict[str, list[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.idempotency: dict[str, dict[str, Any]] = {}
        self.deliveries: list[dict[str, Any]] = []
        # Object id -> Checkout Session id, so webhooks keep their order per session.
        self.order_keys: dict[str, str] = {}
        self._event_pos: dict[str, int] = {}
        self.dirty = True

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.objects[obj["id"]] = obj
        self.dirty = True
        return obj

    def get(self, oid: str, kind: str) -> dict[str, Any] | None:
        obj = self.objects.get(oid)
        return obj if obj is not None and obj["object"] == kind else None

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Objects of one kind, newest first."""
        return [o for o in reversed(self.objects.values()) if o["object"] == kind]

    def add_event(self, event: dict[str, Any]) -> None:
        self._event_pos[event["id"]] = len(self.events)
        self.events.append(event)
        self.dirty = True

    def event(self, eid: str) -> dict[str, Any] | None:
        pos = self._event_pos.get(eid)
        return None if pos is None else self.events[pos]

    def add_delivery(self, attempt: dict[str, Any]) -> None:
        self.deliveries.append(attempt)
        self.dirty = True

    def dump(self) -> str:
        return json.dumps({name: getattr(self, name) for name in _PERSISTED})

    def load(self, text: str) -> None:
        data = json.loads(text)
        self.reset()
        for name in _PERSISTED:
            if name in data:
                setattr(self, name, data[name])
        self._event_pos = {e["id"]: i for i, e in enumerate(self.events)}
        self.dirty = False


class Persister:
    """Writes the store to `path` when it changed; never blocks the event loop."""

    def __init__(self, store: Store, path: Path | None, interval: float = 0.2) -> None:
        self.store, self.path, self.interval = store, path, interval

    def load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            self.path.chmod(0o600)  # one written by an older version was world-readable
            self.store.load(self.path.read_text(encoding="utf-8"))
        except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
            raise SettingsError(f"state file {self.path} is not a sandbox state: {exc}") from exc
        log.info(
            "sandbox state loaded from %s (%d objects, %d events)",
            self.path,
            len(self.store.objects),
            len(self.store.events),
        )

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if self.path is None or not self.store.dirty:
            return
        self.store.dirty = False
        text = self.store.dump()
        try:
            await asyncio.to_thread(_write_atomically, self.path, text)
        except OSError:
            self.store.dirty = True
            log.exception("could not write sandbox state to %s", self.path)


def _write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by this user only (0600: it holds customers'
    emails and every payment)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover temporary file keeps its mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            fd = -1
            out.write(text)
    finally:
        if fd != -1:
            os.close(fd)
    os.replace(tmp, path)
