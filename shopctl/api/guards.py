"""Who may call a route: `@authenticated()` for any user, `@authenticated("ADMIN")` for admins.

The token comes from `Authorization: Bearer …` or the `accessToken` / `access_token`
cookie, like the seed's checkAuth. 401 for a missing or bad token, 403 for a role that
may not. The user is put on `request.ctx.user`, its session family on
`request.ctx.session_id`.
"""

from __future__ import annotations

from functools import wraps

from sanic import Request

from shopctl.api.common import call
from shopctl.config import Settings
from shopctl.errors import Forbidden, Unauthorized
from shopctl.services.tokens import authenticate

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


def authenticated(*roles: str):
    def decorator(handler):
        @wraps(handler)
        async def guarded(request: Request, *args, **kwargs):
            token = _bearer(request)
            if token is None and (token := _cookie(request)) and request.method in UNSAFE_METHODS:
                refuse_cross_site(request)
            if not token:
                raise Unauthorized("You are not authorized")
            user, session_id = await call(request, authenticate, request.app.ctx.settings, token)
            if roles and user.role not in roles:
                raise Forbidden("You are not permitted to do this")
            request.ctx.user = user
            request.ctx.session_id = session_id
            return await handler(request, *args, **kwargs)

        return guarded

    return decorator
