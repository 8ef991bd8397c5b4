"""Small helpers every service shares: timestamps on the wire, paging."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime


def iso(moment: datetime | None) -> str | None:
    """A naive-UTC timestamp as the seed sent it: ISO 8601 with milliseconds and Z."""
    if moment is None:
        return None
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
