"""Accounts and authentication: registration, login, tokens, sessions, roles, CORS, rate limits.

Most tests talk HTTP to a real `shopctl serve`, each with its own cookie jar; the role
guard and production cookies are checked in-process, where a test-only route or
production settings can be put in.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import threading
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import bcrypt
import httpx
import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from shopctl.models import LoginThrottle, RefreshSession, User
from tests.wire import Pending, wait_until, worker_connections

PASSWORD = "Passw0rd!"
FRONTEND = "http://localhost:3000"
EVIL = "http://evil.example"
USER_FIELDS = {"id", "email", "name", "role", "isDeleted", "createdAt", "updatedAt"}


@pytest.fixture
def http(server):
    """A client of the live server with a cookie jar of its own."""
    with httpx.Client(base_url=f"{server.url}/api/v1", timeout=30) as client:
        yield client


def new_client(server) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)


def register(http, email="alice@example.com", password=PASSWORD, **extra) -> httpx.Response:
    return http.post("/user", json={"email": email, "password": password, **extra})


def login(http, email="alice@example.com", password=PASSWORD) -> httpx.Response:
    return http.post("/auth/login", json={"email": email, "password": password})


def signed_up(http, email="alice@example.com") -> dict:
    assert register(http, email).status_code == 201
    response = login(http, email)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def refresh(server, token: str) -> httpx.Response:
    with new_client(server) as client:
        return client.post("/auth/refresh-token", json={"refreshToken": token})


def me(server, access_token: str) -> httpx.Response:
    with new_client(server) as client:
        return client.get("/user/me", headers=bearer(access_token))


def set_cookies(response: httpx.Response) -> dict[str, str]:
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


# --- registration ----------------------------------------------------------------------------


def test_register_normalises_the_email_and_never_returns_the_hash(http, settings):
    response = register(http, "  Alice@Example.COM ", name="Alice")
    assert response.status_code == 201
    body = response.json()
    assert body["message"] == "User created successfully."
    assert set(body["data"]) == USER_FIELDS
    assert body["data"]["email"] == "alice@example.com"
    assert body["data"]["role"] == "USER" and body["data"]["isDeleted"] is False
    assert "$2b$" not in response.text
    stored = User.get(User.email == "alice@example.com")
    assert stored.password_hash.startswith(f"$2b$0{settings.bcrypt_salt_rounds}$")
    assert bcrypt.checkpw(PASSWORD.encode(), stored.password_hash.encode())


def test_duplicate_email_in_another_case_is_409_and_changes_nothing(http):
    assert register(http, "bob@example.com").status_code == 201
    response = register(http, "BOB@example.com", password="Other-pass1")
    assert response.status_code == 409
    assert response.json()["success"] is False
    assert User.select().count() == 1


@pytest.mark.parametrize(
    "password, broken",
    [
        ("short", ["8 characters", "uppercase", "number", "special"]),
        ("alllowercase", ["uppercase", "number", "special"]),
        ("ALLUPPER1!", ["lowercase"]),
        ("NoDigits!!", ["number"]),
        ("NoSpecial1", ["special"]),
        ("Aa1!" * 19, ["at most 72 bytes"]),
    ],
)
def test_weak_passwords_get_one_v1_message_per_broken_rule(http, password, broken):
    response = register(http, password=password)
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "Validation Error"
    assert [e["path"] for e in body["error"]] == ["password"] * len(broken)
    for error, fragment in zip(body["error"], broken, strict=True):
        assert fragment in error["message"] and error["message"].startswith("Password must")
    assert User.select().count() == 0


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "a@b", "password": PASSWORD},
        {"email": "alice@example.com"},
        {"email": "alice@example.com", "password": PASSWORD, "role": "ADMIN"},
        {"email": "alice@example.com", "password": 12345678},
    ],
)
def test_register_refuses_bad_input_without_creating_anyone(http, payload):
    response = http.post("/user", json=payload)
    assert response.status_code == 400
    assert response.json()["message"] == "Validation Error"
    assert User.select().count() == 0


# --- login -----------------------------------------------------------------------------------


def test_login_returns_tokens_user_and_httponly_cookies(http, settings):
    register(http)
    response = login(http, "ALICE@example.com")
    assert response.status_code == 200
    body = response.json()
    assert body["message"] == "User Logged In Successfully"
    assert set(body["data"]) == {"accessToken", "refreshToken", "user"}
    assert set(body["data"]["user"]) == USER_FIELDS
    cookies = set_cookies(response)
    for name in ("accessToken", "refreshToken"):
        attributes = cookies[name].lower()
        assert "httponly" in attributes and "path=/" in attributes
        assert "samesite=lax" in attributes and "secure" not in attributes  # not production
    claims = jwt.decode(body["data"]["accessToken"], settings.jwt_access_secret, ["HS256"])
    assert {"sub", "iat", "exp", "jti", "sid"} <= set(claims)
    assert claims["exp"] - claims["iat"] == settings.jwt_access_expires
    row = RefreshSession.get()
    assert row.token_hash != body["data"]["refreshToken"] and len(row.token_hash) == 64


def test_wrong_password_and_unknown_email_get_the_same_401(http):
    register(http)
    wrong = login(http, password="Wrong-pass1")
    unknown = login(http, email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["message"] == unknown.json()["message"] == "Invalid email or password"
    assert "set-cookie" not in wrong.headers


@functools.cache
def slow_hash() -> str:
    """Cost 13: about half a second per check, long enough to see who answers first."""
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(13)).decode()


def test_bcrypt_runs_off_the_event_loop(http, server):
    """A slow password check must not stall other requests on the same worker: while it
    runs, the welcome page answers and the login has not. Had bcrypt run on the event loop,
    the login's answer would have been written before the welcome request was even read."""
    User.create(email="slow@example.com", password_hash=slow_hash())
    port = int(server.url.rsplit(":", 1)[1])
    body = {"email": "slow@example.com", "password": PASSWORD}
    pending = Pending(port).send("POST", "/api/v1/auth/login", body)
    # The attempt is counted just before bcrypt starts: wait for that row.
    wait_until(
        lambda: (
            LoginThrottle.select().where(LoginThrottle.key.contains("slow@example.com")).exists()
        ),
        10,
        "the login to start",
    )
    assert httpx.get(f"{server.url}/", timeout=5).status_code == 200
    assert not pending.answered(), "the welcome page waited for bcrypt"
    assert pending.response()[0] == 200


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (from /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_unknown_email_still_costs_one_bcrypt_check(start_server):
    """Measured as the server's own CPU time (no patching): at cost 12 a check costs tens
    of milliseconds, the rest of a login well under one; an unknown email must cost about
    what a wrong password for a real account costs."""
    with start_server(env={"BCRYPT_SALT_ROUNDS": "12"}) as live, new_client(live) as client:
        assert register(client).status_code == 201
        login(client, "warm-up@example.com")  # the stand-in hash is made once, here

        def cpu_of(emails: list[str]) -> float:
            before = _cpu_seconds(live.process.pid)
            for email in emails:
                assert login(client, email, "Wrong-pass1").status_code == 401
            return _cpu_seconds(live.process.pid) - before

        known = cpu_of(["alice@example.com"] * 3)
        unknown = cpu_of([f"nobody{n}@example.com" for n in range(3)])
        cheap = _cpu_seconds(live.process.pid)
        for _ in range(3):
            assert client.get("/health").status_code == 200
        cheap = _cpu_seconds(live.process.pid) - cheap
    assert known > 5 * max(cheap, 0.01), (known, cheap)  # bcrypt dominates a failed login
    assert unknown > 0.5 * known, (unknown, known)


# --- access tokens ---------------------------------------------------------------------------


def _segment(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def forged_tokens(settings, genuine: str) -> dict[str, str]:
    claims = jwt.decode(genuine, options={"verify_signature": False})
    header, _, signature = genuine.split(".")
    now = int(time.time())
    secret = settings.jwt_access_secret
    with warnings.catch_warnings():  # the right secret, the refused algorithm: short for it
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        hs512 = jwt.encode(claims, secret, "HS512")
    return {
        "alg none": f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}.",
        "tampered": f"{header}.{_segment({**claims, 'role': 'ADMIN'})}.{signature}",
        "wrong secret": jwt.encode(claims, "not-the-secret-at-all-0123456789", "HS256"),
        "HS512": hs512,
        "expired": jwt.encode({**claims, "iat": now - 120, "exp": now - 60}, secret, "HS256"),
        "no exp": jwt.encode({k: v for k, v in claims.items() if k != "exp"}, secret, "HS256"),
        "refresh type": jwt.encode({**claims, "type": "refresh"}, secret, "HS256"),
        "unknown user": jwt.encode({**claims, "sub": str(uuid.uuid4())}, secret, "HS256"),
        "garbage": "not.a.jwt",
    }


def test_forged_expired_and_foreign_tokens_are_401(http, server, settings):
    genuine = signed_up(http)["accessToken"]
    assert me(server, genuine).status_code == 200
    for name, token in forged_tokens(settings, genuine).items():
        by_header = me(server, token)
        with new_client(server) as client:
            client.cookies.set("accessToken", token)
            by_cookie = client.get("/user/me")
        assert by_header.status_code == by_cookie.status_code == 401, name
        assert by_header.json()["success"] is False


def test_missing_token_is_401(http):
    response = http.get("/user/me")
    assert response.status_code == 401
    assert response.json()["message"] == "You are not authorized"


def test_deleted_user_is_rejected_everywhere(http, server):
    tokens = signed_up(http)
    User.update(is_deleted=True).where(User.email == "alice@example.com").execute()
    assert me(server, tokens["accessToken"]).status_code == 401
    assert refresh(server, tokens["refreshToken"]).status_code == 401
    assert login(http).status_code == 401


# --- refresh sessions ------------------------------------------------------------------------


def test_refresh_rotates_and_reuse_revokes_the_whole_family(http, server):
    first = signed_up(http)
    second = refresh(server, first["refreshToken"])
    assert second.status_code == 200
    assert second.json()["message"] == "New Access Token Retrived Successfully"
    assert set(second.json()["data"]) == {"accessToken", "refreshToken"}
    assert set(set_cookies(second)) == {"accessToken", "refreshToken"}
    third = refresh(server, second.json()["data"]["refreshToken"]).json()["data"]
    assert me(server, third["accessToken"]).status_code == 200

    assert refresh(server, first["refreshToken"]).status_code == 401  # reuse
    assert refresh(server, third["refreshToken"]).status_code == 401  # family revoked
    assert me(server, third["accessToken"]).status_code == 401  # and its access tokens
    assert RefreshSession.select().where(~RefreshSession.revoked).count() == 0


def test_refresh_token_from_cookie(http):
    signed_up(http)
    old_cookie = http.cookies["refreshToken"]
    response = http.post("/auth/refresh-token")
    assert response.status_code == 200
    assert http.cookies["refreshToken"] == response.json()["data"]["refreshToken"] != old_cookie


def test_two_concurrent_refreshes_with_one_token_cannot_both_win(http, server):
    token = signed_up(http)["refreshToken"]
    barrier = threading.Barrier(4)

    def attempt(_):
        with new_client(server) as client:
            barrier.wait()
            return client.post("/auth/refresh-token", json={"refreshToken": token})

    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(attempt, range(4)))
    assert sorted(r.status_code for r in responses) == [200, 401, 401, 401]
    winner = next(r for r in responses if r.status_code == 200).json()["data"]
    # The losers presented a spent token: reuse, so the winner's new session dies too.
    assert refresh(server, winner["refreshToken"]).status_code == 401


