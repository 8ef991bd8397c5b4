"""`--since` of the CLI's listings, parsed for the schemas (shopctl.schemas.OrderSearch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def parse_since(value: Any) -> Any:
    """`since` as a duration back from now (24h, 7d, 90m) or an ISO date / date-time (UTC)."""
    if not isinstance(value, str):
        return value
    from shopctl.config import parse_duration
    from shopctl.models import utcnow

    text = value.strip()
    try:
        return utcnow() - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("use a duration (24h, 7d) or an ISO date (2026-01-31)") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment
