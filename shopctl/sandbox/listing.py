"""List endpoints: Stripe's cursor pagination, `created` ranges and `expand`."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable, Iterable
from typing import Any

from . import shapes
from .params import StripeError, check_known, get_int, get_list, get_map, invalid, not_found
from .store import Store

PAGING = frozenset({"limit", "starting_after", "ending_before", "created"})
_RANGE = {"gt": int.__gt__, "gte": int.__ge__, "lt": int.__lt__, "lte": int.__le__}


def page(
    items: list[dict[str, Any]], params: dict[str, Any], url: str, kind: str
) -> dict[str, Any]:
    """`items` in list order (newest first); answers one page of Stripe's list envelope."""
    limit = get_int(params, "limit", minimum=1)
    limit = 10 if limit is None else limit
    if limit > 100:
        raise invalid("limit", "Invalid limit: must be between 1 and 100", None)
    matches = _created_filter(params)
    items = [o for o in items if matches(o.get("created", 0))]
    ids = [o["id"] for o in items]
    if params.get("starting_after"):
        start = _position(ids, params["starting_after"], kind, "starting_after") + 1
        chunk = items[start : start + limit]
        has_more = start + limit < len(items)
    elif params.get("ending_before"):
        end = _position(ids, params["ending_before"], kind, "ending_before")
        chunk = items[max(0, end - limit) : end]
        has_more = end - limit > 0
    else:
        chunk, has_more = items[:limit], len(items) > limit
    return shapes.list_object(url, chunk, has_more)


def _position(ids: list[str], oid: Any, kind: str, param: str) -> int:
    if not isinstance(oid, str) or oid not in ids:
        raise not_found(kind, str(oid), param)
    return ids.index(oid)


def _created_filter(params: dict[str, Any]) -> Callable[[int], bool]:
    """`created=T` or `created[gt|gte|lt|lte]=T`, checked before any object is looked at."""
    if params.get("created") in (None, ""):
        return lambda created: True
    if isinstance(params["created"], str):
        exact = get_int(params, "created")
        return lambda created: created == exact
    bounds = get_map(params, "created")
    checks = []
    for op in bounds:
        if op not in _RANGE:
            raise StripeError(
                f"Received unknown parameter: created[{op}]",
                code="parameter_unknown",
                param=f"created[{op}]",
            )
        checks.append((_RANGE[op], get_int(bounds, op, f"created[{op}]", required=True)))
    return lambda created: all(check(created, limit) for check, limit in checks)


def filtered(
    items: Iterable[dict[str, Any]], predicate: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    return [o for o in items if predicate(o)]


def event_filter(params: dict[str, Any], delivered: set[str]) -> Callable[[dict], bool]:
    """`type` (with `*` wildcards) or `types[]` (up to 20), and `delivery_success`."""
    check_known(params, PAGING | {"type", "types", "delivery_success"})
    types = [t for t in get_list(params, "types") if t]
    if params.get("type") and types:
        raise invalid("types", "You may only specify one of these parameters: type, types.", None)
    if len(types) > 20 or not all(isinstance(t, str) for t in types):
        raise invalid("types", "types must be a list of at most 20 event types", None)
    pattern = params.get("type") or None
    if pattern is not None and not isinstance(pattern, str):
        raise invalid("type", "type must be a string", None)
    success = params.get("delivery_success")
    if success not in (None, "", "true", "false"):
        raise invalid("delivery_success", f"Invalid boolean: {success}", None)

    def keep(event: dict[str, Any]) -> bool:
        if types and event["type"] not in types:
            return False
        if pattern and not fnmatch.fnmatchcase(event["type"], pattern):
            return False
        return success in (None, "") or (event["id"] in delivered) == (success == "true")

    return keep


def expand(store: Store, obj: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Replace ids by the objects they name for each `expand[]` path (e.g. payment_intent)."""
    paths = [p for p in get_list(params, "expand") if p]
    if not paths:
        return obj
    obj = copy.deepcopy(obj)
    for path in paths:
        if not isinstance(path, str):
            raise invalid("expand", "expand must be a list of strings", None)
        targets = obj["data"] if obj["object"] == "list" and path.startswith("data.") else [obj]
        field = path.removeprefix("data.") if obj["object"] == "list" else path
        for target in targets:
            _expand_field(store, target, field)
    return obj


def _expand_field(store: Store, obj: dict[str, Any], path: str) -> None:
    head, _, rest = path.partition(".")
    if head == "line_items" and obj.get("object") == "checkout.session":
        obj["line_items"] = shapes.list_object(
            f"/v1/checkout/sessions/{obj['id']}/line_items", store.line_items.get(obj["id"], [])
        )
        return
    value = obj.get(head)
    if isinstance(value, str) and value in store.objects:
        obj[head] = value = copy.deepcopy(store.objects[value])
    elif head not in obj or not (value is None or isinstance(value, dict)):
        raise invalid("expand", f"This property cannot be expanded ({head}).", None)
    if rest and isinstance(value, dict):
        _expand_field(store, value, rest)