def test_missing_or_unknown_refresh_token_is_401(http, server):
    assert http.post("/auth/refresh-token").status_code == 401
    assert refresh(server, "made-up-token").status_code == 401


# --- logout and change-password --------------------------------------------------------------


def test_logout_revokes_the_session_and_clears_cookies(http, server):
    tokens = signed_up(http)
    response = http.post("/auth/logout")
    assert response.status_code == 200
    assert response.json()["message"] == "User Logged Out Successfully"
    for attributes in set_cookies(response).values():
        assert "max-age=0" in attributes.lower()
    assert "accessToken" not in http.cookies
    assert refresh(server, tokens["refreshToken"]).status_code == 401
    assert me(server, tokens["accessToken"]).status_code == 401
    with new_client(server) as anonymous:
        assert anonymous.post("/auth/logout").status_code == 200


def test_change_password_revokes_the_other_sessions(http, server):
    here = signed_up(http)
    with new_client(server) as other_device:
        elsewhere = login(other_device).json()["data"]
    body = {"oldPassword": PASSWORD, "newPassword": "N3w-password"}
    response = http.post("/auth/change-password", json=body, headers=bearer(here["accessToken"]))
    assert response.status_code == 200
    assert response.json()["message"] == "Password Changed Successfully"

    assert me(server, elsewhere["accessToken"]).status_code == 401
    assert refresh(server, elsewhere["refreshToken"]).status_code == 401
    assert me(server, here["accessToken"]).status_code == 200
    assert refresh(server, here["refreshToken"]).status_code == 200
    assert login(http).status_code == 401
    assert login(http, password="N3w-password").status_code == 200


