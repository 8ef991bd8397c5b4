"""One sandbox's state: its settings, store, engine, webhook deliverer and persister."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

from .engine import Engine
from .settings import Runtime, SandboxSettings
from .store import Persister, Store
from .webhooks import Deliverer


@dataclass
class Sandbox:
    """Everything one sandbox app holds; reached from handlers as `request.app.ctx.sandbox`."""

    settings: SandboxSettings
    runtime: Runtime
    store: Store
    engine: Engine
    deliverer: Deliverer
    persister: Persister
    rng: random.Random = field(default_factory=random.Random)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def should_fail(self) -> bool:
        """Consume one injected failure (`fail_next`) or draw against `fail_rate`."""
        if self.runtime.fail_next > 0:
            self.runtime.fail_next -= 1
            return True
        return self.rng.random() < self.runtime.fail_rate


def build_sandbox(settings: SandboxSettings) -> Sandbox:
    settings.validate()
    store, runtime = Store(), Runtime.from_settings(settings)
    deliverer = Deliverer(store, runtime, settings.retry_backoffs, settings.delivery_timeout)
    engine = Engine(store, deliverer.on_event)
    persister = Persister(store, settings.state_file)
    persister.load()
    return Sandbox(settings, runtime, store, engine, deliverer, persister)
