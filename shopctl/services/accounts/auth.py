"""Accounts and sessions: registration, passwords, login, refresh, logout, rate limits.

Every function here is synchronous and runs in the API's thread pool (or the CLI), so
bcrypt never blocks the event loop; no transaction is held while bcrypt works.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import bcrypt
from peewee import Case, IntegrityError

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import Conflict, InvalidInput, TooManyRequests, Unauthorized
from shopctl.models import LoginThrottle, User, utcnow
from shopctl.schemas import Login, PasswordChange, Registration
from shopctl.services.accounts import tokens
from shopctl.services.common import iso

BAD_CREDENTIALS = "Invalid email or password"
THROTTLE_WINDOW = timedelta(minutes=15)
EMAIL_LIMIT = 5  # failed logins per account per window
ADDRESS_LIMIT = 20  # failed logins per client address per window (shared NATs need room)
ROLES = ("USER", "ADMIN")


def user_dict(user: User) -> dict:
    """A user as the API and `--json` show it; never the password hash."""
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "isDeleted": bool(user.is_deleted),
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
    }


# --- passwords -----------------------------------------------------------------------------


def hash_password(settings: Settings, password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(settings.bcrypt_salt_rounds)).decode()


def password_matches(password: str, password_hash: str) -> bool:
    encoded = password.encode()
    if len(encoded) > 72:  # never a valid password here; bcrypt 5 would raise
        return False
    try:
        return bcrypt.checkpw(encoded, password_hash.encode())
    except ValueError:  # not a bcrypt hash: nobody can log in with it
        return False


@functools.lru_cache(maxsize=4)
def _dummy_hash(rounds: int) -> str:
    return bcrypt.hashpw(b"no such user", bcrypt.gensalt(rounds)).decode()


def _check_credentials(settings: Settings, user: User | None, password: str) -> bool:
    """Spend one bcrypt check whether or not the account exists, so timing tells nothing."""
    if user is None:
        password_matches(password, _dummy_hash(settings.bcrypt_salt_rounds))
        return False
    return password_matches(password, user.password_hash) and not user.is_deleted


# --- registration ---------------------------------------------------------------------------


def register(settings: Settings, data: Registration, role: str = "USER") -> dict:
    """Create an account (`POST /user`, `shopctl users create`); 409 if the email is taken."""
    if role not in ROLES:
        raise InvalidInput([{"path": "role", "message": f"Role must be one of {', '.join(ROLES)}"}])
    password_hash = hash_password(settings, data.password)
    try:
        with write_transaction():
            user = User.create(
                email=data.email, password_hash=password_hash, name=data.name, role=role
            )
    except IntegrityError:
        raise Conflict("A user with this email already exists") from None
    return user_dict(user)


# --- failed-login throttle ------------------------------------------------------------------


# Metrics and logs register here at start-up (accounts never imports them): called with
# the throttled keys' kinds ("email", "ip") each time a login is refused. Must not raise.
THROTTLE_HOOKS: list[Callable[[list[str]], None]] = []


def on_throttled(hook: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
    THROTTLE_HOOKS.append(hook)
    return hook


@dataclass(frozen=True)
class Limit:
    key: str
    allowed: int


def login_limits(email: str, address: str | None) -> list[Limit]:
    limits = [Limit(f"email:{email}", EMAIL_LIMIT)]
    if address:
        limits.append(Limit(f"ip:{address}", ADDRESS_LIMIT))
    return limits


def _count_attempt(key: str, now) -> None:
    """One more attempt for `key`, atomically (an upsert; a stale window starts over)."""
    stale = LoginThrottle.window_started_at <= now - THROTTLE_WINDOW
    (
        LoginThrottle.insert(key=key, failures=1, window_started_at=now)
        .on_conflict(
            conflict_target=[LoginThrottle.key],
            update={
                LoginThrottle.failures: Case(None, [(stale, 1)], LoginThrottle.failures + 1),
                LoginThrottle.window_started_at: Case(
                    None, [(stale, now)], LoginThrottle.window_started_at
                ),
            },
        )
        .execute()
    )


def begin_attempt(limits: list[Limit]) -> None:
    """Count an attempt before checking the password, or refuse with 429.

    Counting first (and giving success back afterwards) means parallel guesses cannot
    all slip through before the first failure is written: the counter is exact.
    """
    now = utcnow()
    with write_transaction():
        for limit in limits:
            _count_attempt(limit.key, now)
        rows = {
            r.key: r
            for r in LoginThrottle.select().where(
                LoginThrottle.key.in_([limit.key for limit in limits])
            )
        }
    over = [rows[limit.key] for limit in limits if rows[limit.key].failures > limit.allowed]
    if over:
        ends = max(row.window_started_at for row in over) + THROTTLE_WINDOW
        retry_after = max(1, math.ceil((ends - now).total_seconds()))
        for hook in THROTTLE_HOOKS:
            hook([row.key.partition(":")[0] for row in over])
        raise TooManyRequests(
            f"Too many failed login attempts; try again in {retry_after} seconds", retry_after
        )


def attempt_succeeded(limits: list[Limit]) -> None:
    """A success resets the account's counter and gives the address its attempt back."""
    account, *others = limits
    with write_transaction():
        LoginThrottle.delete().where(LoginThrottle.key == account.key).execute()
        for limit in others:
            given_back = Case(None, [(LoginThrottle.failures > 0, LoginThrottle.failures - 1)], 0)
            LoginThrottle.update(failures=given_back).where(
                LoginThrottle.key == limit.key
            ).execute()


# --- sessions -------------------------------------------------------------------------------


def login(settings: Settings, data: Login, address: str | None) -> dict:
    """`{accessToken, refreshToken, user}`; one message for a wrong email or password."""
    limits = login_limits(data.email, address)
    begin_attempt(limits)
    user = User.get_or_none(User.email == data.email)
    if not _check_credentials(settings, user, data.password):
        raise Unauthorized(BAD_CREDENTIALS)
    with write_transaction():
        attempt_succeeded(limits)
        tokens.prune_expired_sessions(user)
        refresh_token, family_id = tokens.open_session(settings, user)
    return {
        "accessToken": tokens.issue_access_token(settings, user, family_id),
        "refreshToken": refresh_token,
        "user": user_dict(user),
    }


def refresh(settings: Settings, refresh_token: str | None) -> dict:
    """Rotate a refresh token: `{accessToken, refreshToken}`."""
    if not refresh_token:
        raise Unauthorized("No refresh token received")
    user, new_token, family_id = tokens.rotate_session(settings, refresh_token)
    access_token = tokens.issue_access_token(settings, user, family_id)
    return {"accessToken": access_token, "refreshToken": new_token}


def logout(settings: Settings, refresh_token: str | None) -> None:
    """End the session the refresh token belongs to; without one there is nothing to end."""
    if refresh_token:
        tokens.revoke_token_family(settings, refresh_token)


def change_password(
    settings: Settings, user_id: str, session_id: str | None, data: PasswordChange
) -> None:
    """Check the old password, set the new one, end every other session of the user."""
    user = User.get_by_id(user_id)
    limits = login_limits(user.email, None)
    begin_attempt(limits)
    if not password_matches(data.old_password, user.password_hash):
        raise InvalidInput([{"path": "oldPassword", "message": "Old password is incorrect"}])
    new_hash = hash_password(settings, data.new_password)
    with write_transaction():
        User.update(password_hash=new_hash, updated_at=utcnow()).where(User.id == user.id).execute()
        tokens.revoke_user_sessions(user, keep_family=session_id)
        attempt_succeeded(limits)
