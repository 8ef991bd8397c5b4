"""Small helpers every service shares: timestamps on the wire, paging, check reports."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache


def iso(moment: datetime | None) -> str | None:
    """A naive-UTC timestamp as the seed sent it: ISO 8601 with milliseconds and Z."""
    return None if moment is None else _iso(moment)


@lru_cache(maxsize=4096)
def _iso(moment: datetime) -> str:
    # A page of products formats two timestamps per product, and the same pages are
    # asked for again and again: formatting was an eighth of a listing's CPU.
    return moment.isoformat(timespec="milliseconds") + "Z"


@dataclass(frozen=True)
class Page:
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit

    def meta(self, total: int) -> dict:
        return {
            "page": self.page,
            "limit": self.limit,
            "total": total,
            "totalPage": math.ceil(total / self.limit) if total else 0,
        }


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str | None = None


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str, hint: str | None = None) -> None:
        self.checks.append(Check(name, ok, detail, hint))
