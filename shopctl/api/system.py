"""`GET /` (the v1 API's welcome) and `GET /api/v1/health`."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sanic import Blueprint, Request
from sanic.response import json as json_response

from shopctl.api.common import call
from shopctl.api.responses import failure, ok
from shopctl.services.system.checks import database_ok

api = Blueprint("system")


async def root(request: Request):
    """The v1 API's welcome; its fields also sit at the top level, as existing clients read them."""
    settings = request.app.ctx.settings
    uptime = time.monotonic() - request.app.ctx.started_at
    data = {
        "message": "Welcome to the shopctl API",
        "environment": settings.env,
        "uptime": f"{uptime:.2f} sec",
        "timeStamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    return json_response({"statusCode": 200, "success": True, **data, "data": data})


@api.get("/health")
async def health(request: Request):
    if await call(request, database_ok):
        return ok({"status": "ok", "database": "ok"}, "Healthy")
    return failure(503, "Database unavailable", {"status": "degraded", "database": "unreachable"})
