"""Hot queries whose SQL is built once instead of on every request.

Peewee builds and compiles a query each time it runs: about 0.2 ms of CPU, more than
PostgreSQL spends answering a primary-key read. The reads every request makes (a
product, a page of products, the user behind a token) differ only in their values, so
they are compiled once per database kind and run again with new parameters, and their
rows become models without peewee's per-row machinery (on PostgreSQL the driver's
values are already what the models hold).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
    placeholder that `PreparedSelect.first(id=…)` (or `models`, `scalar`) fills, and
    `params[3]` one that `PreparedStatement.run(shape, values)` fills from a sequence.
    Values go to the driver as given, so give them as the column stores them (str, int,
    datetime)."""

    def __getattr__(self, name: str) -> Value:
        return Value(f"{_MARK}{name}", converter=False)

    def __getitem__(self, index: int) -> Value:
        return Value(f"{_MARK}#{index}", converter=False)


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
        self.slots = [_slot(p) for p in params]
        self.model: type[Model] = query.model
        fields = getattr(query, "_returning", None) or ()  # a SELECT's columns
        self.names = [getattr(field, "name", None) for field in fields]
        self.converters = [
            _converter(field, postgres) if isinstance(field, Field) else None for field in fields
        ]

    def params(self, values: Mapping[str, Any] | Sequence[Any]) -> list:
        return [constant if key is None else values[key] for key, constant in self.slots]


def _slot(param: Any) -> tuple[str | int | None, Any]:
    """(the value's key, None) for a placeholder, (None, the value) for a constant."""
    if not (isinstance(param, str) and param.startswith(_MARK)):
        return None, param
    name = param[len(_MARK) :]
    return (int(name[1:]) if name.startswith("#") else name), None


class PreparedStatement:
    """A query built by `build(params, *shape)` once per database kind and shape, run
    with new values. `shape` is whatever changes the SQL itself, such as the number of
    lines of an order; most statements have none."""

    MAX_SHAPES = 512  # per statement and database kind; a bound, never reached in practice

    def __init__(self, build: Callable[..., Query], *, plan_each_time: bool = False):
        """`plan_each_time`: built once all the same, but not PREPAREd, so PostgreSQL
        plans it with its values each time: for a statement whose best plan depends on
        them (a search term), a generic plan would fit one value and ruin another."""
        self._build = build
        self._compiled: dict[tuple, _Compiled] = {}
        self._plan_each_time = plan_each_time

    def _compiled_here(self, shape: tuple = ()) -> _Compiled:
        key = (type(database.obj), shape)
        compiled = self._compiled.get(key)
        if compiled is None:
            if len(self._compiled) >= self.MAX_SHAPES:
                self._compiled.clear()
            query = self._build(Params(), *shape)
            compiled = self._compiled[key] = _Compiled(query, is_postgres())
        return compiled

    def _cursor(self, compiled: _Compiled, values: Mapping[str, Any] | Sequence[Any]):
        if self._plan_each_time:
            return database.execute_sql(compiled.sql, compiled.params(values))
        return execute_prepared(compiled.sql, compiled.params(values))

    def execute(self, **values) -> int:
        """Run an UPDATE, INSERT or DELETE: the number of rows it changed."""
        return self._cursor(self._compiled_here(), values).rowcount

    def run(self, shape: tuple, values: Mapping[str, Any] | Sequence[Any]):
        """Run the statement of this `shape` with `values` (a mapping for `params.name`,
        a sequence for `params[i]`): the driver's cursor, for its rows or rowcount."""
        return self._cursor(self._compiled_here(shape), values)


class PreparedSelect(PreparedStatement):
    """A SELECT built once per database kind, whose rows come back as models or a value."""

    def models(self, **values) -> list[Model]:
        """Every row, as instances of the query's model (a select of model fields only)."""
        compiled = self._compiled_here()
        return [_model(compiled, row) for row in self._cursor(compiled, values).fetchall()]

    def rows(self, **values) -> list[tuple]:
        """Every row as a tuple of its columns, each model field's value as the model holds
        it (what `models` makes, without the instances; other columns as the driver gives)."""
        compiled = self._compiled_here()
        converters = compiled.converters
        rows = self._cursor(compiled, values).fetchall()
        if not any(converters):
            return rows
        return [
            tuple(
                v if convert is None or v is None else convert(v)
                for convert, v in zip(converters, row, strict=True)
            )
            for row in rows
        ]

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
