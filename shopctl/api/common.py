"""What every handler needs: run a service off the event loop, read and validate input."""

from __future__ import annotations

import asyncio
import contextvars
import json
from functools import partial
from typing import Any

from peewee import InterfaceError, OperationalError
from sanic import Request

from shopctl.db import connection, discard_connection
from shopctl.errors import InvalidInput, UnsupportedMediaType
from shopctl.schemas import Schema, unstorable_text, validate


def _in_thread(fn, args, kwargs):
    with connection():
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            discard_connection()
            raise


async def call(request: Request, fn, *args, **kwargs) -> Any:
    """Run a synchronous service in the app's thread pool.

    Services own their transactions, so no transaction ever spans an await.
    """
    loop = asyncio.get_running_loop()
    # The request's context (its request id, its trace span) goes along into the thread.
    run = partial(contextvars.copy_context().run, _in_thread, fn, args, kwargs)
    return await loop.run_in_executor(request.app.ctx.executor, run)


def site(request: Request) -> str:
    """This API's address as the caller reached it: Sanic's SERVER_NAME when set, else the
    proxy's forwarded host and scheme (when trusted, see SANIC_PROXIES_COUNT), else Host."""
    return f"{request.scheme}://{request.host}"


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


# No request body of ours nests deeper than a few levels; the limit keeps recursion in
# json (a RecursionError, once a 500) and in the checks after it far from Python's bound.
MAX_JSON_DEPTH = 32


def _too_deep(payload: Any) -> bool:
    """Whether `payload` nests deeper than MAX_JSON_DEPTH (iteratively: no recursion)."""
    pending = [(payload, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                return True
            children = value.values() if isinstance(value, dict) else value
            pending.extend((child, depth + 1) for child in children)
    return False


def _parse(text: bytes | str, path: str) -> Any:
    try:
        payload = json.loads(text)
    except RecursionError:
        payload = None
        deep = True
    except (ValueError, UnicodeDecodeError):
        message = "Malformed JSON body" if path == "body" else "Malformed JSON in data"
        raise InvalidInput([{"path": path, "message": message}]) from None
    else:
        deep = _too_deep(payload)
    if deep:
        message = f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
        raise InvalidInput([{"path": path, "message": message}])
    return payload


def json_body(request: Request) -> Any:
    """The request's JSON body; like the Express API, `{"data": "<json>"}` is unwrapped.

    Only JSON media types are read: a cross-site HTML form can send text/plain or
    urlencoded bodies without a CORS preflight (login CSRF, cf. FastAPI CVE-2021-32677).
    """
    if not request.body:
        return {}
    if not _is_json(request):
        raise UnsupportedMediaType("Send the body as JSON with Content-Type: application/json")
    payload = _parse(request.body, "body")
    if isinstance(payload, dict) and set(payload) == {"data"} and isinstance(payload["data"], str):
        payload = _parse(payload["data"], "data")
    if errors := unstorable_text(payload):
        raise InvalidInput(errors)
    return payload


def body(request: Request, schema: type[Schema]) -> Schema:
    return validate(schema, json_body(request))


def query(request: Request, schema: type[Schema]) -> Schema:
    """Query string parsed by `schema`; repeated keys keep the last value. Blank values
    are no values (as in `request.args`), except an empty cursor: a cursor walk's start."""
    args = {key: values[-1] for key, values in request.args.items()}
    cursor_missing = "cursor" in schema.model_fields and "cursor" not in args
    if cursor_missing and "cursor" in request.get_args(keep_blank_values=True):
        args["cursor"] = ""
    if errors := unstorable_text(args):
        raise InvalidInput(errors)
    return validate(schema, args)
