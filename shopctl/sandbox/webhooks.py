"""Signed webhook delivery: in the background, in order per Checkout Session, with retries."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from typing import Any

import httpx

from .settings import Runtime
from .store import Store

log = logging.getLogger("shopctl.sandbox")


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """Stripe's scheme: v1 = HMAC-SHA256(secret, "{t}.{body}")."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


class Deliverer:
    """One queue per (URL, Checkout Session): a slow or failing session never reorders another."""

    def __init__(
        self, store: Store, runtime: Runtime, backoffs: tuple[float, ...], timeout: float
    ) -> None:
        self.store, self.runtime = store, runtime
        self.backoffs, self.timeout = backoffs, timeout
        self._chains: dict[tuple[str, str], deque[tuple[dict[str, Any], bytes]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None

    def on_event(self, event: dict[str, Any]) -> None:
        """Called for every new event, inside the request that caused it: only queue it."""
        urls = self.runtime.webhook_urls if self.runtime.webhooks_enabled else []
        event["pending_webhooks"] = len(urls)
        self.enqueue(event, urls)

    def enqueue(self, event: dict[str, Any], urls: list[str]) -> None:
        body = json.dumps(event, indent=2).encode()
        oid = event["data"]["object"]["id"]
        key = self.store.order_keys.get(oid, oid)
        for url in urls:
            chain = self._chains.get((url, key))
            if chain is None:
                chain = self._chains[(url, key)] = deque()
                task = asyncio.get_running_loop().create_task(self._drain(url, key, chain))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            chain.append((event, body))

    async def _drain(self, url: str, key: str, chain: deque[tuple[dict[str, Any], bytes]]) -> None:
        try:
            while chain:
                event, body = chain[0]
                if await self._deliver(url, event, body):
                    event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
                chain.popleft()
        finally:
            if self._chains.get((url, key)) is chain:
                del self._chains[(url, key)]

    async def _deliver(self, url: str, event: dict[str, Any], body: bytes) -> bool:
        for attempt, delay in enumerate((0.0, *self.backoffs), start=1):
            await asyncio.sleep(delay)
            if await self._attempt(url, event, body, attempt):
                return True
        log.warning("gave up delivering %s %s to %s", event["type"], event["id"], url)
        return False

    async def _attempt(self, url: str, event: dict[str, Any], body: bytes, attempt: int) -> bool:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(body, self.runtime.webhook_secret, int(time.time())),
        }
        started, status, error = time.monotonic(), None, None
        try:
            response = await self._http().post(url, content=body, headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        self.store.add_delivery(
            {
                "event_id": event["id"],
                "event_type": event["type"],
                "url": url,
                "attempt": attempt,
                "status": status,
                "error": error,
                "ok": ok,
                "at": time.time(),
                "duration_ms": round((time.monotonic() - started) * 1000, 1),
            }
        )
        return ok

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    def pending(self) -> int:
        return sum(len(chain) for chain in self._chains.values())

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._chains.clear()

    async def close(self) -> None:
        await self.cancel_all()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