def test_change_password_refuses_a_wrong_old_or_weak_new_password(http):
    token = signed_up(http)["accessToken"]
    wrong = {"oldPassword": "Not-it-1", "newPassword": "N3w-password"}
    weak = {"oldPassword": PASSWORD, "newPassword": "weak"}
    for body, path in ((wrong, "oldPassword"), (weak, "newPassword")):
        response = http.post("/auth/change-password", json=body, headers=bearer(token))
        assert response.status_code == 400
        assert {e["path"] for e in response.json()["error"]} == {path}
    assert http.post("/auth/change-password", json=wrong).status_code == 400  # cookie auth
    assert login(http).status_code == 200  # unchanged


# --- roles (guard, through a test-only route) ------------------------------------------------


def _app_with_admin_probe(settings, backend_url):
    from sanic import Sanic

    from shopctl.api.app import create_app
    from shopctl.api.guards import authenticated
    from shopctl.api.responses import ok

    Sanic.test_mode = True
    app = create_app(replace(settings, database_url=backend_url), name=f"t{uuid.uuid4().hex[:8]}")

    @app.get("/api/v1/test-only/admin")
    @authenticated("ADMIN")
    async def admin_probe(request):
        return ok({"id": request.ctx.user.id}, "admin ok")

    return app


def test_guard_says_401_without_a_token_and_403_for_the_wrong_role(settings, backend_url):
    from shopctl.schemas import Login, Registration, validate
    from shopctl.services.accounts import auth, users

    def tokens_for(email: str) -> str:
        credentials = {"email": email, "password": PASSWORD}
        auth.register(settings, validate(Registration, credentials))
        return auth.login(settings, validate(Login, credentials), "127.0.0.1")["accessToken"]

    user_token = tokens_for("user@example.com")
    admin_token = tokens_for("admin@example.com")
    users.promote("admin@example.com")
    client = _app_with_admin_probe(settings, backend_url).asgi_client

    async def statuses():
        results = []
        for headers in ({}, bearer("junk"), bearer(user_token), bearer(admin_token)):
            _, response = await client.get("/api/v1/test-only/admin", headers=headers)
            results.append(response.status)
        return results

    assert asyncio.run(statuses()) == [401, 401, 403, 200]


