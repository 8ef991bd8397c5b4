"""Structured logs: one JSON object per line (LOG_FORMAT=json), or readable text.

Two kinds of line come from shopctl itself: one per HTTP request (logger
`shopctl.access`) and one per business event (`shopctl.events`: an order transition, a
refund, a webhook outcome). Their fields travel in `extra={"fields": {...}}`, so a
message never has to be parsed. The request id of the request being served sits in a
context variable, copied into the thread-pool calls, so every line written while a
request is served carries it. Nothing here knows a secret: callers pass ids, statuses
and amounts, never tokens, passwords, cookies or card-holder details.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import queue
import sys
import threading
import time
from contextvars import ContextVar
from typing import IO, Any

REQUEST_ID: ContextVar[str | None] = ContextVar("shopctl_request_id", default=None)
ACCESS = logging.getLogger("shopctl.access")
EVENTS = logging.getLogger("shopctl.events")
_MARK = "shopctl_handler"


def resolve_format(configured: str, stream: IO | None = None) -> str:
    """`json` or `text`; `auto` (the default) is text on a terminal, JSON otherwise."""
    if configured in ("json", "text"):
        return configured
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


_second: list = [None, ""]  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    """`2026-12-02T05:06:12.699Z`; strftime once per second, not once per line."""
    whole = int(created)
    if _second[0] != whole:
        _second[:] = [whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))]
    return f"{_second[1]}.{int((created - whole) * 1000):03d}Z"


def _moment(record: logging.LogRecord) -> str:
    return _timestamp(record.created)


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "requestId"?, ...fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _moment(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["requestId"] = request_id
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """`time level logger message key=value …` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {})
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            fields = {"requestId": request_id, **fields}
        pairs = " ".join(f"{key}={value}" for key, value in fields.items() if value is not None)
        text = f"{_moment(record)} {record.levelname:<7} {record.name} {record.getMessage()}"
        text = f"{text} {pairs}" if pairs else text
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(log_format: str, stream: IO | None = None) -> str:
    """Send shopctl's logs to `stream` in `log_format`; returns the format chosen.

    Sanic's own start-up lines keep its text format (the test harness and operators
    wait for "Worker ready"); unexpected errors are logged by shopctl, in this format.
    Idempotent: a second call replaces the handler the first one added.
    """
    stream = stream or sys.stderr
    chosen = resolve_format(log_format, stream)
    formatter = JsonFormatter() if chosen == "json" else TextFormatter()
    shop = logging.getLogger("shopctl")
    _replace_handler(shop, stream, formatter)
    shop.setLevel(logging.INFO)
    shop.propagate = False
    return chosen


class _Writer:
    """The one thread per process that writes log lines to the stream.

    Lines are formatted where they happen (a transaction's hook, a request) and queued; a
    stream that blocks (a full pipe nobody reads, a slow terminal) then stalls this thread
    only, never a transaction holding row locks or the event loop. A full queue drops the
    line and counts it; the count is reported once the stream drains. Drained at exit.
    """

    def __init__(self):
        self.stream: IO = sys.stderr
        self.lines: queue.Queue[str | None] = queue.Queue(maxsize=QUEUE_LINES)
        self.dropped = 0
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def put(self, text: str) -> None:
        if self.thread is None:
            self._start()
        try:
            self.lines.put_nowait(text)
        except queue.Full:
            self.dropped += 1

    def _start(self) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="shopctl-log", daemon=True)
                self.thread.start()
                atexit.register(self.drain)

    def _run(self) -> None:
        while (text := self.lines.get()) is not None:
            try:
                self.stream.write(text + "\n")
                if self.lines.empty():
                    self.stream.flush()
                if self.dropped:
                    dropped, self.dropped = self.dropped, 0
                    self.stream.write(f"shopctl: {dropped} log line(s) dropped (stream blocked)\n")
            except (OSError, ValueError):  # a closed or broken stream: nothing to tell
                pass

    def drain(self, timeout: float = 5.0) -> None:
        """Write what is queued (at exit); a stream blocked longer than `timeout` loses it."""
        if self.thread is None:
            return
        with contextlib.suppress(queue.Full):
            self.lines.put(None, timeout=timeout)
        self.thread.join(timeout)
        self.thread = None


QUEUE_LINES = 100_000
WRITER = _Writer()


class _QueuedHandler(logging.Handler):
    """Formats in the caller's thread, writes in the writer's."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            WRITER.put(self.format(record))
        except Exception:
            self.handleError(record)


def _replace_handler(logger: logging.Logger, stream: IO, formatter: logging.Formatter) -> None:
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
    WRITER.stream = stream
    handler = _QueuedHandler()
    setattr(handler, _MARK, True)
    handler.setFormatter(formatter)
    logger.addHandler(handler)


def request_line(fields: dict[str, Any]) -> None:
    """One request's line (logger `shopctl.access`) as a LogRecord would make it, at a
    third of the cost (no record, no handler dispatch), as every request writes one."""
    handler = _handler(ACCESS)
    if handler is None or not ACCESS.isEnabledFor(logging.INFO):
        return
    if isinstance(handler.formatter, JsonFormatter):
        head = {"time": _timestamp(time.time()), "level": "info", "logger": ACCESS.name}
        text = json.dumps({**head, "message": "request", **fields}, separators=(",", ":"))
    else:
        record = ACCESS.makeRecord(ACCESS.name, logging.INFO, "", 0, "request", None, None)
        record.fields = fields
        text = handler.format(record)
    WRITER.put(text)


def _handler(logger: logging.Logger) -> logging.Handler | None:
    for candidate in (logger, logger.parent):
        for handler in candidate.handlers if candidate else ():
            if getattr(handler, _MARK, False):
                return handler
    return None


def event(message: str, **fields: Any) -> None:
    """A business event, e.g. `event("order transition", orderId=…, toStatus="PAID")`."""
    if EVENTS.isEnabledFor(logging.INFO):
        clean = {key: value for key, value in fields.items() if value is not None}
        EVENTS.info(message, extra={"fields": {"event": message, **clean}})
