"""latency_ms and fail_rate: a slow or failing Stripe, and how the client recovers."""

from __future__ import annotations

import threading
import time

import pytest
import stripe

from tests.sandbox.helpers import API_KEY, session_params


def test_latency_slows_the_api_but_never_the_event_loop(client, sandbox):
    sandbox.control("config", {"latency_ms": 600})
    slow: list[float] = []

    def call_api() -> None:
        started = time.monotonic()
        client.v1.events.list()
        slow.append(time.monotonic() - started)

    thread = threading.Thread(target=call_api)
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert sandbox.http.get(f"{sandbox.url}/_sandbox/health").status_code == 200
    fast = time.monotonic() - started
    thread.join()

    assert slow[0] >= 0.6
    assert fast < 0.3, "a control request waited for a delayed API call"


def test_fail_rate_one_fails_every_api_call_but_nothing_else(client, sandbox):
    session = client.v1.checkout.sessions.create(session_params())
    sandbox.control("config", {"fail_rate": 1.0})

    with pytest.raises(stripe.APIError) as err:
        client.v1.checkout.sessions.retrieve(session.id)
    assert err.value.http_status == 500
    assert err.value.error.type == "api_error"
    assert sandbox.http.get(session.url).status_code == 200
    assert sandbox.pay(session.id)["payment_status"] == "paid"


def test_a_retried_create_reuses_its_key_and_makes_one_session(sandbox):
    retrying = stripe.StripeClient(
        API_KEY, base_addresses={"api": sandbox.url}, max_network_retries=2
    )
    sandbox.control("config", {"fail_next": 1})

    session = retrying.v1.checkout.sessions.create(session_params())

    assert session.status == "open"
    assert [s.id for s in retrying.v1.checkout.sessions.list().data] == [session.id]
    assert sandbox.control("config", method="GET")["fail_next"] == 0


def test_without_retries_the_500_reaches_the_caller_and_the_key_recovers(client, sandbox):
    params = session_params()
    sandbox.control("config", {"fail_next": 1})
    with pytest.raises(stripe.APIError):
        client.v1.checkout.sessions.create(params, {"idempotency_key": "pay-42"})

    again = client.v1.checkout.sessions.create(params, {"idempotency_key": "pay-42"})
    assert [s.id for s in client.v1.checkout.sessions.list().data] == [again.id]


def test_a_fail_rate_between_0_and_1_fails_some_calls(client, sandbox):
    sandbox.control("config", {"fail_rate": 0.5})
    outcomes = []
    for _ in range(40):
        try:
            client.v1.events.list({"limit": 1})
            outcomes.append(True)
        except stripe.APIError:
            outcomes.append(False)

    assert 0 < outcomes.count(False) < 40