def test_catalog_writes_are_admin_only(http, server):
    from shopctl.services.accounts import users

    user_token = signed_up(http, "user@example.com")["accessToken"]
    admin_token = signed_up(http, "admin@example.com")["accessToken"]
    users.promote("admin@example.com")
    http.cookies.clear()
    product = {"name": "Probe", "price": "1.00", "quantity": 1}
    assert http.post("/product", json=product).status_code == 401
    assert http.post("/product", json=product, headers=bearer(user_token)).status_code == 403
    created = http.post("/product", json=product, headers=bearer(admin_token))
    assert created.status_code == 201, created.text


def test_production_cookies_are_secure_and_samesite_none(settings, backend_url):
    from sanic import Sanic

    from shopctl.api.app import create_app

    Sanic.test_mode = True
    production = replace(settings, env="production", database_url=backend_url)
    client = create_app(production, name=f"t{uuid.uuid4().hex[:8]}").asgi_client
    credentials = {"email": "prod@example.com", "password": PASSWORD}

    async def cookies():
        _, registered = await client.post("/api/v1/user", json=credentials)
        assert registered.status == 201, registered.text
        _, logged_in = await client.post("/api/v1/auth/login", json=credentials)
        assert logged_in.status == 200, logged_in.text
        _, logged_out = await client.post("/api/v1/auth/logout")
        assert logged_out.status == 200, logged_out.text
        found = set_cookies(logged_in)
        assert set(found) == {"accessToken", "refreshToken"}
        return found | {"cleared": set_cookies(logged_out)["accessToken"]}

    for attributes in asyncio.run(cookies()).values():
        lowered = attributes.lower()
        assert "secure" in lowered and "samesite=none" in lowered and "httponly" in lowered


