"""Registration and login cost the attacker, not the shop (issue 16), over real HTTP.

Regressions pinned: twelve threads registering an existing email ran bcrypt each time
(before the email check, with no limit) and pushed product reads from under a
millisecond to over a second; five wrong passwords from anywhere locked the owner out of
their account for fifteen minutes, from everywhere.

Two client addresses are real here: Linux routes all of 127.0.0.0/8 to the loopback
interface, so a client socket bound to 127.0.0.2 reaches a server on 127.0.0.1 and the
server sees 127.0.0.2 as the peer.
"""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from datetime import timedelta

import httpx
import pytest

from shopctl.models import LoginThrottle, User
from shopctl.services.accounts import throttle
from shopctl.services.accounts.auth import hash_password
from tests.orders_support import make_product

PASSWORD = "Passw0rd!"
WRONG = "Wrong-pass1"


def client_from(server, address: str) -> httpx.Client:
    """A client whose connections leave from `address` (127.x.y.z)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=f"{server.url}/api/v1", transport=transport, timeout=30)


def _login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/auth/login", json={"email": email, "password": password})


def _owner(settings, email: str = "owner@example.com") -> User:
    return User.create(email=email, password_hash=hash_password(settings, PASSWORD))


# --- login -------------------------------------------------------------------------------


def test_an_attacker_failing_from_one_address_cannot_lock_the_owner_out(server, settings):
    _owner(settings)
    with client_from(server, "127.0.0.1") as attacker, client_from(server, "127.0.0.2") as owner:
        statuses = [_login(attacker, "owner@example.com", WRONG).status_code for _ in range(30)]
        assert statuses == [401] * throttle.PAIR_LIMIT + [429] * (30 - throttle.PAIR_LIMIT)
        # The attacker keeps being refused, even with the right password, from there …
        refused = _login(attacker, "owner@example.com", PASSWORD)
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        # … while the owner, elsewhere, logs in.
        response = _login(owner, "owner@example.com", PASSWORD)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["user"]["email"] == "owner@example.com"


def test_a_distributed_guess_hits_the_account_ceiling_and_a_short_lock_out(server, settings):
    """Failures from many addresses add up on the account: past the ceiling it is locked
    for a short while, for everyone, and the lock lifts by itself."""
    _owner(settings)
    per_address = throttle.PAIR_LIMIT
    addresses = [f"127.0.1.{n}" for n in range(1, throttle.ACCOUNT_LIMIT // per_address + 1)]
    for address in addresses:
        with client_from(server, address) as guesser:
            for _ in range(per_address):
                assert _login(guesser, "owner@example.com", WRONG).status_code == 401
    with client_from(server, "127.0.2.1") as guesser:
        assert _login(guesser, "owner@example.com", WRONG).status_code == 429  # one too many
    with client_from(server, "127.0.2.2") as owner:
        locked = _login(owner, "owner@example.com", PASSWORD)
        assert locked.status_code == 429
        lockout = throttle.ACCOUNT_LOCKOUT.total_seconds()
        assert 0 < int(locked.headers["retry-after"]) <= lockout
        assert "account" in locked.json()["message"].lower()
        # The lock-out ends (moved into the past here) and the owner gets in.
        row = LoginThrottle.get_by_id("email:owner@example.com")
        earlier = row.locked_until - throttle.ACCOUNT_LOCKOUT
        LoginThrottle.update(locked_until=earlier).where(LoginThrottle.key == row.key).execute()
        assert _login(owner, "owner@example.com", PASSWORD).status_code == 200


def test_a_successful_login_gives_the_pair_its_attempts_back(server, settings):
    _owner(settings)
    with client_from(server, "127.0.0.3") as client:
        for _ in range(throttle.PAIR_LIMIT - 1):
            assert _login(client, "owner@example.com", WRONG).status_code == 401
        assert _login(client, "owner@example.com", PASSWORD).status_code == 200
        statuses = [_login(client, "owner@example.com", WRONG).status_code for _ in range(6)]
        assert statuses == [401] * throttle.PAIR_LIMIT + [429]


# --- registration ------------------------------------------------------------------------


def _register(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    return client.post("/user", json={"email": email, "password": password})


def test_registration_is_rate_limited_per_client_address(server, settings):
    allowed = settings.registration_rate.count
    with client_from(server, "127.0.0.4") as first, client_from(server, "127.0.0.5") as second:
        for n in range(allowed):
            assert _register(first, f"new{n}@example.com").status_code == 201
        refused = _register(first, "one-more@example.com")
        assert refused.status_code == 429, refused.text
        retry_after = int(refused.headers["retry-after"])
        assert 0 < retry_after <= settings.registration_rate.seconds
        assert "registration" in refused.json()["message"].lower()
        assert User.get_or_none(User.email == "one-more@example.com") is None
        assert _register(second, "elsewhere@example.com").status_code == 201


def test_a_refused_registration_never_runs_bcrypt(db, settings, monkeypatch):
    """In the service: count bcrypt hashes while it refuses a duplicate and a limit."""
    import bcrypt

    from shopctl.errors import Conflict, TooManyRequests
    from shopctl.schemas import Registration, validate
    from shopctl.services.accounts import auth

    def registration(email: str) -> Registration:
        return validate(Registration, {"email": email, "password": PASSWORD})

    User.create(email="taken@example.com", password_hash="x")
    hashed = []
    real = bcrypt.hashpw
    monkeypatch.setattr(bcrypt, "hashpw", lambda *args: hashed.append(1) or real(*args))
    with pytest.raises(Conflict):
        auth.register(settings, registration("Taken@example.com"), address="10.0.0.1")
    assert hashed == []
    allowed = settings.registration_rate.count
    for n in range(allowed - 1):  # the duplicate counted as one attempt
        auth.register(settings, registration(f"x{n}@example.com"), address="10.0.0.1")
    assert len(hashed) == allowed - 1
    with pytest.raises(TooManyRequests):
        auth.register(settings, registration("late@example.com"), address="10.0.0.1")
    assert len(hashed) == allowed - 1


def _timed_read(client: httpx.Client, path: str) -> float:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed


def _reads(client: httpx.Client, path: str, seconds: float) -> list[float]:
    """A read every 20 ms (or as fast as they come back) for `seconds`."""
    samples, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        samples.append(_timed_read(client, path))
        time.sleep(max(0.0, 0.02 - samples[-1]))  # pacing the reader, not waiting on it
    return samples


class Attack:
    """Threads registering a taken email, each every 500 ms while `on`, each from an
    address of its own; `pause()` returns once none of their requests is in flight."""

    def __init__(self, server, threads: int = 12):
        self.server, self.on, self.stop = server, threading.Event(), threading.Event()
        self.statuses: list[int] = []
        self.in_flight = 0
        self.changed = threading.Condition()
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def _run(self, n: int) -> None:
        # http.client, lighter than httpx: the attackers share this process with the
        # reader, and their own CPU time must not be what slows its reads.
        host, port = self.server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(
            host, int(port), timeout=60, source_address=(f"127.0.3.{n + 1}", 0)
        )
        body = json.dumps({"email": "taken@example.com", "password": PASSWORD})
        headers = {"Content-Type": "application/json"}
        try:
            while not self.stop.is_set():
                if not self.on.wait(0.05):
                    continue
                with self.changed:
                    self.in_flight += 1
                try:
                    connection.request("POST", "/api/v1/user", body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                finally:
                    with self.changed:
                        self.in_flight -= 1
                        self.statuses.append(response.status)
                        self.changed.notify_all()
                self.stop.wait(0.5)
        finally:
            connection.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def pause(self) -> None:
        self.on.clear()
        with self.changed:
            assert self.changed.wait_for(lambda: self.in_flight == 0, timeout=120)

    def __exit__(self, *exc):
        self.on.clear()
        self.stop.set()
        for thread in self.threads:
            thread.join()


def test_duplicate_registrations_in_parallel_do_not_slow_product_reads(start_server):
    """Twelve threads registering a taken email, each every 500 ms, beside a reader.

    bcrypt at its production cost (12): before the fix each of those requests spent a
    quarter of a second of CPU in the thread pool the reads need too. The attack is
    switched on and off in turns, so both medians (reads under attack, reads with the
    attack paused and drained) come from the same stretch of time on a shared machine.
    """
    User.create(email="taken@example.com", password_hash="x")
    product = make_product("Mug")
    path = f"/product/{product.id}"
    idle: list[float] = []
    loaded: list[float] = []
    with (
        start_server(env={"BCRYPT_SALT_ROUNDS": "12"}) as server,
        client_from(server, "127.0.0.9") as reader,
        Attack(server) as attack,
    ):
        _reads(reader, path, seconds=1)  # warm up the connection and the statements
        for _ in range(4):
            attack.pause()
            idle += _reads(reader, path, seconds=1.5)
            attack.on.set()
            loaded += _reads(reader, path, seconds=1.5)
        attack.pause()
    assert attack.statuses and set(attack.statuses) <= {409, 429}, set(attack.statuses)
    ratio = statistics.median(loaded) / statistics.median(idle)
    assert ratio <= 2, f"reads {ratio:.1f}x slower under attack ({len(loaded)} samples)"


def test_the_registration_window_frees_once_it_has_passed(server, settings):
    with client_from(server, "127.0.0.6") as client:
        for n in range(settings.registration_rate.count):
            assert _register(client, f"w{n}@example.com").status_code == 201
        assert _register(client, "w-late@example.com").status_code == 429
        window = timedelta(seconds=settings.registration_rate.seconds)
        for row in LoginThrottle.select().where(LoginThrottle.key.startswith("register:")):
            row.window_started_at -= window  # an hour later…
            row.expires_at -= window
            row.save()
        assert _register(client, "w-late@example.com").status_code == 201
