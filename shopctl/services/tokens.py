"""Access tokens: HS256 JWTs with sub, role, iat, exp, jti. Nothing else is accepted."""

from __future__ import annotations

import time
import uuid

import jwt

from shopctl.config import Settings
from shopctl.errors import Unauthorized
from shopctl.models import User

ALGORITHM = "HS256"


def issue_access_token(settings: Settings, user: User) -> str:
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
    return jwt.encode(claims, settings.jwt_access_secret, algorithm=ALGORITHM)


def access_claims(settings: Settings, token: str) -> dict:
    """Verified claims of an access token, or Unauthorized."""
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


def user_for_access_token(settings: Settings, token: str) -> User:
    """The live user an access token speaks for; deleted users are refused."""
    claims = access_claims(settings, token)
    user = User.get_or_none(User.id == str(claims["sub"]))
    if user is None or user.is_deleted:
        raise Unauthorized("User no longer exists")
    return user
