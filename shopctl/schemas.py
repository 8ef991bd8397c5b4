"""Input validation shared by both front doors: API handlers and CLI commands.

Each schema is a pydantic model; `validate()` turns its errors into the seed's
validation list `[{path, message}]` inside an `InvalidInput`.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from shopctl.errors import InvalidInput

Schema = TypeVar("Schema", bound=BaseModel)


class Strict(BaseModel):
    """Base for request bodies: unknown fields are refused, strings are trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _path(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "body"


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        errors.append({"path": _path(error["loc"]), "message": message})
    return errors


def validate(schema: type[Schema], data: Any) -> Schema:
    """`data` parsed by `schema`, or InvalidInput listing every problem."""
    if not isinstance(data, dict):
        raise InvalidInput([{"path": "body", "message": "Expected a JSON object"}])
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(validation_errors(exc)) from None
