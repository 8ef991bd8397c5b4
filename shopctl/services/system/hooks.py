"""What every hook this package registers at a lower layer shares: it never raises.

Hooks run inside the business code, some inside its transaction (an order transition's),
so a hook that raised would undo the work it only meant to observe.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

log = logging.getLogger("shopctl.hooks")


def never_raises(hook: Callable) -> Callable:
    """`hook`, logging its own failure instead of raising into the business code."""

    @functools.wraps(hook)
    def safe(*args, **kwargs):
        try:
            hook(*args, **kwargs)
        except Exception:
            log.debug("hook %s failed", hook.__name__, exc_info=True)

    return safe
