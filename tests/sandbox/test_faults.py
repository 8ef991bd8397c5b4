"""latency_ms and fail_rate: a slow or failing Stripe, and how the client recovers."""

from __future__ import annotations

import time

import pytest
import stripe

from tests.sandbox.helpers import API_KEY, session_params, wait_until
from tests.wire import Pending


def test_latency_slows_the_api_but_never_the_event_loop(sandbox):
    """While a delayed API call is being held by the sandbox (it has read the request), a
    control request is answered and the API call is still not: the delay is an
    asyncio.sleep, not a blocked loop, which would have answered the API call first."""
    sandbox.control("config", {"latency_ms": 1500})
    port = int(sandbox.url.rsplit(":", 1)[1])
    started = time.monotonic()
    slow = Pending(port).send("GET", "/v1/events", headers={"Authorization": f"Bearer {API_KEY}"})
    wait_until(slow.peer_has_read, 5, "the sandbox to read the API request")
    assert sandbox.http.get(f"{sandbox.url}/_sandbox/health").status_code == 200
    assert not slow.answered(), "a control request waited for a delayed API call"
    status, body = slow.response()
    assert status == 200 and body["object"] == "list"
    assert time.monotonic() - started >= 1.5  # the delay was applied


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
