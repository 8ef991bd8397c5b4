"""A request of the Postman collection (postman.py) and the snippets its scripts share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    operation: str  # an operationId of the OpenAPI document
    name: str
    body: Any = None
    path: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    admin: bool = False
    fails_with: int | None = None  # an expected error status, else the documented success
    tests: tuple[str, ...] = ()
    prerequest: tuple[str, ...] = ()


def store(variable: str, expression: str) -> str:
    return f'pm.collectionVariables.set("{variable}", {expression});'


def expect(label: str, actual: str, expected: str) -> str:
    return f'pm.test("{label}", () => pm.expect({actual}).to.eql({expected}));'
