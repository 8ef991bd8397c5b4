"""Pages of a listing: keyset ("seek") cursors, and the bound on page-number paging.

A listing is read in one sort order whose last column is unique (the id breaks ties), so
a position in it is the sort values of the last row shown, and the next page is
`WHERE (sort columns) > (those values)` (< when descending) read from an index in that
order: each page costs the same however deep it is, and rows inserted or deleted
meanwhile never make a page repeat or skip a row that was there throughout. `page` and
`limit` (the Express API it replaces) keep working, but OFFSET reads and throws away every
row before the page, so they are served only down to row MAX_PAGE_DEPTH.

A cursor is opaque to clients: urlsafe base64 of a checksum and a small JSON document
(version, listing, sort, values). The checksum catches a cursor damaged or edited by
hand; a forged one could only name another position in the same order, which any client
may reach anyway, and its values are checked against the columns' types before they
reach a query (as parameters). A cursor of another listing, another sort or another
version is refused with what to do instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from peewee import CharField, DateTimeField, Expression, Field, IntegerField, Model, Tuple, Value
from pydantic import Field as Described

from shopctl.db import is_postgres
from shopctl.errors import InvalidInput

MAX_PAGE_DEPTH = 10_000
CURSOR_VERSION = 1
# The longest cursor: a 200-character name of 4-byte characters, ~1,140 (a page's URL
# must stay under the server's 8 KiB request line, a search included).
MAX_CURSOR_LENGTH = 1_200
_CHECKSUM_BYTES = 8
_CHECKSUM_KEY = b"shopctl listing cursor"
_LARGEST_INTEGER = 2**63 - 1
START_AGAIN = "start again without cursor (or with an empty one)"

# The `cursor` parameter of every listing's schema (shopctl/schemas.py).
Cursor = Annotated[
    str,
    Described(
        max_length=MAX_CURSOR_LENGTH,
        pattern=r"^[A-Za-z0-9_-]*$",  # urlsafe base64, unpadded
        description="Opaque: the previous page's meta.nextCursor; empty starts a cursor walk "
        "at the first page (no total is counted). Not with page.",
    ),
]


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_BYTES, key=_CHECKSUM_KEY).digest()


def _refused(message: str) -> InvalidInput:
    return InvalidInput([{"path": "cursor", "message": message}])


def _damaged() -> InvalidInput:
    return _refused(f"not a cursor this listing gave out (damaged or edited); {START_AGAIN}")


def _to_json(column: Field, value: Any) -> Any:
    return value.isoformat() if isinstance(column, DateTimeField) else value


def _from_json(column: Field, value: Any) -> Any:
    """`value` as `column` holds it, or InvalidInput: nothing unchecked reaches a query."""
    if isinstance(column, DateTimeField):
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is not None:
            raise _damaged()
        return moment
    if isinstance(column, IntegerField):  # BigIntegerField too
        if type(value) is not int or abs(value) > _LARGEST_INTEGER:
            raise _damaged()
        return value
    limit = column.max_length if isinstance(column, CharField) else None
    if not isinstance(value, str) or "\x00" in value or (limit and len(value) > limit):
        raise _damaged()
    try:
        value.encode("utf-8")  # a lone surrogate no database can compare
    except UnicodeEncodeError:
        raise _damaged() from None
    return value


def _driver_value(column: Field, value: Any) -> Any:
    """`value` as the driver is given it for `column` (SQLite keeps timestamps as text)."""
    if isinstance(column, DateTimeField) and not is_postgres():
        return value.isoformat(" ")
    return value


@dataclass(frozen=True, eq=False)  # one instance per order: peewee's == builds SQL
class Keyset:
    """One sort order of one listing: `columns`, the last of them unique, all one way."""

    listing: str  # what the cursor belongs to, e.g. "products"
    sort: str  # how the listing's parameters name this order, e.g. "createdAt:desc"
    columns: tuple[Field, ...]
    descending: bool

    def order_by(self) -> list:
        return [column.desc() if self.descending else column.asc() for column in self.columns]

    def after(self, values: Sequence[Any]) -> Expression:
        """Rows after the position `values` (the sort values of the last row shown)."""
        return self._beyond([Value(v, converter=False) for v in self.driver_values(values)])

    def after_params(self, params) -> Expression:
        """`after` with placeholders `after_0`, `after_1`… for a prepared statement."""
        return self._beyond([getattr(params, f"after_{i}") for i in range(len(self.columns))])

    def driver_values(self, values: Sequence[Any]) -> list:
        return [_driver_value(c, v) for c, v in zip(self.columns, values, strict=True)]

    def _beyond(self, values: list) -> Expression:
        if len(self.columns) == 1:
            column, (value,) = self.columns[0], values
            return column < value if self.descending else column > value
        # A row value, so that the index on these columns bounds the scan itself.
        row, position = Tuple(*self.columns), Tuple(*values)
        return row < position if self.descending else row > position

    def cursor_of(self, row: Model) -> str:
        values = [_to_json(c, getattr(row, c.name)) for c in self.columns]
        document = {"v": CURSOR_VERSION, "l": self.listing, "s": self.sort, "k": values}
        payload = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(_checksum(payload) + payload).rstrip(b"=").decode()

    def position(self, cursor: str) -> tuple:
        """The sort values `cursor` names, or InvalidInput saying why it cannot be used."""
        document = _document(cursor)
        if document.get("v") != CURSOR_VERSION:
            raise _refused(f"a cursor of another version of shopctl; {START_AGAIN}")
        if document.get("l") != self.listing:
            raise _refused(f"a cursor of another listing, not of {self.listing}; {START_AGAIN}")
        if document.get("s") != self.sort:
            raise _refused(
                f"this cursor continues the order {document.get('s')}, not {self.sort}: "
                f"ask for that order again, or {START_AGAIN}"
            )
        values = document.get("k")
        if not isinstance(values, list) or len(values) != len(self.columns):
            raise _damaged()
        return tuple(_from_json(c, v) for c, v in zip(self.columns, values, strict=True))


def _document(cursor: str) -> dict:
    text = cursor.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise _damaged() from None
    checksum, payload = raw[:_CHECKSUM_BYTES], raw[_CHECKSUM_BYTES:]
    if not payload or checksum != _checksum(payload):
        raise _damaged()
    try:
        document = json.loads(payload)
    except ValueError:  # UnicodeDecodeError too
        raise _damaged() from None
    if not isinstance(document, dict):
        raise _damaged()
    return document


@dataclass(frozen=True)
class Window:
    """Which rows of a listing one request asks for: a page number (the Express API's
    paging) or a cursor. In cursor mode `page` is None; `position` None is the start."""

    keyset: Keyset
    limit: int
    page: int | None
    position: tuple | None

    @property
    def offset(self) -> int:
        return 0 if self.page is None else (self.page - 1) * self.limit

    @property
    def fetch(self) -> int:
        """Rows to read: one more than shown tells whether a next page exists."""
        return self.limit + 1

    def select(self, query):
        """`query` (a peewee SELECT of the listing's model) narrowed to this window."""
        if self.position is not None:
            query = query.where(self.keyset.after(self.position))
        return query.order_by(*self.keyset.order_by()).limit(self.fetch).offset(self.offset)

    def params(self) -> dict:
        """The limit, offset and position values of a prepared `after_params` statement."""
        values = {"limit": self.fetch, "offset": self.offset}
        if self.position is not None:
            for i, value in enumerate(self.keyset.driver_values(self.position)):
                values[f"after_{i}"] = value
        return values

    def page_of(
        self, rows: Sequence, position: Callable[[Any], Model] | None = None
    ) -> tuple[list, str | None]:
        """The rows to show and the cursor of the page after them (None: this is the last).
        Rows are models, or anything `position` turns into one (only the last shown is)."""
        shown = list(rows[: self.limit])
        if len(rows) <= self.limit:
            return shown, None
        last = shown[-1] if position is None else position(shown[-1])
        return shown, self.keyset.cursor_of(last)

    def meta(self, next_cursor: str | None, count: Callable[[], int]) -> dict:
        """Page-number meta as the Express API sent it (`count` is called only then), or
        just the limit on a cursor page: counting every match is what cursors avoid."""
        if self.page is None:
            return {"limit": self.limit, "nextCursor": next_cursor}
        total = count()
        pages = -(-total // self.limit)
        return {
            "page": self.page,
            "limit": self.limit,
            "total": total,
            "totalPage": pages,
            "nextCursor": next_cursor,
        }


def window(keyset: Keyset, *, limit: int, cursor: str | None, page: int | None = None) -> Window:
    """The window a request asks for. `page` is None unless the request named it; a
    cursor (an empty one starts at the top) and a page together are refused, and so is a
    page reaching past row MAX_PAGE_DEPTH."""
    if cursor is not None:
        if page is not None:
            raise InvalidInput(
                [{"path": "page", "message": "give cursor or page, not both"}],
                "Give cursor or page, not both",
            )
        return Window(keyset, limit, None, keyset.position(cursor) if cursor.strip() else None)
    page = page or 1
    if page * limit > MAX_PAGE_DEPTH:
        detail = (
            f"page {page} of {limit} reaches row {page * limit:,}; "
            "use cursor (each page's meta.nextCursor) to go deeper"
        )
        raise InvalidInput(
            [{"path": "page", "message": detail}],
            f"Page too deep: pages are served down to row {MAX_PAGE_DEPTH:,}, cursor goes on",
        )
    return Window(keyset, limit, page, None)
