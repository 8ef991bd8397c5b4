"""Hot queries whose SQL is built once instead of on every request.

Peewee builds and compiles a query each time it runs: about 0.2 ms of CPU, more than
PostgreSQL spends answering a primary-key read. The reads every request makes (a
product, a page of products, the user behind a token) differ only in their values, so
they are compiled once per database kind and run again with new parameters, and their
rows become models without peewee's per-row machinery (on PostgreSQL the driver's
values are already what the models hold).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DateTimeField,
    Field,
    IntegerField,
    Model,
    Query,
    SmallIntegerField,
    TextField,
    Value,
)

from shopctl.db import database, execute_prepared, is_postgres

_MARK = "\x00param:"


class Params:
    """Stand-ins for a prepared query's parameters: `params.id` is compiled as a
    placeholder that `PreparedSelect.first(id=…)` (or `models`, `scalar`) fills. Values
    go to the driver as given, so give them as the column stores them (str, int,
    datetime)."""

    def __getattr__(self, name: str) -> Value:
        return Value(f"{_MARK}{name}", converter=False)


# psycopg2 already returns these columns as the values peewee's python_value would make
# (exact classes: a subclass may convert differently).
_NATIVE_ON_POSTGRES = frozenset(
    {
        AutoField,
        BigIntegerField,
        BooleanField,
        CharField,
        DateTimeField,
        IntegerField,
        SmallIntegerField,
        TextField,
    }
)


def _converter(field: Field, postgres: bool) -> Callable[[Any], Any] | None:
    if postgres and type(field) in _NATIVE_ON_POSTGRES:
        return None
    return field.python_value


class _Compiled:
    def __init__(self, query: Query, postgres: bool):
        self.sql, params = query.sql()
        self.slots = [
            (p[len(_MARK) :], None) if isinstance(p, str) and p.startswith(_MARK) else (None, p)
            for p in params
        ]
        self.model: type[Model] = query.model
        fields = getattr(query, "_returning", None) or ()  # a SELECT's model fields
        self.names = [field.name for field in fields]
        self.converters = [_converter(field, postgres) for field in fields]

    def params(self, values: dict[str, Any]) -> list:
        return [values[name] if name else constant for name, constant in self.slots]


class PreparedStatement:
    """A query built by `build(params)` once per database kind, run with new values."""

    def __init__(self, build: Callable[[Params], Query]):
        self._build = build
        self._compiled: dict[type, _Compiled] = {}

    def _compiled_here(self) -> _Compiled:
        kind = type(database.obj)
        compiled = self._compiled.get(kind)
        if compiled is None:
            query = self._build(Params())
            compiled = self._compiled[kind] = _Compiled(query, is_postgres())
        return compiled

    def _cursor(self, compiled: _Compiled, values: dict[str, Any]):
        return execute_prepared(compiled.sql, compiled.params(values))

    def execute(self, **values) -> int:
        """Run an UPDATE, INSERT or DELETE: the number of rows it changed."""
        return self._cursor(self._compiled_here(), values).rowcount


class PreparedSelect(PreparedStatement):
    """A SELECT built once per database kind, whose rows come back as models or a value."""

    def models(self, **values) -> list[Model]:
        """Every row, as instances of the query's model (a select of model fields only)."""
        compiled = self._compiled_here()
        return [_model(compiled, row) for row in self._cursor(compiled, values).fetchall()]

    def first(self, **values) -> Model | None:
        compiled = self._compiled_here()
        row = self._cursor(compiled, values).fetchone()
        return None if row is None else _model(compiled, row)

    def scalar(self, **values) -> Any:
        row = self._cursor(self._compiled_here(), values).fetchone()
        return None if row is None else row[0]


def _model(compiled: _Compiled, row: tuple) -> Model:
    instance = compiled.model(__no_default__=True)
    instance.__data__ = {
        name: value if convert is None or value is None else convert(value)
        for name, convert, value in zip(compiled.names, compiled.converters, row, strict=True)
    }
    return instance
