"""`POST /user` (register) and `GET /user/me`."""

from __future__ import annotations

from sanic import Blueprint, Request

from shopctl.api.auth import client_address
from shopctl.api.common import body, call
from shopctl.api.guards import authenticated
from shopctl.api.responses import ok
from shopctl.schemas import Registration
from shopctl.services.accounts import auth

api = Blueprint("users", url_prefix="/user")


@api.post("/")
async def register(request: Request):
    data = body(request, Registration)
    settings, address = request.app.ctx.settings, client_address(request)
    user = await call(request, auth.register, settings, data, address=address)
    return ok(user, "User created successfully.", status=201)


@api.get("/me")
@authenticated()
async def me(request: Request):
    return ok(auth.user_dict(request.ctx.user), "User fetched successfully")
