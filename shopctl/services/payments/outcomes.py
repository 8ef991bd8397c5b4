"""Where a settled Stripe event is announced to higher layers (metrics, logs).

They register at start-up (`on_outcome`); payments never imports them. A hook gets
(outcome, source, seconds since Stripe's `created` or None) after each event settles,
webhook, replay or sync; an outcome has `event_id`, `type`, `result` and `payment_id`.
Hooks must not raise.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

OutcomeHook = Callable[[Any, str, float | None], None]
OUTCOME_HOOKS: list[OutcomeHook] = []


def on_outcome(hook: OutcomeHook) -> OutcomeHook:
    """Register `hook` for every settled event from now on (usable as a decorator)."""
    OUTCOME_HOOKS.append(hook)
    return hook


def announce(outcome: Any, source: str, created: object = None) -> None:
    lag = time.time() - created if isinstance(created, int) else None
    for hook in OUTCOME_HOOKS:
        hook(outcome, source, lag)