# --- CORS and cross-site cookies -------------------------------------------------------------


def test_cors_allows_the_frontend_with_credentials_and_nobody_else(http):
    allowed = http.get("/health", headers={"Origin": FRONTEND})
    assert allowed.headers["access-control-allow-origin"] == FRONTEND
    assert allowed.headers["access-control-allow-credentials"] == "true"
    refused = http.get("/health", headers={"Origin": EVIL})
    assert not [h for h in refused.headers if h.startswith("access-control-")]
    error = http.get("/user/me", headers={"Origin": FRONTEND})
    assert error.status_code == 401  # errors too, so the frontend can read them
    assert error.headers["access-control-allow-origin"] == FRONTEND


def test_cors_preflight_is_answered_for_the_frontend_only(http):
    ask = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization",
    }
    allowed = http.options("/auth/login", headers={"Origin": FRONTEND, **ask})
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == FRONTEND
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert set(allowed.headers["access-control-allow-headers"].split(",")) == {
        "content-type",
        "authorization",
    }
    refused = http.options("/auth/login", headers={"Origin": EVIL, **ask})
    assert not [h for h in refused.headers if h.startswith("access-control-")]


def test_cors_origins_come_from_frontend_url_and_never_star(settings, backend_url):
    from sanic import Sanic

    from shopctl.api.app import create_app
    from shopctl.errors import ConfigError

    Sanic.test_mode = True
    two = replace(
        settings,
        frontend_urls=("https://shop.test/", "https://admin.shop.test"),
        database_url=backend_url,
    )
    client = create_app(two, name=f"t{uuid.uuid4().hex[:8]}").asgi_client

    async def origins():
        found = []
        for origin in ("https://shop.test", "https://admin.shop.test", "https://shop.test.evil"):
            _, response = await client.get("/api/v1/health", headers={"Origin": origin})
            found.append(response.headers.get("access-control-allow-origin"))
        return found

    assert asyncio.run(origins()) == ["https://shop.test", "https://admin.shop.test", None]
    with pytest.raises(ConfigError, match="FRONTEND_URL"):
        create_app(replace(settings, frontend_urls=("*",)), name=f"t{uuid.uuid4().hex[:8]}")


def test_cookie_authenticated_writes_from_another_site_are_refused(http):
    signed_up(http)
    body = {"oldPassword": PASSWORD, "newPassword": "N3w-password"}
    forged = http.post("/auth/change-password", json=body, headers={"Origin": EVIL})
    assert forged.status_code == 403
    assert http.post("/auth/refresh-token", headers={"Origin": EVIL}).status_code == 403
    assert http.post("/auth/refresh-token", headers={"Origin": FRONTEND}).status_code == 200
    assert login(http).status_code == 200  # the password did not change


# --- failed-login rate limit -----------------------------------------------------------------


def _attempt(connection: Pending, email: str, password: str = "Wrong-pass1") -> Pending:
    body = {"email": email, "password": password}
    return connection.send("POST", "/api/v1/auth/login", body)


def _status(pending: Pending) -> tuple[int, str | None]:
    connection = pending.connection
    answer = connection.getresponse()
    answer.read()
    connection.close()
    return answer.status, answer.getheader("retry-after")


def _alternating(by_worker: dict[int, list[Pending]]) -> list[Pending]:
    """Each worker's connections in turn: A, B, A, B, …"""
    return [c for pair in zip(*by_worker.values(), strict=False) for c in pair]


def _register(server, email: str) -> None:
    with new_client(server) as client:
        assert register(client, email).status_code == 201


