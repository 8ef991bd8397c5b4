"""Who may call a route: `@authenticated()` for any user, `@authenticated("ADMIN")` for admins.

The token comes from `Authorization: Bearer …` or the `accessToken` / `access_token`
cookie, like the seed's checkAuth. The user is put on `request.ctx.user`.
"""

from __future__ import annotations

from functools import wraps

from sanic import Request

from shopctl.api.common import call
from shopctl.errors import Forbidden, Unauthorized
from shopctl.services.tokens import user_for_access_token


def access_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get("accessToken") or request.cookies.get("access_token")


def authenticated(*roles: str):
    def decorator(handler):
        @wraps(handler)
        async def guarded(request: Request, *args, **kwargs):
            token = access_token(request)
            if not token:
                raise Unauthorized("You are not authorized")
            user = await call(request, user_for_access_token, request.app.ctx.settings, token)
            if roles and user.role not in roles:
                raise Forbidden("You are not permitted to do this")
            request.ctx.user = user
            return await handler(request, *args, **kwargs)

        return guarded

    return decorator
