"""Tables that fit the terminal, 80 columns in a pipe included, and lose nothing that matters.

Ids are shortened (8 characters, as `git log --oneline` shortens commits; every command
takes such a prefix back, and `--json` and `show` print them whole). Statuses, amounts,
counts and ids never wrap and are never cut: their columns are `no_wrap`, and the
columns beside them are few and narrow enough that rich never has to cut them. Names,
emails, event types and errors wrap (`fold` breaks a word longer than its column
rather than ending it with "…"). No borders, two spaces between columns and a rule
under the header: what `docker ps` or `kubectl get` print, and easy to read in a pipe.
"""

from __future__ import annotations

import re

SHORT_ID = 8
_TYPE_PREFIX = re.compile(r"^[a-z]{2,8}_(?=.)")  # Stripe's: evt_, pi_, cs_


def short_id(value: str, length: int = SHORT_ID) -> str:
    """`length` characters of an id; a Stripe id keeps its type prefix (`evt_`) before them."""
    prefix = _TYPE_PREFIX.match(value)
    start = prefix.end() if prefix else 0
    return value[: start + length]


def short_ids(values: list[str]) -> dict[str, str]:
    """Each id shortened, longer where 8 characters would show two listed ids alike."""
    distinct = set(values)
    length = SHORT_ID
    while len({short_id(value, length) for value in distinct}) < len(distinct):
        length += 1
    return {value: short_id(value, length) for value in distinct}


def table(*columns):
    from rich import box
    from rich.table import Table

    return Table(
        *columns,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
    )


def whole(header: str, *, right: bool = False):
    """A column never wrapped nor cut: ids, statuses, amounts, counts."""
    from rich.table import Column

    return Column(header, no_wrap=True, justify="right" if right else "left")


def wrapped(header: str):
    """A column that wraps at spaces, and folds a longer word, rather than cutting it."""
    from rich.table import Column

    return Column(header, overflow="fold")


def when(timestamp: str | None) -> str:
    """An ISO timestamp to the minute, `2026-12-02 04:51` (wraps at the space if need be)."""
    return (timestamp or "")[:16].replace("T", " ")


def text(value: str | None):
    """A cell shown as is: no rich markup read into names, emails or errors."""
    from rich.text import Text

    return Text(value or "")