def test_failed_logins_per_email_are_limited_across_two_workers(start_server):
    """One by one, the two workers taking turns; then twelve guesses at once, six on each
    worker: five are checked, seven refused (parallel guessing gains nothing)."""
    with start_server(workers=2) as server:
        _register(server, "alice@example.com")
        _register(server, "bob@example.com")
        # Each attempt on a connection a known worker accepted.
        by_worker = worker_connections(server, per_worker=14)
        connections = iter(_alternating({pid: c[:8] for pid, c in by_worker.items()}))
        first = [_status(_attempt(next(connections), "alice@example.com")) for _ in range(5)]
        assert [status for status, _ in first] == [401] * 5
        limited = [_status(_attempt(next(connections), "Alice@example.com")) for _ in range(8)]
        limited.append(_status(_attempt(next(connections), "alice@example.com", PASSWORD)))
        assert {status for status, _ in limited} == {429}
        assert all(0 < int(retry) <= 900 for _, retry in limited)
        assert _status(_attempt(next(connections), "someone-else@example.com"))[0] == 401

        parallel = _alternating({pid: c[8:] for pid, c in by_worker.items()})
        barrier = threading.Barrier(len(parallel))

        def guess(connection: Pending) -> int:
            barrier.wait()
            return _status(_attempt(connection, "bob@example.com"))[0]

        with ThreadPoolExecutor(len(parallel)) as pool:
            statuses = list(pool.map(guess, parallel))
        assert sorted(statuses) == [401] * 5 + [429] * 7
    # Attempts refused by the limit are not counted: the five failures and the sixth.
    assert LoginThrottle.get_by_id("pair:alice@example.com|127.0.0.1").failures == 6
    assert LoginThrottle.get_by_id("pair:bob@example.com|127.0.0.1").failures >= 5


def test_failed_logins_per_address_are_limited(http):
    register(http)
    for n in range(20):
        assert login(http, f"guess{n}@example.com").status_code == 401
    blocked = login(http)  # right password, but this address is over its limit
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert blocked.json()["success"] is False


def test_successful_login_resets_the_email_counter(http):
    """Per (email, address) pair since issue 16; the account's ceiling gets it back."""
    register(http)
    for _ in range(4):
        assert login(http, password="Wrong-pass1").status_code == 401
    assert login(http).status_code == 200
    pair = "pair:alice@example.com|127.0.0.1"
    assert LoginThrottle.get_or_none(LoginThrottle.key == pair) is None
    assert LoginThrottle.get_by_id("email:alice@example.com").failures == 4
    assert [login(http, password="Wrong-pass1").status_code for _ in range(6)] == [401] * 5 + [429]


def test_the_limit_lifts_once_its_window_has_passed(http):
    register(http)
    assert [login(http, password="Wrong-pass1").status_code for _ in range(6)][-1] == 429
    for row in LoginThrottle.select():  # fifteen minutes later…
        row.window_started_at -= timedelta(minutes=15)
        row.save()
    assert login(http).status_code == 200
    assert login(http, password="Wrong-pass1").status_code == 401  # counting from zero again


# --- the journey ("Done when") ---------------------------------------------------------------


def test_journey_register_login_me_refresh_reuse_logout(http, server):
    seen: list[httpx.Response] = []

    def keep(response: httpx.Response) -> httpx.Response:
        seen.append(response)
        return response

    assert keep(register(http, "Journey@Example.com", name="J")).status_code == 201
    tokens = keep(login(http, "journey@example.com")).json()["data"]
    assert keep(me(server, tokens["accessToken"])).json()["data"]["email"] == "journey@example.com"
    assert keep(http.get("/user/me")).json()["message"] == "User fetched successfully"  # cookie

    first = tokens["refreshToken"]
    second = keep(refresh(server, first)).json()["data"]
    third = keep(refresh(server, second["refreshToken"])).json()["data"]
    assert keep(refresh(server, first)).status_code == 401
    assert keep(refresh(server, third["refreshToken"])).status_code == 401
    assert keep(me(server, third["accessToken"])).status_code == 401

    fresh = keep(login(http, "journey@example.com")).json()["data"]
    assert keep(http.post("/auth/logout")).status_code == 200
    assert keep(refresh(server, fresh["refreshToken"])).status_code == 401
    assert keep(http.get("/user/me")).status_code == 401

    for response in seen:
        assert "$2" not in response.text and "password" not in response.text.lower()
