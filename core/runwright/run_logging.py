"""Logging for flow and task runs: the run logger, and the console output of ``[logging]``.

Every logger of runwright lives under the ``runwright`` logger: the runners'
(``runwright.FlowRunner``, ``runwright.TaskRunner``), each task's (``runwright.Task: name``,
what :func:`get_run_logger` returns inside a task) and each flow's (``runwright.Flow:
name``). :func:`configure_logging` applies ``[logging] level`` and ``format`` to that
logger and, when the application configured no logging of its own (the root logger has no
handler), shows its records on standard error. It runs at the start of every flow run, so a
plain script calling ``flow.run()`` shows what its tasks log, as ``runwright run`` does.
An application that configures logging itself (``logging.basicConfig``, a framework, pytest)
keeps its own handlers: runwright then only sets its logger's level.

:func:`stdout_logged` is ``@task(log_stdout=True)``: while the task's body runs, each line
it prints is also a record of its run logger, marked with :data:`STDOUT_RECORD_ATTRIBUTE`
(the console handler skips those: the print itself is already on the console).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ROOT_LOGGER_NAME = "runwright"

#: set (True) on the records made of a task's prints (``log_stdout``)
STDOUT_RECORD_ATTRIBUTE = "runwright_stdout"

#: the configuration last applied: (level, format, the config object it came from)
_applied: tuple[Any, ...] | None = None


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is when a record is emitted, so records
    printed while the CLI's live progress display redirects standard error appear above it
    instead of garbling it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.addFilter(_not_a_print)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _level(value: Any) -> int:
    if isinstance(value, int):
        return value
    level = logging.getLevelName(str(value).upper())
    if not isinstance(level, int):
        from runwright.config import ConfigError

        raise ConfigError(
            f"[logging] level {value!r} is not a logging level; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return level


def configure_logging(level: int | str | None = None) -> logging.Logger:
    """Apply ``[logging]`` (or ``level``, which overrides ``[logging] level``) to the
    ``runwright`` logger; add the console handler unless the application has its own.

    Cheap when nothing changed since the last call (one tuple comparison), so the flow
    runner calls it at the start of every run.
    """
    global _applied
    from runwright.config import get_config

    config = get_config()
    wanted = not logging.getLogger().handlers
    key = (level, id(config), wanted)
    logger = logging.getLogger(ROOT_LOGGER_NAME)
    if _applied == key:
        return logger
    settings = config.get("logging") or {}
    logger.setLevel(_level(level if level is not None else settings.get("level", "INFO")))
    handler = next((h for h in logger.handlers if isinstance(h, _ConsoleHandler)), None)
    if wanted and handler is None:
        handler = _ConsoleHandler()
        logger.addHandler(handler)
    elif not wanted and handler is not None:
        logger.removeHandler(handler)
    if handler is not None:
        handler.setFormatter(logging.Formatter(str(settings.get("format") or logging.BASIC_FORMAT)))
    _applied = key
    return logger


def get_run_logger() -> logging.Logger:
    """The logger of the task run or flow run this is called in.

    Inside a task it is the task's logger (``runwright.Task: <name>``), the same object
    ``runwright.context.get("logger")`` holds, as in the seed engine; in a flow run outside
    any task (a state handler, a plugin hook) the flow's (``runwright.Flow: <name>``).
    Records go wherever ``[logging]`` sends runwright's (and, with the cloud backend, to the
    server).

    :raises RuntimeError: outside any flow or task run.
    """
    from runwright.context import context

    logger = context.get("logger")
    if isinstance(logger, logging.Logger):
        return logger
    flow_name = context.get("flow_name")
    if flow_name is not None:
        return logging.getLogger(f"{ROOT_LOGGER_NAME}.Flow: {flow_name}")
    raise RuntimeError(
        "get_run_logger() was called outside a flow or task run; call it inside a task, or use "
        "logging.getLogger(__name__) in other code"
    )


def _not_a_print(record: logging.LogRecord) -> bool:
    return not getattr(record, STDOUT_RECORD_ATTRIBUTE, False)


_STDOUT_LOGGER_KEY = "_stdout_logger"


class _StdoutTee:
    """``sys.stdout`` while a ``log_stdout`` task runs: writes go to the stream it replaced,
    and, in a thread whose run context names a logger under ``_stdout_logger`` (the timeout
    thread of a task gets a copy of its context), each complete line is logged too."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self._local = threading.local()

    def write(self, text: str) -> int:
        written = self.stream.write(text)
        from runwright.context import context

        logger = context.get(_STDOUT_LOGGER_KEY)
        if logger is not None and text and not getattr(self._local, "busy", False):
            pending = getattr(self._local, "pending", "") + text
            *lines, self._local.pending = pending.split("\n")
            for line in lines:
                self._log(logger, line)
        return written if isinstance(written, int) else len(text)

    def finish_line(self, logger: logging.Logger) -> None:
        """Log what this thread printed after its last newline."""
        pending = getattr(self._local, "pending", "")
        self._local.pending = ""
        if pending:
            self._log(logger, pending)

    def _log(self, logger: logging.Logger, line: str) -> None:
        self._local.busy = True  # a handler writing to sys.stdout must not loop back here
        try:
            logger.info("%s", line.rstrip("\r"), extra={STDOUT_RECORD_ATTRIBUTE: True})
        finally:
            self._local.busy = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


_tee_lock = threading.Lock()
_tee_users = 0


@contextmanager
def stdout_logged(logger: logging.Logger) -> Iterator[None]:
    """Log every line printed in this block (and in its timeout thread) to ``logger`` too;
    the prints still reach the console. ``sys.stdout`` is wrapped while any block is open."""
    global _tee_users
    from runwright.context import context

    with _tee_lock:
        tee = sys.stdout if isinstance(sys.stdout, _StdoutTee) else None
        if tee is None:
            tee = _StdoutTee(sys.stdout)
            sys.stdout = tee  # type: ignore[assignment]
        _tee_users += 1
    try:
        with context(**{_STDOUT_LOGGER_KEY: logger}):
            yield
    finally:
        tee.finish_line(logger)
        with _tee_lock:
            _tee_users -= 1
            if _tee_users == 0 and sys.stdout is tee:
                sys.stdout = tee.stream
