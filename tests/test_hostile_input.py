"""Hostile input at every door: each request or command below must be refused with a 4xx
envelope (API) or exit 1/2 with a one-line message (CLI), never a 5xx or a traceback, and
must change nothing (every row of every table before and after; the failed-login counter
excepted)."""

from __future__ import annotations

import json
import shlex
import time
import uuid
import warnings

import httpx
import jwt
import pytest

from shopctl.config import DEV_ACCESS_SECRET
from shopctl.models import Order, Product
from tests.conftest import TEST_ENV
from tests.orders_support import bearer, make_product, make_user, place
from tests.resilience_support import table_contents
from tests.test_webhooks import sign

HUGE = "x" * 100_000
BIG = 10**30
NUL = "a\u0000b"
SURROGATE = "\ud800"  # valid JSON (`"\ud800"`), not encodable as UTF-8
SQLI = "' OR '1'='1'; DROP TABLE \"user\"; --"
JSONI = '", "role": "ADMIN", "x": "'
UNICODE = "\u202eevil\ufeff💥"
NOT_UUIDS = ["not-a-uuid", "1 OR 1=1", "%27%3B--", "%00", "0" * 500, "🦄"]
TYPE_SOUP = [None, 123, -1, BIG, 1.5, True, [], {}, ""]


@pytest.fixture
def shop(db, settings):
    user, admin = make_user("buyer@example.com"), make_user("admin@example.com", role="ADMIN")
    product = make_product("Mug", quantity=5)
    order = place(settings, user, (product, 1))
    return {
        "user": bearer(settings, user),
        "admin": bearer(settings, admin),
        "product": product.id,
        "order": order.id,
        "payment": order.payment.id,
    }


def _contents() -> dict[str, list]:
    """Every row of every table, compared whole (a count misses an UPDATE)."""
    contents = table_contents()
    contents.pop("login_throttle")  # a failed login is counted by design
    return contents


class Raw:
    """A body sent as these exact bytes with this Content-Type."""

    def __init__(self, body: bytes | str, content_type: str = "application/json"):
        self.body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
        self.content_type = content_type

    def __repr__(self) -> str:
        return f"Raw({self.body[:60]!r}, {self.content_type})"


NO_BODY = object()


def _send(server, method: str, path: str, headers: dict, payload) -> httpx.Response:
    if isinstance(payload, Raw):
        return server.http.request(
            method,
            path,
            content=payload.body,
            headers={**headers, "Content-Type": payload.content_type},
        )
    if payload is NO_BODY:
        return server.http.request(method, path, headers=headers)
    return server.http.request(
        method,
        path,
        content=json.dumps(payload).encode(),
        headers={**headers, "Content-Type": "application/json"},
    )


def _refused(response: httpx.Response) -> bool:
    """A 4xx with the v1 API's error envelope."""
    try:
        body = response.json()
    except ValueError:
        return False
    return (
        400 <= response.status_code < 500
        and body.get("success") is False
        and (body.get("statusCode") == response.status_code)
    )


def _assert_refused(server, shop, method, path, auth, payloads) -> None:
    """Every payload gets a 4xx envelope and changes nothing; collects every miss."""
    path = path.format(**shop)
    headers = shop[auth] if auth else {}
    before, misses = _contents(), []
    for payload in payloads:
        response = _send(server, method, path, headers, payload)
        if not _refused(response):
            misses.append(f"{payload!r:.120}: {response.status_code} {response.text[:200]}")
    assert misses == [], f"{method} {path}:\n" + "\n".join(misses)
    assert _contents() == before


def _with(base: dict, **changes) -> dict:
    return {**base, **changes}


def _without(base: dict, key: str) -> dict:
    return {k: v for k, v in base.items() if k != key}


def _field_attacks(base: dict, field: str, values) -> list[dict]:
    return [_with(base, **{field: value}) for value in values]


# fmt: off
# Attack tables: compact on purpose, one kind of attack per line.
def _common(base: dict) -> list:
    """Not an object, empty, an unknown field, and bodies that are not JSON at all."""
    return [
        NO_BODY, [], "text", 42, None, _with(base, role="ADMIN", isDeleted=False),
        Raw("{"), Raw(b"\xff\xfe"), Raw(HUGE), Raw(json.dumps(base)[:-1]),
        Raw(f"email={SQLI}&password=x", "application/x-www-form-urlencoded"),
        Raw(b"--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
            "multipart/form-data; boundary=b"),
    ]


