"""`/auth/login`, `/auth/refresh-token`, `/auth/logout`, `/auth/change-password`.

Tokens travel in the JSON body (for API clients) and in HttpOnly cookies (for
browsers): `Secure; SameSite=None` in production, where the frontend lives on another
site, `SameSite=Lax` elsewhere so plain-http development works.
"""

from __future__ import annotations

from sanic import Blueprint, HTTPResponse, Request

from shopctl.api.common import body, call
from shopctl.api.guards import authenticated, refuse_cross_site
from shopctl.api.responses import ok
from shopctl.config import Settings
from shopctl.schemas import Login, PasswordChange, RefreshTokenBody
from shopctl.services.accounts import auth

api = Blueprint("auth", url_prefix="/auth")

COOKIES = ("accessToken", "refreshToken")


def _cookie_options(settings: Settings) -> dict:
    production = settings.is_production
    return {
        "path": "/",
        "httponly": True,
        "secure": production,
        "samesite": "None" if production else "Lax",
    }


def set_session_cookies(response: HTTPResponse, settings: Settings, tokens: dict) -> None:
    options = _cookie_options(settings)
    lifetimes = {
        "accessToken": settings.jwt_access_expires,
        "refreshToken": settings.jwt_refresh_expires,
    }
    for name in COOKIES:
        response.add_cookie(name, tokens[name], max_age=int(lifetimes[name]), **options)


def clear_session_cookies(response: HTTPResponse, settings: Settings) -> None:
    # Same attributes as when set, or browsers keep SameSite=None cookies.
    for name in COOKIES:
        response.add_cookie(name, "", max_age=0, **_cookie_options(settings))


def client_address(request: Request) -> str | None:
    """The peer, or what a trusted proxy says (Sanic's PROXIES_COUNT / FORWARDED_SECRET)."""
    return request.remote_addr or request.ip or None


def presented_refresh_token(request: Request) -> str | None:
    """From the body (API clients) or else the cookie (browsers, checked for origin)."""
    token = body(request, RefreshTokenBody).refreshToken
    if token is None and (token := request.cookies.get("refreshToken")):
        refuse_cross_site(request)
    return token


@api.post("/login")
async def login(request: Request):
    settings = request.app.ctx.settings
    data = body(request, Login)
    result = await call(request, auth.login, settings, data, client_address(request))
    response = ok(result, "User Logged In Successfully")
    set_session_cookies(response, settings, result)
    return response


@api.post("/refresh-token")
async def refresh_token(request: Request):
    settings = request.app.ctx.settings
    result = await call(request, auth.refresh, settings, presented_refresh_token(request))
    response = ok(result, "New Access Token Retrived Successfully")
    set_session_cookies(response, settings, result)
    return response


@api.post("/logout")
async def logout(request: Request):
    settings = request.app.ctx.settings
    await call(request, auth.logout, settings, presented_refresh_token(request))
    response = ok(None, "User Logged Out Successfully")
    clear_session_cookies(response, settings)
    return response


@api.post("/change-password")
@authenticated()
async def change_password(request: Request):
    data = body(request, PasswordChange)
    user, session_id = request.ctx.user, request.ctx.session_id
    settings = request.app.ctx.settings
    address = client_address(request)
    await call(request, auth.change_password, settings, user.id, session_id, data, address)
    return ok(None, "Password Changed Successfully")
