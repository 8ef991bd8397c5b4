"""Operator management of accounts (`shopctl users …`). Creation goes through auth.register."""

from __future__ import annotations

from shopctl.db import write_transaction
from shopctl.errors import NotFound
from shopctl.models import User, utcnow
from shopctl.services.accounts import tokens
from shopctl.services.accounts.auth import user_dict
from shopctl.services.common import resolve_id


def find_user_id(text: str) -> str:
    """The id of the account `text` names: its whole id or a unique prefix (6+ characters)."""
    return resolve_id(User, text, "user")


def _by_email(email: str) -> User:
    user = User.get_or_none(User.email == email.strip().lower())
    if user is None:
        raise NotFound(f"No user with email {email.strip()}")
    return user


def list_users(limit: int | None = None) -> list[dict]:
    """Every account, oldest first (deactivated ones included, marked)."""
    query = User.select().order_by(User.created_at, User.email)
    if limit:
        query = query.limit(limit)
    return [user_dict(user) for user in query]


def promote(email: str) -> tuple[dict, bool]:
    """Make the account an ADMIN: (user, whether anything changed)."""
    with write_transaction():
        user = _by_email(email)
        changed = user.role != "ADMIN"
        if changed:
            user.role = "ADMIN"
            user.updated_at = utcnow()
            user.save()
    return user_dict(user), changed


def deactivate(email: str) -> tuple[dict, int]:
    """Mark the account deleted and end its sessions: (user, sessions revoked)."""
    with write_transaction():
        user = _by_email(email)
        if not user.is_deleted:
            user.is_deleted = True
            user.updated_at = utcnow()
            user.save()
        revoked = tokens.revoke_user_sessions(user)
    return user_dict(user), revoked
