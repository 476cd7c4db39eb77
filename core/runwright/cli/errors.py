"""Errors the CLI reports in one line (user mistakes), as opposed to bugs (tracebacks)."""

from __future__ import annotations


class FlowFileError(Exception):
    """The flow file is missing, does not load, or holds no (or several) flows."""


def user_error_types() -> tuple[type[BaseException], ...]:
    from runwright.config import ConfigError
    from runwright.engine.serialization import SerializationError
    from runwright.flow import FlowValidationError
    from runwright.plugins import PluginError, UnknownNameError

    return (FlowFileError, ConfigError, UnknownNameError, PluginError, FlowValidationError, SerializationError)
