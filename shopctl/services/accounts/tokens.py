"""Access tokens (HS256 JWTs) and refresh sessions (opaque, rotating, stored hashed).

An access token carries sub, role, iat, exp, jti and, when a login issued it, `sid`:
the refresh-session family it belongs to. While that family lives the token is good;
logout, reuse detection or a password change revoke the family, and with it every
access token of that session at once, not 15 minutes later.

A refresh token is a random string shown to the client once; the database keeps its
HMAC-SHA256 keyed with JWT_REFRESH_SECRET, so a copy of the table cannot be replayed,
and changing that secret signs every session out.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from datetime import timedelta

import jwt
from peewee import fn

from shopctl.config import Settings
from shopctl.db import write_transaction
from shopctl.errors import Unauthorized
from shopctl.models import RefreshSession, User, new_id, utcnow
from shopctl.prepared import Params, PreparedSelect

ALGORITHM = "HS256"
INVALID_REFRESH = "Invalid or expired refresh token"


def issue_access_token(settings: Settings, user: User, session_id: str | None = None) -> str:
    now = int(time.time())
    claims = {
        "sub": user.id,
        "email": user.email,
        "role": user.role,
        "iat": now,
        "exp": now + int(settings.jwt_access_expires),
        "jti": uuid.uuid4().hex,
        "type": "access",
    }
    if session_id:
        claims["sid"] = session_id
    return jwt.encode(claims, settings.jwt_access_secret, algorithm=ALGORITHM)


def access_claims(settings: Settings, token: str) -> dict:
    """Verified claims of an access token, or Unauthorized."""
    if not token.isascii():  # a JWT is ASCII; header bytes that are not arrive as surrogates
        raise Unauthorized("Invalid access token")
    try:
        claims = jwt.decode(
            token,
            settings.jwt_access_secret,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Access token expired") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("Invalid access token") from None
    if claims.get("type") != "access":
        raise Unauthorized("Invalid access token")
    return claims


def _live_user(params: Params, with_session: bool):
    query = User.select().where((User.id == params.user_id) & ~User.is_deleted)
    if not with_session:
        return query
    live_session = RefreshSession.select(RefreshSession.id).where(
        RefreshSession.family_id == params.session_id,
        RefreshSession.user == User.id,
        ~RefreshSession.revoked,
        RefreshSession.expires_at > params.now,
    )
    return query.where(fn.EXISTS(live_session))


_USER = PreparedSelect(lambda params: _live_user(params, with_session=False))
_USER_IN_SESSION = PreparedSelect(lambda params: _live_user(params, with_session=True))


def authenticate(settings: Settings, token: str) -> tuple[User, str | None]:
    """The live user an access token speaks for, and its session family (one query)."""
    claims = access_claims(settings, token)
    user_id = str(claims["sub"])
    session_id = claims.get("sid")
    if session_id:
        session_id = str(session_id)
        user = _USER_IN_SESSION.first(user_id=user_id, session_id=session_id, now=utcnow())
    else:
        user = _USER.first(user_id=user_id)
    if user is None:
        raise Unauthorized("User no longer exists or session has ended")
    return user, session_id


# --- refresh sessions ----------------------------------------------------------------------


def refresh_digest(settings: Settings, token: str) -> str:
    key = settings.jwt_refresh_secret.encode()
    # Ours are ASCII; anything else (bytes from a cookie that were not UTF-8 arrive as
    # surrogates) matches no row, whatever its digest.
    raw = token.encode("utf-8", "surrogatepass")
    return hmac.new(key, raw, hashlib.sha256).hexdigest()


def open_session(settings: Settings, user: User, family_id: str | None = None) -> tuple[str, str]:
    """A new refresh token for `user` (inside the caller's transaction): (token, family id)."""
    token = secrets.token_urlsafe(32)
    family_id = family_id or new_id()
    RefreshSession.create(
        user=user,
        token_hash=refresh_digest(settings, token),
        family_id=family_id,
        expires_at=utcnow() + timedelta(seconds=settings.jwt_refresh_expires),
    )
    return token, family_id


def rotate_session(settings: Settings, token: str) -> tuple[User, str, str]:
    """Spend a refresh token for a new one in the same family: (user, token, family id).

    The old row is claimed by a conditional UPDATE, so of two concurrent refreshes with
    one token only one wins. Presenting a token that was already rotated means a copy
    is in someone else's hands: the whole family is revoked (RFC 9700, 4.14.2).
    """
    digest = refresh_digest(settings, token)
    with write_transaction():
        now = utcnow()
        claimed = (
            RefreshSession.update(revoked=True, rotated_at=now)
            .where(
                RefreshSession.token_hash == digest,
                ~RefreshSession.revoked,
                RefreshSession.expires_at > now,
            )
            .execute()
        )
        spent = RefreshSession.get_or_none(RefreshSession.token_hash == digest)
        user = User.get_by_id(spent.user_id) if claimed else None
        if user is not None and not user.is_deleted:
            new_token, family_id = open_session(settings, user, spent.family_id)
            return user, new_token, family_id
    # A reused token, or a deleted user's (already rotated above): end the whole family.
    if spent is not None and spent.rotated_at is not None:
        revoke_family(spent.family_id)
    raise Unauthorized(INVALID_REFRESH)


def revoke_family(family_id: str) -> int:
    with write_transaction():
        return (
            RefreshSession.update(revoked=True)
            .where(RefreshSession.family_id == family_id, ~RefreshSession.revoked)
            .execute()
        )


def revoke_token_family(settings: Settings, token: str) -> int:
    """Logout: end the session the token belongs to (unknown tokens: nothing to do)."""
    digest = refresh_digest(settings, token)
    session = RefreshSession.get_or_none(RefreshSession.token_hash == digest)
    return revoke_family(session.family_id) if session else 0


def revoke_user_sessions(user: User, keep_family: str | None = None) -> int:
    """Revoke every live session of `user` but `keep_family` (inside the caller's transaction)."""
    query = RefreshSession.update(revoked=True).where(
        RefreshSession.user == user,
        ~RefreshSession.revoked,
    )
    if keep_family:
        query = query.where(RefreshSession.family_id != keep_family)
    return query.execute()


def prune_expired_sessions(user: User) -> int:
    """Drop `user`'s expired rows (inside the caller's transaction); rotated ones stay until
    they expire, since they are what reuse detection compares against."""
    return (
        RefreshSession.delete()
        .where(RefreshSession.user == user, RefreshSession.expires_at <= utcnow())
        .execute()
    )
