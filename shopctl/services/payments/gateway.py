"""The one place that talks to Stripe: a configured official client, one deadline per
call, and the error mapping.

Every call here is a network call: callers make it outside any database transaction.
Each call is async underneath and has one overall deadline, `STRIPE_TIMEOUT` seconds
(connect, read and the client's retries together): when it passes, the call is
abandoned and `StripeTimeout` (an `APIConnectionError`) is raised. The API awaits the
`*_async` functions on its event loop, between short database steps, so a slow Stripe
holds neither a thread nor a transaction (a webhook's follow-up, a late payment's refund,
too). The CLI and the cron job call the plain functions, which run the same coroutine on a
private event loop thread (`run`) and wait for it — bounded by the same deadline.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import stripe

from shopctl.config import Settings
from shopctl.errors import PaymentProviderError, StripeUnreachable

# Retries inside the deadline, for connection errors, 409 and 5xx (the client's rules;
# it reuses the idempotency key). The deadline cuts them short.
NETWORK_RETRIES = 2
T = TypeVar("T")


class _HTTPXClient(stripe.HTTPXClient):
    """stripe-python hands httpx the encoded form body as `data=`, which httpx deprecates
    for raw text: a DeprecationWarning on every POST, and where warnings are errors a POST
    the client reports as a connection failure. The same bytes go as `content=`."""

    def _get_request_args_kwargs(self, method: str, url: str, headers, post_data):
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        if isinstance(kwargs.get("data"), str | bytes):
            kwargs["content"] = kwargs.pop("data")
        elif not kwargs.get("data"):
            kwargs.pop("data", None)
        return args, kwargs


class StripeTimeout(stripe.APIConnectionError):
    """Stripe did not answer within STRIPE_TIMEOUT."""


# One client per event loop: an httpx AsyncClient's connections belong to the loop that
# opened them (the API worker's loop, or the private loop of `run`).
_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _client(settings: Settings) -> stripe.StripeClient:
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    key = (settings.stripe_secret_key, settings.stripe_api_base, settings.stripe_timeout)
    if key not in per_loop:
        base = settings.stripe_api_base
        per_loop[key] = stripe.StripeClient(
            settings.stripe_secret_key,
            base_addresses={"api": base.rstrip("/")} if base else None,
            max_network_retries=NETWORK_RETRIES,
            # Each attempt's own timeout; the deadline below bounds them all together.
            http_client=_HTTPXClient(timeout=settings.stripe_timeout),
        )
    return per_loop[key]


async def bounded(settings: Settings, call: Callable[[stripe.StripeClient], Awaitable[T]]) -> T:
    """`call(client)` within STRIPE_TIMEOUT, or StripeTimeout."""
    try:
        async with asyncio.timeout(settings.stripe_timeout):
            return await call(_client(settings))
    except TimeoutError:
        raise StripeTimeout(
            f"Stripe did not answer within {settings.stripe_timeout:g} s (STRIPE_TIMEOUT)"
        ) from None


# --- the private event loop of the synchronous callers ----------------------------------

_loop_lock = threading.Lock()
_loop: tuple[int, asyncio.AbstractEventLoop] | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop[0] != os.getpid() or _loop[1].is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="shopctl-stripe", daemon=True)
            thread.start()
            _loop = (os.getpid(), loop)
        return _loop[1]


def run(coroutine: Awaitable[T]) -> T:
    """Run a coroutine of this module on the private loop and wait for its result.

    For synchronous callers only (never from an event loop's own thread); the coroutines
    here carry their deadline, so the wait is bounded.
    """
    return asyncio.run_coroutine_threadsafe(coroutine, _background_loop()).result()


# --- errors --------------------------------------------------------------------------------


def describe(error: stripe.StripeError) -> str:
    """A short, safe description of a Stripe failure (never the key)."""
    message = getattr(error, "user_message", None) or str(error) or type(error).__name__
    return f"{type(error).__name__}: {' '.join(message.split())}"[:500]


def is_unreachable(error: BaseException) -> bool:
    """No answer from Stripe: a connection error, a timeout or the deadline."""
    return isinstance(error, stripe.APIConnectionError)


def provider_error(error: stripe.StripeError) -> PaymentProviderError:
    if is_unreachable(error):
        return StripeUnreachable(
            f"Stripe could not be reached ({describe(error)}); nothing was recorded here, "
            "and rerunning is safe"
        )
    return PaymentProviderError(f"Stripe refused the call ({describe(error)})")


def is_unknown(error: BaseException) -> bool:
    """Stripe answered that the object does not exist (404): a changed key or account."""
    return isinstance(error, stripe.InvalidRequestError) and (
        error.http_status == 404 or error.code == "resource_missing"
    )


def is_already_complete(error: stripe.StripeError) -> bool:
    """Stripe refuses to expire a session that is no longer open."""
    return isinstance(error, stripe.InvalidRequestError) and "open" in str(error).lower()


# --- the calls: each `*_async` is awaited by the API; the plain one wraps it for threads ----


def create_session_async(settings: Settings, params: dict, key: str):
    return bounded(
        settings, lambda c: c.v1.checkout.sessions.create_async(params, {"idempotency_key": key})
    )


def retrieve_session_async(settings: Settings, session_id: str):
    return bounded(settings, lambda c: c.v1.checkout.sessions.retrieve_async(session_id))


def retrieve_session(settings: Settings, session_id: str):
    return run(retrieve_session_async(settings, session_id))


def expire_session_async(settings: Settings, session_id: str):
    return bounded(settings, lambda c: c.v1.checkout.sessions.expire_async(session_id))


def expire_session(settings: Settings, session_id: str):
    return run(expire_session_async(settings, session_id))


def retrieve_payment_intent_async(settings: Settings, intent_id: str):
    return bounded(
        settings,
        lambda c: c.v1.payment_intents.retrieve_async(intent_id, {"expand": ["latest_charge"]}),
    )


def retrieve_payment_intent(settings: Settings, intent_id: str):
    return run(retrieve_payment_intent_async(settings, intent_id))


def create_refund_async(settings: Settings, params: dict, key: str):
    return bounded(settings, lambda c: c.v1.refunds.create_async(params, {"idempotency_key": key}))


def create_refund(settings: Settings, params: dict, key: str):
    return run(create_refund_async(settings, params, key))


def list_events_async(settings: Settings, params: dict):
    """One page of events."""
    return bounded(settings, lambda c: c.v1.events.list_async(params))


def list_refunds(settings: Settings, params: dict):
    """One page of refunds (of a PaymentIntent)."""
    return run(bounded(settings, lambda c: c.v1.refunds.list_async(params)))


def list_events(settings: Settings, params: dict):
    return run(list_events_async(settings, params))


async def list_all_events_async(settings: Settings, params: dict) -> list[dict]:
    """Every page of events, each page within the deadline."""
    events: list[dict] = []
    page = await list_events_async(settings, params)
    while True:
        events.extend(event.to_dict() for event in page.data)
        if not page.has_more or not page.data:
            return events
        page = await list_events_async(settings, {**params, "starting_after": page.data[-1].id})


def list_all_events(settings: Settings, params: dict) -> list[dict]:
    return run(list_all_events_async(settings, params))


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


def _observed_async(operation: str, call: Callable) -> Callable:
    """For a function returning an awaitable: observed when the awaitable completes. The
    plain functions call the `*_async` ones by name, so wrapping these observes both."""

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
retrieve_session_async = _observed_async("checkout.sessions.retrieve", retrieve_session_async)
expire_session_async = _observed_async("checkout.sessions.expire", expire_session_async)
retrieve_payment_intent_async = _observed_async(
    "payment_intents.retrieve", retrieve_payment_intent_async
)
create_refund_async = _observed_async("refunds.create", create_refund_async)
list_events_async = _observed_async("events.list", list_events_async)
