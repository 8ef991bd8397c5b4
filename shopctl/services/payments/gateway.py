"""The one place that talks to Stripe: a configured official client and its error mapping.

Every call here is a network call: callers make it outside any database transaction.
Sync methods serve the CLI, the cron job and webhook follow-ups (run in threads);
`*_async` methods serve the API's hot path, so a slow Stripe never holds a thread.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import stripe

from shopctl.config import Settings
from shopctl.errors import PaymentProviderError

TIMEOUT_SECONDS = 20
NETWORK_RETRIES = 2


@functools.cache
def _client(api_key: str, api_base: str | None) -> stripe.StripeClient:
    addresses = {"api": api_base.rstrip("/")} if api_base else None
    return stripe.StripeClient(
        api_key,
        base_addresses=addresses,
        max_network_retries=NETWORK_RETRIES,
        http_client=stripe.HTTPXClient(timeout=TIMEOUT_SECONDS, allow_sync_methods=True),
    )


def client(settings: Settings) -> stripe.StripeClient:
    return _client(settings.stripe_secret_key, settings.stripe_api_base)


def describe(error: stripe.StripeError) -> str:
    """A short, safe description of a Stripe failure (never the key)."""
    message = getattr(error, "user_message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {message}"[:500]


def provider_error(error: stripe.StripeError) -> PaymentProviderError:
    return PaymentProviderError(f"Stripe refused or could not be reached ({describe(error)})")


def is_already_complete(error: stripe.StripeError) -> bool:
    """Stripe refuses to expire a session that is no longer open."""
    return isinstance(error, stripe.InvalidRequestError) and "open" in str(error).lower()


def create_session_async(settings: Settings, params: dict, key: str):
    sessions = client(settings).v1.checkout.sessions
    return sessions.create_async(params, {"idempotency_key": key})


def retrieve_session(settings: Settings, session_id: str):
    return client(settings).v1.checkout.sessions.retrieve(session_id)


def expire_session(settings: Settings, session_id: str):
    return client(settings).v1.checkout.sessions.expire(session_id)


def retrieve_payment_intent(settings: Settings, intent_id: str):
    return client(settings).v1.payment_intents.retrieve(intent_id, {"expand": ["latest_charge"]})


def create_refund(settings: Settings, params: dict, key: str):
    return client(settings).v1.refunds.create(params, {"idempotency_key": key})


def list_events(settings: Settings, params: dict):
    return client(settings).v1.events.list(params)


# --- observation -------------------------------------------------------------------------
# Higher layers (metrics, traces) register here at start-up; gateway never imports them.
# A hook gets (operation, outcome, started at (time.time()), duration in seconds) after
# every call; outcome is "ok" or the Stripe error's class name. Hooks must not raise.
CallHook = Callable[[str, str, float, float], None]
CALL_HOOKS: list[CallHook] = []


def on_call(hook: CallHook) -> CallHook:
    """Register `hook` for every Stripe call from now on (usable as a decorator)."""
    CALL_HOOKS.append(hook)
    return hook


def _announce(operation: str, outcome: str, started: float, begun: float) -> None:
    duration = time.perf_counter() - begun
    for hook in CALL_HOOKS:
        hook(operation, outcome, started, duration)


def _outcome(error: BaseException | None) -> str:
    return "ok" if error is None else type(error).__name__


def _observed(operation: str, call: Callable) -> Callable:
    @functools.wraps(call)
    def observed(*args, **kwargs):
        started, begun, error = time.time(), time.perf_counter(), None
        try:
            return call(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _announce(operation, _outcome(error), started, begun)

    return observed


def _observed_async(operation: str, call: Callable) -> Callable:
    """For a function returning an awaitable: observed when the awaitable completes."""

    @functools.wraps(call)
    async def observed(*args, **kwargs):
        started, begun, error = time.time(), time.perf_counter(), None
        try:
            return await call(*args, **kwargs)
        except BaseException as exc:
            error = exc
            raise
        finally:
            _announce(operation, _outcome(error), started, begun)

    return observed


create_session_async = _observed_async("checkout.sessions.create", create_session_async)
retrieve_session = _observed("checkout.sessions.retrieve", retrieve_session)
expire_session = _observed("checkout.sessions.expire", expire_session)
retrieve_payment_intent = _observed("payment_intents.retrieve", retrieve_payment_intent)
create_refund = _observed("refunds.create", create_refund)
list_events = _observed("events.list", list_events)