REGISTRATION = {"email": "new@example.com", "password": "Str0ng!Pass", "name": "New"}
LOGIN = {"email": "buyer@example.com", "password": "Wr0ng!Pass"}
PRODUCT = {"name": "Lamp", "price": "12.50", "quantity": 5}


def _order_body(shop, **line) -> dict:
    return {"items": [{"productId": shop["product"], "quantity": 1, **line}]}


def _registration_attacks():
    attacks = [*_common(REGISTRATION), _without(REGISTRATION, "email"),
               _without(REGISTRATION, "password")]
    emails = [*TYPE_SOUP, HUGE + "@example.com", SQLI, JSONI,
              "buyer@example.com"]  # the last one exists: 409
    attacks += _field_attacks(REGISTRATION, "email", emails)
    attacks += _field_attacks(REGISTRATION, "password",
                              [*TYPE_SOUP, "short", HUGE, "Str0ng!Pass" + SURROGATE])
    attacks += _field_attacks(REGISTRATION, "name", [123, [], {}, HUGE])
    attacks.append(Raw('{"email": "a@example.com", "email": 5, "password": "Str0ng!Pass"}'))
    return attacks


def _login_attacks():
    attacks = [*_common(LOGIN), _without(LOGIN, "password"), {"email": SQLI, "password": SQLI}]
    attacks += _field_attacks(LOGIN, "email", [*TYPE_SOUP, HUGE, UNICODE])
    attacks += _field_attacks(LOGIN, "password", [*TYPE_SOUP, HUGE, NUL, SURROGATE])
    return attacks


def _product_attacks(base: dict, partial: bool):
    """`partial`: PATCH, where every field is optional and an empty body is a no-op."""
    attacks = (_common(base)[1:] if partial else
               [*_common(base), _without(base, "name"), _without(base, "price"), {}])
    attacks += _field_attacks(base, "price",
                              ["abc", -1, BIG, "1e400", "NaN", "Infinity", [], {}, True, SQLI])
    attacks += [Raw('{"name": "Lamp", "price": NaN}'), Raw('{"name": "Lamp", "price": 1e999}'),
                _with(base, price="1.00", priceCents=100)]
    attacks += _field_attacks(base, "priceCents", [-1, BIG, 1.5, "1250", True, 2**63])
    attacks += _field_attacks(base, "quantity", [-1, BIG, 2**31, "5", 1.5, True])
    names = ["", HUGE, NUL, SURROGATE, 123, [], "\t"] + ([] if partial else ["Mug", None])
    attacks += _field_attacks(base, "name", names)
    attacks += _field_attacks(base, "description", [HUGE, NUL, SURROGATE, 5])
    attacks += [_with(base, id=str(uuid.uuid4())), _with(base, isArchived=True)]
    return attacks


def _order_attacks(shop):
    base = _order_body(shop)
    attacks = [*_common(base), {}, {"items": []}, {"items": "x"}, {"items": [{}]},
               {"items": [None]}, _with(base, status="PAID"),
               _with(base, userId=str(uuid.uuid4()))]
    attacks += [_order_body(shop, quantity=q) for q in (0, -1, BIG, 1.5, "1", True, None, 10_001)]
    attacks += [_order_body(shop, productId=p)
                for p in (*NOT_UUIDS, SQLI, NUL, SURROGATE, None, 5, str(uuid.uuid4()))]
    attacks += [_order_body(shop, priceCents=0), {"items": base["items"] * 101}]
    line = f'{{"productId": "{shop["product"]}", "quantity": 1, "quantity": 0}}'
    attacks.append(Raw(f'{{"items": [{line}]}}'))  # a duplicate key: the last one wins
    attacks.append({"data": '{"items": [{"productId": "x", "quantity": 1}]}'})
    attacks.append({"data": "{not json"})
    return attacks


