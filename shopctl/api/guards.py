"""Who may call a route: `@authenticated()` for any user, `@authenticated("ADMIN")` for admins.

The token comes from `Authorization: Bearer …` or the `accessToken` / `access_token`
cookie, like the Express API's checkAuth. 401 for a missing or bad token, 403 for a role that
may not. The user is put on `request.ctx.user`, its session family on
`request.ctx.session_id`. `@authenticated(defer=True)` leaves checking the token to the
handler's own executor hop (`call_as_user`): one thread-pool round trip instead of two.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from sanic import Request

from shopctl.api.common import call
from shopctl.config import Settings
from shopctl.errors import Forbidden, Unauthorized
from shopctl.services.accounts.tokens import authenticate

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def frontend_origins(settings: Settings) -> tuple[str, ...]:
    """FRONTEND_URL's origins as browsers send them (no trailing slash)."""
    return tuple(url.rstrip("/") for url in settings.frontend_urls)


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _cookie(request: Request) -> str | None:
    return request.cookies.get("accessToken") or request.cookies.get("access_token")


def access_token(request: Request) -> str | None:
    return _bearer(request) or _cookie(request)


def refuse_cross_site(request: Request) -> None:
    """Cookies ride along on cross-site requests (SameSite=None in production), so a
    state-changing request authenticated by cookie must come from the frontend or from
    us. Browsers always send Origin on such requests; other clients send no cookie."""
    origin = request.headers.get("origin")
    own = f"{request.scheme}://{request.host}"
    if origin and origin != own and origin not in frontend_origins(request.app.ctx.settings):
        raise Forbidden("Cross-site request refused")


def authenticated(*roles: str, defer: bool = False):
    """With `defer`, the token is only read here (401 when there is none): the handler
    checks it in the same executor hop as its own work, through `call_as_user`, instead
    of paying a second thread-pool round trip (and connection checkout) for it."""

    def decorator(handler):
        @wraps(handler)
        async def guarded(request: Request, *args, **kwargs):
            token = _bearer(request)
            if token is None and (token := _cookie(request)) and request.method in UNSAFE_METHODS:
                refuse_cross_site(request)
            if not token:
                raise Unauthorized("You are not authorized")
            request.ctx.credentials = (token, roles)
            if not defer:
                await call_as_user(request, None)
            return await handler(request, *args, **kwargs)

        return guarded

    return decorator


async def call_as_user(request: Request, fn: Callable | None, *args, **kwargs) -> Any:
    """`fn(user, *args, **kwargs)` in the thread pool for the request's user, checking a
    deferred token in the same hop (401 or 403 before `fn` runs, as from the guard).

    With `fn` None it only authenticates: a deferring handler does that before refusing
    its input, so a caller without a valid token hears 401 rather than a validation error.
    """
    if hasattr(request.ctx, "user"):
        user = request.ctx.user
        return None if fn is None else await call(request, fn, user, *args, **kwargs)
    token, roles = request.ctx.credentials
    settings = request.app.ctx.settings
    user, session_id, result = await call(
        request, _as_user, settings, token, roles, fn, args, kwargs
    )
    request.ctx.user, request.ctx.session_id = user, session_id
    return result


def _as_user(settings: Settings, token: str, roles: tuple[str, ...], fn, args, kwargs):
    user, session_id = authenticate(settings, token)
    if roles and user.role not in roles:
        raise Forbidden("You are not permitted to do this")
    return user, session_id, None if fn is None else fn(user, *args, **kwargs)
