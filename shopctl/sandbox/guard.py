"""Who may use `/_sandbox/*`: this machine's own scripts and tests, nothing else.

One request middleware guards the whole prefix, so every control route, present and
future, answers only:

* loopback clients (127.0.0.0/8, ::1): 403 otherwise, even when the sandbox listens on
  every interface (`--host 0.0.0.0` shares its Stripe API, never its controls);
* requests whose Host header names this machine (localhost, a loopback address or the
  sandbox's own --host / public URL): 403 otherwise, so a page whose name was rebound
  to 127.0.0.1 (DNS rebinding) cannot drive it;
* JSON bodies: a POST without `Content-Type: application/json` is 415, whatever its
  body (empty included), so a cross-site HTML form or a no-cors fetch, which cannot send
  that type without a CORS preflight the sandbox never grants, changes nothing.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sanic.headers import parse_host

from .params import StripeError

if TYPE_CHECKING:
    from sanic import Request

    from .settings import SandboxSettings

PREFIX = "/_sandbox"
BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_control(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return False  # e.g. a Unix socket: not what the sandbox listens on
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _known_names(settings: SandboxSettings) -> set[str]:
    names = set(LOCAL_NAMES)
    if settings.host not in ("", "0.0.0.0", "::"):
        names.add(settings.host.lower())
    if settings.public_url:
        names.add((urlsplit(settings.public_url).hostname or "").lower())
    return names


def refusal(request: Request, settings: SandboxSettings) -> StripeError | None:
    """Why `request` may not reach a control endpoint, or None when it may."""
    if not is_control(request.path):
        return None
    if not _loopback(request.ip):
        return StripeError(
            "The sandbox's control endpoints (/_sandbox/…) answer loopback clients only.",
            status=403,
        )
    hostname, _ = parse_host(request.headers.get("host", ""))
    name = (hostname or "").strip("[]").lower()
    if name not in _known_names(settings) and not _loopback(name):
        return StripeError(
            f"The sandbox's control endpoints answer requests for this machine only, not for "
            f"Host {hostname!r}.",
            status=403,
        )
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method not in BODILESS and media_type != "application/json":
        return StripeError(
            "The sandbox's control endpoints read JSON bodies only: send "
            "Content-Type: application/json (an empty object {} when there is nothing to say).",
            status=415,
        )
    return None