API_CASES = {
    "register": ("POST", "/api/v1/user", None, lambda shop: _registration_attacks()),
    "login": ("POST", "/api/v1/auth/login", None, lambda shop: _login_attacks()),
    "refresh": ("POST", "/api/v1/auth/refresh-token", None, lambda shop: [
        NO_BODY, {}, {"refreshToken": 123}, {"refreshToken": HUGE}, {"refreshToken": NUL},
        {"refreshToken": SURROGATE}, {"refreshToken": SQLI}, {"refreshToken": "t", "x": 1}]),
    "change-password": ("POST", "/api/v1/auth/change-password", "user", lambda shop: [
        *_common({"oldPassword": "x", "newPassword": "N3w!Passw0rd"}),
        {"oldPassword": 123, "newPassword": "N3w!Passw0rd"}, {"newPassword": "N3w!Passw0rd"},
        {"oldPassword": "x", "newPassword": HUGE}, {"oldPassword": HUGE, "newPassword": 5}]),
    "create-product": ("POST", "/api/v1/product", "admin",
                       lambda shop: _product_attacks(PRODUCT, partial=False)),
    "update-product": ("PATCH", "/api/v1/product/{product}", "admin",
                       lambda shop: _product_attacks({"price": "2.00"}, partial=True)),
    "order": ("POST", "/api/v1/order", "user", _order_attacks),
    "order-pay-later": ("POST", "/api/v1/order/pay-later", "user", _order_attacks),
}
PATH_CASES = [
    ("GET", "/api/v1/product/{}", None), ("PATCH", "/api/v1/product/{}", "admin"),
    ("DELETE", "/api/v1/product/{}", "admin"), ("GET", "/api/v1/order/{}", "user"),
    ("POST", "/api/v1/order/{}/pay", "user"), ("POST", "/api/v1/order/{}/cancel", "user"),
    ("GET", "/api/v1/payment/{}/status", "user"),
]
QUERY_CASES = {
    "/api/v1/product": [{"limit": BIG}, {"limit": -1}, {"limit": 0}, {"limit": "abc"},
                        {"page": BIG}, {"page": 0}, {"sortBy": SQLI}, {"sortOrder": SQLI},
                        {"search": "x" * 10_000}, {"search": NUL}, {"limit": 101}],
    "/api/v1/order": [{"status": SQLI}, {"limit": BIG}, {"page": 0}, {"page": "1e3"}],
}
# fmt: on


@pytest.mark.parametrize("case", list(API_CASES))
def test_hostile_bodies_are_refused_and_change_nothing(server, shop, case):
    method, path, auth, attacks = API_CASES[case]
    _assert_refused(server, shop, method, path, auth, attacks(shop))


@pytest.mark.parametrize("method, template, auth", PATH_CASES)
def test_malformed_and_unknown_ids_in_paths(server, shop, method, template, auth):
    ids = [
        *NOT_UUIDS,
        str(uuid.uuid4()),
        shop["order"] if "product" in template else shop["product"],
    ]
    payload = {"quantity": 1} if method == "PATCH" else NO_BODY
    before, misses = _contents(), []
    for bad_id in ids:
        response = _send(
            server, method, template.format(bad_id), shop[auth] if auth else {}, payload
        )
        if not _refused(response):
            misses.append(f"{bad_id[:40]}: {response.status_code} {response.text[:200]}")
    assert misses == []
    assert _contents() == before


@pytest.mark.parametrize("path", list(QUERY_CASES))
def test_hostile_query_strings(server, shop, path):
    misses = []
    for params in QUERY_CASES[path]:
        response = server.http.get(path, params=params, headers=shop["user"])
        if not _refused(response):
            misses.append(f"{params!r:.80}: {response.status_code} {response.text[:200]}")
    assert misses == []


def _tokens(settings) -> list[str]:
    now = int(time.time())
    claims = {
        "sub": "x",
        "role": "ADMIN",
        "iat": now,
        "exp": now + 60,
        "jti": "j",
        "type": "access",
    }
    return [
        "Bearer " + "a" * 7000,
        "Bearer " + SQLI,
        "Basic YWRtaW46YWRtaW4=",
        "Bearer",
        # An attacker's first guesses: the public development default, and a short key.
        "Bearer " + jwt.encode(claims, DEV_ACCESS_SECRET, algorithm="HS256"),
        "Bearer " + _signed_with_a_short_key(claims, "guessed-secret"),
        "Bearer " + jwt.encode(claims, None, algorithm="none"),
        "Bearer " + jwt.encode({**claims, "exp": now - 10}, TEST_ENV["JWT_ACCESS_SECRET"]),
        "Bearer " + jwt.encode(claims, TEST_ENV["JWT_REFRESH_SECRET"]),  # the other key
    ]


