"""Hostile bytes over raw sockets (issue 16): nothing normalises them on the way, as an
HTTP client library would. Every endpoint of the OpenAPI document (plus the ones it does
not list) gets the whole corpus; the server must answer each request below 500, every
error as the JSON envelope, and write no traceback to its log.

Regressions pinned: deeply nested JSON and non-UTF-8 bytes in a token were 500s with a
traceback, also on endpoints that need no login.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import uuid

import pytest

from tests.orders_support import make_product, make_user
from tests.test_webhooks import sign

NESTED_ARRAYS = b"[" * 100_000 + b"]" * 100_000
NESTED_OBJECTS = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
NESTED_IN_DATA = json.dumps({"data": "[" * 50_000 + "]" * 50_000}).encode()
NESTED_SHALLOW_ENOUGH = b'{"items": ' + b"[" * 900 + b"]" * 900 + b"}"
ENORMOUS = b'{"items": [' + b",".join([b'{"productId": "x", "quantity": 1}'] * 25_000) + b"]}"
HUGE_NUMBER = b'{"quantity": 1' + b"0" * 5000 + b"}"
BIG_FLOAT = b'{"price": 1e999999, "priceCents": 1e400, "quantity": -1e308}'
NON_UTF8 = b'{"email": "\xff\xfe@example.com", "password": "P\xc3\x28ss"}'
OVERLONG = b'{"email": "\xc0\xafa@example.com"}'
UTF16 = '{"email": "a@example.com", "password": "Passw0rd!"}'.encode("utf-16")
UTF8_BOM = b'\xef\xbb\xbf{"email": "a@example.com"}'
BEYOND_COLUMNS = json.dumps(
    {
        "items": [{"productId": str(uuid.uuid4()), "quantity": 2**63}],
        "price": "9" * 400,
        "priceCents": 2**64,
        "quantity": 2**31,
        "page": 10**30,
        "limit": -(2**63) - 1,
    }
).encode()

BODIES: list[tuple[bytes, bytes]] = [
    (NESTED_ARRAYS, b"application/json"),
    (NESTED_OBJECTS, b"application/json"),
    (NESTED_IN_DATA, b"application/json"),
    (NESTED_SHALLOW_ENOUGH, b"application/json"),
    (ENORMOUS, b"application/json"),
    (HUGE_NUMBER, b"application/json"),
    (BIG_FLOAT, b"application/json"),
    (BEYOND_COLUMNS, b"application/json"),
    (NON_UTF8, b"application/json"),
    (OVERLONG, b"application/json; charset=utf-8"),
    (UTF16, b"application/json; charset=utf-16"),
    (UTF8_BOM, b"application/json"),
    (b'{"email": "a@example.com"}', b"application/json; charset=\xff\xfe"),
    (b'{"email": "a@example.com"}', b"\xff\xfe/json"),
    (b"\x00" * 64, b"application/json"),
    (b'{"a": "\\udc80\\ud800"}', b"application/json"),
    (b"x" * (1024 * 1024 + 10), b"application/json"),  # over the body limit: 413
]

BAD_BYTES = b"\xff\xfe\x80\xc3\x28\xed\xa0\x80"


def header_attacks(token: str) -> list[list[tuple[bytes, bytes]]]:
    """Sets of headers, each a list of (name, value) as raw bytes."""
    good = token.encode()
    return [
        [(b"Authorization", b"Bearer " + BAD_BYTES)],
        [(b"Authorization", b"Bearer " + good[:20] + BAD_BYTES + good[20:])],
        [(b"Authorization", b"Bearer " + good + BAD_BYTES)],
        [(b"Authorization", BAD_BYTES + b" " + good)],
        [(b"Authorization", b"Bearer " + b"a." * 4000)],
        [(b"Authorization", b"Bearer eyJ" + BAD_BYTES + b".eyJ.sig")],
        [(b"Cookie", b"accessToken=" + BAD_BYTES)],
        [(b"Cookie", b"access_token=" + good + BAD_BYTES)],
        [(b"Cookie", b"refreshToken=" + BAD_BYTES + b"; accessToken=" + BAD_BYTES)],
        [(b"Cookie", b"=; ;;=\xff; accessToken")],
        [(b"Cookie", b'accessToken="' + BAD_BYTES + b'"')],
        [(b"Origin", BAD_BYTES), (b"Cookie", b"accessToken=" + good)],
        [(b"Idempotency-Key", BAD_BYTES), (b"Authorization", b"Bearer " + good)],
        [(b"X-Request-ID", BAD_BYTES)],
        [(b"X-Forwarded-For", BAD_BYTES + b", 1.2.3.4")],
        [(b"Forwarded", b"for=" + BAD_BYTES)],
        [(b"Stripe-Signature", b"t=" + BAD_BYTES + b",v1=" + BAD_BYTES)],
        [(b"Accept", BAD_BYTES), (b"Accept-Encoding", BAD_BYTES)],
        [(b"Accept-Language", BAD_BYTES), (b"User-Agent", BAD_BYTES)],
        [(b"Content-Type", BAD_BYTES)],
        [(b"Host", b"127.0.0.1" + BAD_BYTES)],
        [(b"Access-Control-Request-Method", BAD_BYTES), (b"Origin", b"http://localhost:3000")],
        [(b"Range", b"bytes=" + BAD_BYTES)],
        [(b"If-None-Match", BAD_BYTES)],
    ]


QUERIES = [
    b"page=%ff%fe&limit=%c0%af",
    b"page=99999999999999999999999999&limit=1e9",
    b"search=%00&sortBy=%ff",
    b"search=" + b"%e2%80%ae" * 200,
    b"status=%zz&page=%",
    b"\xff\xfe=\x80",
    b"limit=" + b"9" * 5000,
    b"cursor=" + BAD_BYTES,
    b"sync=%ff",
    b"a=1&" * 500,
]


def _known_paths(server, ids: dict[str, str]) -> list[tuple[str, str]]:
    """(method, path) for every operation of the OpenAPI document, ids filled in."""
    document = server.http.get("/api/v1/openapi.json").json()
    prefix = document.get("servers", [{}])[0].get("url", "")
    operations = []
    for template, item in document["paths"].items():
        path = (prefix.rstrip("/") if template.startswith("/") else "") + template
        if not path.startswith("/api") and not path.startswith("/"):
            path = "/" + path
        path = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), ids["default"]), path)
        for method in item:
            if method.upper() in {"GET", "POST", "PATCH", "PUT", "DELETE"}:
                operations.append((method.upper(), path))
    extra = [("GET", "/"), ("POST", "/webhook"), ("GET", "/api/v1/nowhere"), ("GET", "/docs")]
    return sorted(set(operations) | set(extra))


def _normalise(path: str) -> str:
    return path if path.startswith("/api/v1") or path in {"/", "/webhook"} else "/api/v1" + path


def raw_request(
    port: int,
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> tuple[int, bytes]:
    """Send these exact bytes; (status, response body). Status 0: no HTTP answer."""
    lines = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    names = {name.lower() for name, _ in headers}
    lines += [name + b": " + value for name, value in headers if name.lower() != b"host"]
    if b"host" in names:
        lines[1] = b"Host: " + dict((n.lower(), v) for n, v in headers)[b"host"]
    if body or method in (b"POST", b"PATCH", b"PUT"):
        lines.append(b"Content-Length: " + str(len(body)).encode())
    payload = b"\r\n".join(lines) + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        # The server may answer (413) and close before the body is all sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(payload)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    match = re.match(rb"HTTP/1\.[01] (\d{3})", response)
    _, _, content = response.partition(b"\r\n\r\n")
    return (int(match.group(1)) if match else 0), content


def _envelope_ok(status: int, content: bytes) -> bool:
    """Below 400 anything goes; an error must be the JSON envelope with its status."""
    if status < 400:
        return True
    try:
        body = json.loads(content)
    except ValueError:
        return False
    return body.get("success") is False and body.get("statusCode") == status


def _corpus(paths, token: str, admin_token: str):
    admin = [(b"Authorization", b"Bearer " + admin_token.encode())]
    for method, path in paths:
        target, verb = path.encode(), method.encode()
        if method in ("POST", "PATCH", "PUT"):
            for body, content_type in BODIES:
                yield verb, target, [*admin, (b"Content-Type", content_type)], body
                yield verb, target, [(b"Content-Type", content_type)], body
        for headers in header_attacks(token):
            body = b'{"items": []}' if method in ("POST", "PATCH") else b""
            if body:
                headers = [*headers, (b"Content-Type", b"application/json")]
            yield verb, target, headers, body
        for query in QUERIES:
            yield verb, target + b"?" + query, admin, b""
    for target in (
        b"/api/v1/product/%ff%fe",
        b"/api/v1/product/" + BAD_BYTES,
        b"/api/v1/order/%c0%ae%c0%ae/pay",
        b"/api/v1/order/" + b"9" * 5000,
        b"/api/v1/payment/%00/status",
        b"/api/v1/%2e%2e/%2e%2e/etc/passwd",
        b"/api/v1/product/" + "\u202e".encode() * 10,
        b"/docs/" + BAD_BYTES,
    ):
        yield b"GET", target, admin, b""
    signed = json.dumps({"id": "evt_x", "type": "x", "object": "event", "data": {}})
    webhook = [(b"Stripe-Signature", sign(signed).encode()), (b"Content-Type", b"application/json")]
    for body in (NESTED_ARRAYS, NON_UTF8, signed.encode() + BAD_BYTES, HUGE_NUMBER):
        yield b"POST", b"/api/v1/payment/webhook", webhook, body


@pytest.mark.slow
def test_the_raw_socket_corpus_gets_no_5xx_and_no_traceback(start_server, settings):
    from shopctl.services.accounts.tokens import issue_access_token

    buyer, admin = make_user(), make_user("admin@example.com", role="ADMIN")
    product = make_product("Mug")
    token = issue_access_token(settings, buyer)
    admin_token = issue_access_token(settings, admin)
    with start_server() as server:
        port = int(server.url.rsplit(":", 1)[1])
        ids = {"default": str(uuid.uuid4()), "id": product.id, "productId": product.id}
        paths = [(m, _normalise(p)) for m, p in _known_paths(server, ids)]
        assert len(paths) >= 20, paths
        misses, sent = [], 0
        for method, target, headers, body in _corpus(paths, token, admin_token):
            status, content = raw_request(port, method, target, headers, body)
            sent += 1
            if status == 0 or status >= 500 or not _envelope_ok(status, content):
                headers_shown = [(n, v[:40]) for n, v in headers]
                misses.append(
                    f"{method.decode()} {target[:80]!r} {headers_shown} {body[:40]!r}: "
                    f"{status} {content[:160]!r}"
                )
        log = server.output()
    assert sent > 1000
    assert misses == [], f"{len(misses)} of {sent}:\n" + "\n".join(misses[:60])
    for marker in ("Traceback", "unhandled error", "Exception"):
        assert marker not in log, log[-6000:]
