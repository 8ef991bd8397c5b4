"""Stripe's wire format: bracketed form parameters in, Stripe-shaped errors out."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")
# Request options of stripe-python never reach the wire; everything else does.
COMMON = frozenset({"expand"})


class StripeError(Exception):
    """An error answered as Stripe's `{"error": {...}}` with its HTTP status."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.code, self.param = status, type, code, param
        self.message, self.extra = message, extra

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": self.type,
            "code": self.code,
            "message": self.message,
            "param": self.param,
            "doc_url": None,
        }
        if self.code:
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if request_id:
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        error.update(self.extra)
        return {"error": error}


def missing(param: str) -> StripeError:
    return StripeError(f"Missing required param: {param}.", code="parameter_missing", param=param)


def invalid(param: str, message: str, code: str | None = "parameter_invalid") -> StripeError:
    return StripeError(message, code=code, param=param)


def not_found(kind: str, oid: str, param: str = "id") -> StripeError:
    return StripeError(f"No such {kind}: '{oid}'", status=404, code="resource_missing", param=param)


def parse_form(raw: str) -> dict[str, Any]:
    """Decode `a[b][0][c]=v` pairs (brackets literal or %5B%5D) into nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY.match(key)
        if not match:
            raise invalid(key, f"Invalid parameter name: {key}")
        path = [match.group(1), *_SEGMENT.findall(match.group(2))]
        _assign(root, path, value, key)
    return _listify(root)


def _assign(node: dict[str, Any], path: list[str], value: str, key: str) -> None:
    for i, part in enumerate(path[:-1]):
        if part == "":
            part = str(len(node))
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise invalid(_name(path[: i + 1]), f"Invalid hash: {key} mixes a value and a hash")
        node = child
    last = path[-1] if path[-1] != "" else str(len(node))
    if isinstance(node.get(last), dict):
        raise invalid(key, f"Invalid hash: {key} mixes a value and a hash")
    node[last] = value


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {k: _listify(v) for k, v in node.items()}
    if items and all(k.isdigit() for k in items):
        return [items[k] for k in sorted(items, key=int)]
    return items


def _name(path: list[str]) -> str:
    return path[0] + "".join(f"[{p}]" for p in path[1:])


def check_known(params: dict[str, Any], allowed: frozenset[str]) -> None:
    for key in params:
        if key not in allowed and key not in COMMON:
            raise StripeError(
                f"Received unknown parameter: {key}", code="parameter_unknown", param=key
            )


def get_str(
    params: dict[str, Any],
    key: str,
    name: str | None = None,
    required: bool = False,
    choices: tuple[str, ...] = (),
) -> str | None:
    name = name or key
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise missing(name)
        return None
    if not isinstance(value, str):
        raise invalid(name, f"Invalid string: {name} must be a string")
    if choices and value not in choices:
        raise invalid(name, f"Invalid {name}: must be one of {', '.join(choices)}")
    return value


def get_int(
    params: dict[str, Any],
    key: str,
    name: str | None = None,
    required: bool = False,
    minimum: int | None = None,
) -> int | None:
    name = name or key
    text = get_str(params, key, name, required)
    if text is None:
        return None
    if not re.fullmatch(r"-?[0-9]{1,18}", text):  # ASCII digits: int() also reads "١٢"
        raise invalid(name, f"Invalid integer: {text}", "parameter_invalid_integer")
    value = int(text)
    if minimum is not None and value < minimum:
        raise invalid(
            name, f"Invalid {name}: must be at least {minimum}", "parameter_invalid_integer"
        )
    return value


def get_bool(params: dict[str, Any], key: str) -> bool | None:
    text = get_str(params, key)
    if text is None:
        return None
    if text not in ("true", "false"):
        raise invalid(key, f"Invalid boolean: {text}")
    return text == "true"


def get_map(params: dict[str, Any], key: str, name: str | None = None) -> dict[str, Any]:
    name = name or key
    value = params.get(key)
    if value is None or value == "":
        return {}
    if isinstance(value, list):  # `m[0]=a` was read as an array; as a hash its keys are "0"…
        value = {str(i): v for i, v in enumerate(value)}
    if not isinstance(value, dict):
        raise invalid(name, f"Invalid object: {name} must be a hash")
    return value


def get_list(params: dict[str, Any], key: str) -> list[Any]:
    value = params.get(key)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise invalid(key, f"Invalid array: {key} must be an array")
    return value


def get_metadata(
    params: dict[str, Any], key: str = "metadata", name: str | None = None
) -> dict[str, str]:
    """Stripe's metadata rules: ≤50 string keys of ≤40 chars, values ≤500 chars."""
    name = name or key
    metadata = get_map(params, key, name)
    if len(metadata) > 50:
        raise invalid(name, "Invalid metadata: at most 50 keys are allowed")
    for k, v in metadata.items():
        if not isinstance(v, str) or len(k) > 40 or len(v) > 500:
            raise invalid(
                f"{name}[{k}]",
                "Invalid metadata: keys are at most 40 characters "
                "and values strings of at most 500 characters",
            )
    return {k: v for k, v in metadata.items() if v != ""}