def _signed_with_a_short_key(claims: dict, key: str) -> str:
    """A forgery with a key under 32 bytes; PyJWT warns when signing it, on purpose here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        return jwt.encode(claims, key, algorithm="HS256")


def test_forged_and_malformed_tokens_are_401(server, shop, settings):
    for token in _tokens(settings):
        for method, path in (("GET", "/api/v1/user/me"), ("POST", "/api/v1/product")):
            response = server.http.request(
                method, path, headers={"Authorization": token}, json=PRODUCT
            )
            assert response.status_code == 401 and _refused(response), (token[:60], response.text)
    assert Product.select().count() == 1


def _signed(body: str | bytes, **sign_args) -> dict:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return {"Stripe-Signature": sign(text, **sign_args), "Content-Type": "application/json"}


def _webhook_attacks() -> list[tuple[bytes, dict]]:
    event = {
        "id": "evt_hostile",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {"object": {"id": "pi_1", "metadata": {}}},
    }
    body = json.dumps(event)
    attacks = [
        (body.encode(), {}),
        (body.encode(), {"Stripe-Signature": "a" * 100_000}),
        (body.encode(), {"Stripe-Signature": "t=1,v1="}),
        (body.encode(), _signed(body, timestamp=int(time.time()) - 301)),
        (b"\xff\xfe", _signed("\ufffd\ufffd")),
    ]
    for bad in (
        "not json",
        "[]",
        "null",
        json.dumps(HUGE),
        json.dumps({**event, "id": 5}),
        json.dumps({**event, "id": "cus_1"}),
        json.dumps({**event, "data": []}),
        json.dumps({**event, "object": "charge"}),
        json.dumps(_without(event, "type")),
    ):
        attacks.append((bad.encode(), _signed(bad)))
    return attacks


@pytest.mark.parametrize("path", ["/api/v1/payment/webhook", "/webhook"])
def test_hostile_webhooks_are_400_and_store_nothing(server, shop, path):
    before, misses = _contents(), []
    for body, headers in _webhook_attacks():
        response = server.http.post(path, content=body, headers=headers)
        if not _refused(response):
            misses.append(f"{body[:60]!r} {headers!r:.60}: {response.status_code} {response.text}")
    assert misses == []
    assert _contents() == before


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_login_from_a_cross_site_form_is_refused(server, settings, content_type):
    """A form can post `{"email":"…","password":"P=ss…"}` as text/plain: a "simple" request
    that browsers send cross-site without asking (login CSRF, cf. FastAPI CVE-2021-32677)."""
    from shopctl.models import User
    from shopctl.services.accounts.auth import hash_password

    User.create(email="attacker@example.com", password_hash=hash_password(settings, "Pa=ss1!word"))
    body = b'{"email": "attacker@example.com", "password": "Pa=ss1!word"}'
    response = server.http.post(
        "/api/v1/auth/login",
        content=body,
        headers={"Content-Type": content_type, "Origin": "https://evil.example"},
    )
    assert response.status_code == 415 and _refused(response), response.status_code
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("path", ["/api/v1/user", "/api/v1/product", "/api/v1/order/pay-later"])
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_gets_415(server, shop, path, content_type):
    """README: request bodies are read only as JSON (application/json), else 415."""
    headers = {**shop["admin"], **({"Content-Type": content_type} if content_type else {})}
    before = _contents()
    response = server.http.post(path, content=b'{"name": "x"}', headers=headers)
    assert response.status_code == 415 and _refused(response), response.text
    assert _contents() == before


# Text no database can store: PostgreSQL refuses NUL in text, and a lone surrogate (valid
# JSON: "\ud800") cannot be encoded as UTF-8 by either driver. Regression: both were a 500
# (or, on SQLite, a stored NUL) until they were refused at the door.
UNSTORABLE = {
    "register-email-nul": ("/api/v1/user", _with(REGISTRATION, email=f"{NUL}@example.com")),
    "register-email-surrogate": (
        "/api/v1/user",
        _with(REGISTRATION, email=f"{SURROGATE}@example.com"),
    ),
    "register-name-nul": ("/api/v1/user", _with(REGISTRATION, name=NUL)),
    "register-name-surrogate": ("/api/v1/user", _with(REGISTRATION, name=SURROGATE)),
    "login-email-nul": ("/api/v1/auth/login", _with(LOGIN, email=NUL)),
    "login-email-surrogate": ("/api/v1/auth/login", _with(LOGIN, email=SURROGATE)),
    "product-name-surrogate": ("/api/v1/product", _with(PRODUCT, name=SURROGATE)),
}


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_text_no_database_can_store_is_refused(server, shop, case):
    path, payload = UNSTORABLE[case]
    _assert_refused(server, shop, "POST", path, "admin", [payload])


@pytest.mark.parametrize(
    "field, value", [("id", f"evt_{NUL}"), ("id", f"evt_{SURROGATE}"), ("type", f"charge.{NUL}")]
)
def test_signed_events_with_unstorable_text_are_refused_and_not_stored(server, shop, field, value):
    event = {
        "id": "evt_ok",
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "data": {"object": {"id": "ch_1"}},
        field: value,
    }
    body = json.dumps(event)
    before = _contents()
    response = server.http.post(
        "/api/v1/payment/webhook", content=body.encode(), headers=_signed(body)
    )
    assert _refused(response), response.text
    assert _contents() == before


# --- the CLI ---------------------------------------------------------------------------


# One command per line; {placeholders} are filled in after splitting, so they may hold
# quotes, spaces and megabytes.
CLI_CASES = """
orders show not-a-uuid
orders show {unknown}
orders show {sqli}
orders list --limit abc
orders list --limit {big}
orders list --status {sqli}
orders list --since yesterday-ish
orders list --user {huge}
orders list --no-such-flag
orders frobnicate
orders cancel {sqli} --yes
orders cancel {unknown} --yes
orders refund {unknown} --yes
orders refund {order} --yes
orders refund {order} --amount -5 --yes
orders refund {order} --amount abc --yes
orders expire --batch 0
orders expire --batch -5
events show evt_missing
events replay evt_unknown
events replay --file {missing}
events replay --file {garbage}
events replay --file {directory}
events replay --file {not_event}
events list --status LOST
events list --limit 0
events sync --since forever
products seed --file {missing}
products seed --file {bad_csv}
products seed --file {directory}
products seed --count -1
products seed --count {big}
products list --limit 1000
products list --sort {sqli}
products set-stock not-a-uuid 5 --yes
products set-stock {product} -5 --yes
products set-stock {product} {big} --yes
users promote nobody@example.com
users promote {sqli}
users deactivate {sqli}
users create "not an email" --password-stdin
payments reconcile --days 0
serve --port 70000
serve --workers 0
migrate --bogus
no-such-command
"""


def _cli_cases(tmp_path, shop) -> list[list[str]]:
    files = {name: tmp_path / name for name in ("garbage", "not_event", "bad_csv", "missing")}
    files["garbage"].write_bytes(b"\x00\xff{not json" + HUGE.encode())
    files["not_event"].write_text("[1, 2, 3]")
    files["bad_csv"].write_text(f"name,price,quantity\n{NUL},abc,-1\nMug,1.00,{BIG}\n")
    values = {
        **{name: str(path) for name, path in files.items()},
        "directory": str(tmp_path),
        "unknown": str(uuid.uuid4()),
        "order": shop["order"],
        "product": shop["product"],
        "sqli": SQLI,
        "big": str(BIG),
        "huge": HUGE,
    }
    return [
        [word.format(**values) for word in shlex.split(line)]
        for line in CLI_CASES.strip().splitlines()
    ]


def test_hostile_cli_arguments_exit_1_or_2_without_a_traceback(cli, shop, tmp_path):
    before, misses = _contents(), []
    for args in _cli_cases(tmp_path, shop):
        try:
            result = cli(*args, input="Str0ng!Pass\nStr0ng!Pass\n")
        except Exception as exc:  # escaped handle_errors: the operator would see a traceback
            misses.append(f"{' '.join(a[:40] for a in args)}: raised {exc!r:.200}")
            continue
        output = result.output
        if result.exit_code not in (1, 2) or "Traceback" in output or not output.strip():
            misses.append(
                f"{' '.join(a[:40] for a in args)}: exit {result.exit_code} {output[-300:]!r}"
            )
    assert misses == []
    assert _contents() == before
    assert Order.get_by_id(shop["order"]).status == "UNPAID"
