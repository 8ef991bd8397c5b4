"""Rate limits kept in the database, so every worker and replica shares them.

Each limit is a fixed-window counter in `login_throttle`, one row per key: failed
logins per (account, client address), per client address and per account; registrations
per client address; orders per user. An attempt is counted *before* the work it guards
(a password check, a bcrypt hash, an order), in one short transaction, so parallel
requests cannot all slip in before the first is written. A limit with a lock-out locks
its key for that long once it is exceeded, then counts from zero.

Failed logins (OWASP Authentication Cheat Sheet, "Login Throttling" and "Account
Lockout": count per account so that many addresses gain nothing, and keep the lock-out
from becoming a way to lock the owner out):

* 5 per (account, address) per 15 minutes: the guesser at one place is stopped after a
  handful of tries, and only there — the owner elsewhere is not affected.
* 20 per address per 15 minutes: one place spraying many accounts (room for a shared NAT).
* 100 per account per 15 minutes, then the account is locked for 5 minutes for everyone:
  the ceiling for guesses spread over many addresses. It takes at least 20 addresses to
  reach it, and the lock is short, so it costs a botnet a lot to keep an owner out, while
  guessing stays at a few hundred tries an hour.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from peewee import Case, fn

from shopctl.config import Rate
from shopctl.db import write_transaction
from shopctl.errors import TooManyRequests
from shopctl.models import LoginThrottle, utcnow

LOGIN_WINDOW = timedelta(minutes=15)
PAIR_LIMIT = 5
ADDRESS_LIMIT = 20
ACCOUNT_LIMIT = 100
ACCOUNT_LOCKOUT = timedelta(minutes=5)
_MAX_PART = 120  # longer key parts (an address from a proxy header, say) are hashed


@dataclass(frozen=True)
class Limit:
    key: str
    allowed: int
    window: timedelta
    what: str  # the message's subject: "Too many {what}; try again in N seconds"
    lockout: timedelta | None = None


def key(kind: str, *parts: str) -> str:
    """`kind:part|part`, each part hashed when long, so every key fits its column."""

    def short(part: str) -> str:
        if len(part) <= _MAX_PART and part.isprintable():
            return part
        return "#" + hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()

    return f"{kind}:" + "|".join(short(part) for part in parts)


def login_limits(email: str, address: str | None) -> list[Limit]:
    """The account ceiling first (successes reset the pair, give the others back)."""
    limits = [
        Limit(
            key("email", email),
            ACCOUNT_LIMIT,
            LOGIN_WINDOW,
            "failed logins for this account",
            ACCOUNT_LOCKOUT,
        ),
    ]
    if address:
        limits.append(
            Limit(
                key("pair", email, address),
                PAIR_LIMIT,
                LOGIN_WINDOW,
                "failed logins for this account from your address",
            )
        )
        limits.append(
            Limit(
                key("ip", address), ADDRESS_LIMIT, LOGIN_WINDOW, "failed logins from your address"
            )
        )
    return limits


def rate_limit(kind: str, subject: str, rate: Rate, what: str) -> Limit:
    return Limit(key(kind, subject), rate.count, timedelta(seconds=rate.seconds), what)


def _count(limit: Limit, now: datetime) -> None:
    """One more for `limit.key`, atomically (an upsert; a spent window starts over)."""
    stale = LoginThrottle.window_started_at <= now - limit.window
    (
        LoginThrottle.insert(
            key=limit.key, failures=1, window_started_at=now, expires_at=now + limit.window
        )
        .on_conflict(
            conflict_target=[LoginThrottle.key],
            update={
                LoginThrottle.failures: Case(None, [(stale, 1)], LoginThrottle.failures + 1),
                LoginThrottle.window_started_at: Case(
                    None, [(stale, now)], LoginThrottle.window_started_at
                ),
                LoginThrottle.expires_at: Case(
                    None,
                    [(stale, now + limit.window)],
                    fn.COALESCE(LoginThrottle.expires_at, now + limit.window),
                ),
            },
        )
        .execute()
    )


def _lock(limit: Limit, now: datetime) -> datetime:
    until = now + limit.lockout
    LoginThrottle.update(
        locked_until=until, failures=0, window_started_at=until, expires_at=until + limit.window
    ).where(LoginThrottle.key == limit.key).execute()
    return until


def _refusals(limits: Sequence[Limit], now: datetime) -> list[tuple[datetime, Limit]]:
    """(when it frees, limit) for each limit its row says is exhausted or locked."""
    keys = [limit.key for limit in limits]
    rows = {row.key: row for row in LoginThrottle.select().where(LoginThrottle.key.in_(keys))}
    refused = []
    for limit in limits:
        row = rows.get(limit.key)
        if row is None:
            continue
        if row.locked_until is not None and row.locked_until > now:
            refused.append((row.locked_until, limit))
        elif row.failures > limit.allowed and row.window_started_at > now - limit.window:
            refused.append((row.window_started_at + limit.window, limit))
    return refused


def _refuse(refused: list[tuple[datetime, Limit]], now: datetime) -> None:
    ends, limit = max(refused, key=lambda pair: pair[0])
    retry_after = max(1, math.ceil((ends - now).total_seconds()))
    raise TooManyRequests(f"Too many {limit.what}; try again in {retry_after} seconds", retry_after)


def hit(limits: Sequence[Limit], now: datetime | None = None) -> None:
    """Count one attempt against every limit, or raise TooManyRequests for the one that
    frees last. Inside a caller's transaction it is part of it (a savepoint).

    An attempt already refused by what the rows say is not counted: a flood past a limit
    costs one read per request and takes no write lock (on SQLite, writers queue for one).
    """
    now = now or utcnow()
    if refused := _refusals(limits, now):
        _refuse(refused, now)
    with write_transaction():
        for limit in limits:
            _count(limit, now)
        refused = _refusals(limits, now)
        for index, (_, limit) in enumerate(refused):
            if limit.lockout is not None:  # exceeded just now: lock it
                refused[index] = (_lock(limit, now), limit)
    if refused:
        _refuse(refused, now)


def give_back(limits: Sequence[Limit]) -> None:
    """Undo one counted attempt of each limit (inside the caller's transaction)."""
    given_back = Case(None, [(LoginThrottle.failures > 0, LoginThrottle.failures - 1)], 0)
    keys = [limit.key for limit in limits]
    if keys:
        LoginThrottle.update(failures=given_back).where(LoginThrottle.key.in_(keys)).execute()


def forget(limits: Sequence[Limit]) -> None:
    """Drop the counters of these limits (inside the caller's transaction)."""
    keys = [limit.key for limit in limits]
    if keys:
        LoginThrottle.delete().where(LoginThrottle.key.in_(keys)).execute()
