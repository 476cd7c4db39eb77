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
"""

from __future__ import annotations

import logging
import sys
from typing import Any

ROOT_LOGGER_NAME = "runwright"

#: the configuration last applied: (level, format, the config object it came from)
_applied: tuple[Any, ...] | None = None


class _ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to whatever ``sys.stderr`` is when a record is emitted, so records
    printed while the CLI's live progress display redirects standard error appear above it
    instead of garbling it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

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
