"""Small helpers every service shares: timestamps on the wire, check reports, ids."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from peewee import SQL, NodeList, Value

from shopctl.errors import Ambiguous, InvalidInput, NotFound


def iso(moment: datetime | None) -> str | None:
    """A naive-UTC timestamp as the Express API it replaces sent it: ISO 8601 with
    milliseconds and Z."""
    return None if moment is None else _iso(moment)


@lru_cache(maxsize=4096)
def _iso(moment: datetime) -> str:
    # A page of products formats two timestamps per product, and the same pages are
    # asked for again and again: formatting was an eighth of a listing's CPU.
    return moment.isoformat(timespec="milliseconds") + "Z"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str | None = None
    warning: bool = False  # ok, but an operator should look (e.g. an open dispute)


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, ok: bool, detail: str, hint: str | None = None) -> None:
        self.checks.append(Check(name, ok, detail, hint))

    def warn(self, name: str, detail: str, hint: str | None = None) -> None:
        """Something to look at that is not a failure: `doctor` stays green (exit 0)."""
        self.checks.append(Check(name, True, detail, hint, warning=True))


# --- ids given by an operator: whole, or a unique prefix, as git takes commits ------------

MIN_PREFIX = 6
CANDIDATES_SHOWN = 10
_UUID_PREFIX = re.compile(r"^[0-9a-f][0-9a-f-]*$")
_STRIPE_TYPE = re.compile(r"^[a-z]{2,8}_")


def escape_like(text: str) -> str:
    """`text` for a LIKE pattern with ESCAPE '\\': its %, _ and \\ match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like(field, pattern: str) -> NodeList:
    """`field LIKE pattern ESCAPE '\\'` (case-sensitive on PostgreSQL, not on SQLite)."""
    # Spelled out: peewee's OP.LIKE becomes GLOB on SQLite, which has no ESCAPE.
    escape = Value("\\", converter=False)
    return NodeList((field, SQL("LIKE"), Value(pattern), SQL("ESCAPE"), escape))


def resolve_id(model, text: str, noun: str, *, is_uuid: bool = True) -> str:
    """The whole primary key of the `model` row that `text` names: the id itself, or the
    only one starting with `text` (at least MIN_PREFIX characters, not counting a Stripe
    type prefix such as `evt_`).

    InvalidInput (a usage error) for a prefix too short or not id-shaped, NotFound when
    nothing starts with it, Ambiguous listing the candidates when several do. A whole
    UUID is returned without a query: the caller's lookup says whether it exists.
    """
    text = text.strip()
    path = f"{noun}Id"
    if is_uuid:
        text = text.lower()
        try:
            return str(uuid.UUID(text))
        except ValueError:
            pass
        if not _UUID_PREFIX.match(text) or len(text) > 36:
            raise InvalidInput([{"path": path, "message": f"{text!r} is not a {noun} id"}])
    elif model.select(model.id).where(model.id == text).exists():
        return text
    typed = _STRIPE_TYPE.match(text)
    if len(text) - (typed.end() if typed else 0) < MIN_PREFIX:
        message = f"give the whole id or its first {MIN_PREFIX} characters at least"
        raise InvalidInput([{"path": path, "message": message}])
    query = (
        model.select(model.id)
        .where(like(model.id, escape_like(text) + "%"))
        .order_by(model.id)
        .limit(CANDIDATES_SHOWN + 1)
    )
    # SQLite's LIKE ignores case, and Stripe's ids are case-sensitive.
    matches = [row.id for row in query if row.id.startswith(text)]
    if not matches:
        raise NotFound(f"no {noun} id starts with {text}")
    if len(matches) > 1:
        shown = matches[:CANDIDATES_SHOWN]
        more = "\n  …and more" if len(matches) > CANDIDATES_SHOWN else ""
        raise Ambiguous(
            f"{text} is ambiguous: {len(shown)}{'+' if more else ''} {noun} ids start with it; "
            "give more characters:\n  " + "\n  ".join(shown) + more,
            detail=shown,
        )
    return matches[0]
