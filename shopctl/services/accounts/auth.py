"""Accounts and sessions: registration, passwords, login, refresh, logout, rate limits.

Every function here is synchronous and runs in the API's thread pool (or the CLI), so
bcrypt never blocks the event loop; no transaction is held while bcrypt works.
"""

from __future__ import annotations

import functools

import bcrypt
from peewee import IntegrityError

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import Conflict, InvalidInput, Unauthorized
from shopctl.models import User, utcnow
from shopctl.schemas import Login, PasswordChange, Registration
from shopctl.services.accounts import throttle, tokens
from shopctl.services.common import iso

BAD_CREDENTIALS = "Invalid email or password"
DUPLICATE_EMAIL = "A user with this email already exists"
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


def register(
    settings: Settings, data: Registration, role: str = "USER", address: str | None = None
) -> dict:
    """Create an account (`POST /user`, `shopctl users create`); 409 if the email is taken.

    From the API (`address` given) each attempt counts against the client address's
    registration limit first; bcrypt runs only for a registration that can succeed, so a
    flood of duplicates or refused attempts costs the shop a few queries each.
    """
    if role not in ROLES:
        raise InvalidInput([{"path": "role", "message": f"Role must be one of {', '.join(ROLES)}"}])
    if address and settings.registration_rate:
        limit = throttle.rate_limit(
            "register", address, settings.registration_rate, "registrations from your address"
        )
        throttle.hit([limit])
    if User.select().where(User.email == data.email).exists():
        raise Conflict(DUPLICATE_EMAIL)
    password_hash = hash_password(settings, data.password)
    try:
        with write_transaction():
            user = User.create(
                email=data.email, password_hash=password_hash, name=data.name, role=role
            )
    except IntegrityError:  # registered meanwhile
        raise Conflict(DUPLICATE_EMAIL) from None
    return user_dict(user)


# --- sessions -------------------------------------------------------------------------------


def login(settings: Settings, data: Login, address: str | None) -> dict:
    """`{accessToken, refreshToken, user}`; one message for a wrong email or password."""
    limits = throttle.login_limits(data.email, address)
    throttle.hit(limits)  # counted before the password is checked; a success gives it back
    user = User.get_or_none(User.email == data.email)
    if not _check_credentials(settings, user, data.password):
        raise Unauthorized(BAD_CREDENTIALS)
    with write_transaction():
        _attempt_succeeded(limits)
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


def _attempt_succeeded(limits: list[throttle.Limit]) -> None:
    """A success clears the (account, address) pair and gives the others their attempt
    back; the account's ceiling keeps counting what others failed."""
    account, *others = limits
    throttle.forget(others[:1])
    throttle.give_back([account, *others[1:]])


def change_password(
    settings: Settings,
    user_id: str,
    session_id: str | None,
    data: PasswordChange,
    address: str | None = None,
) -> None:
    """Check the old password, set the new one, end every other session of the user."""
    user = User.get_by_id(user_id)
    limits = throttle.login_limits(user.email, address)
    throttle.hit(limits)
    if not password_matches(data.old_password, user.password_hash):
        raise InvalidInput([{"path": "oldPassword", "message": "Old password is incorrect"}])
    new_hash = hash_password(settings, data.new_password)
    with write_transaction():
        User.update(password_hash=new_hash, updated_at=utcnow()).where(User.id == user.id).execute()
        tokens.revoke_user_sessions(user, keep_family=session_id)
        _attempt_succeeded(limits)
