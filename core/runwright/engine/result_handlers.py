"""Result handlers write a value somewhere and read it back from the location they return.

A handler class is registered under a short name (``json``, ``local``, ``gcs``, ``cloud``)
through the ``runwright_register_result_handlers`` hook, which lets configuration name it
(``[engine] result_handler = "local"``) and lets any process deserialize it.

Writing a handler:

* subclass :class:`ResultHandler`, implement ``write(value) -> str`` and ``read(location)``;
* keep constructor arguments as public attributes of the same name: they are what
  ``serialize()`` sends and what ``deserialize()`` passes back to ``__init__``;
* never touch the network in ``__init__``: build clients lazily (deserializing a state must
  not need credentials);
* set ``uri_schemes`` to the schemes of the locations you return, so a process that knows
  only a URI can read it (``runwright.read_uri``).
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar

_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\Z")


def validate_prefix(prefix: str | None) -> str:
    """``prefix`` normalised to ``a/b`` form ('' for none); ValueError if it is unsafe.

    Storage keys built from user input (a configured prefix, a task name, a template) must
    never escape a handler's storage root. Each ``/``-separated segment must start with a
    letter, digit or underscore and hold only letters, digits, ``.``, ``_`` and ``-``: this
    rules out ``..``, absolute paths, backslashes, hidden names and empty segments.
    """
    if not prefix:
        return ""
    segments = prefix.rstrip("/").split("/")
    bad = [segment for segment in segments if not _SEGMENT.match(segment)]
    if bad:
        raise ValueError(
            f"Invalid result prefix {prefix!r}: segment {bad[0]!r} is not allowed. Use "
            "'/'-separated names of letters, digits, '.', '_' and '-' that do not start with "
            "'.' (no '..', no leading '/')"
        )
    return "/".join(segments)


class ResultHandlerError(Exception):
    """A result could not be written or read; the message names the location and the cause."""


class ResultHandler(ABC):
    """Base class of result handlers."""

    #: The name the handler is registered under (set by the registration hook when empty).
    handler_name: ClassVar[str] = ""
    #: URI schemes of the locations this handler returns, e.g. ``("file",)``.
    uri_schemes: ClassVar[tuple[str, ...]] = ()

    @property
    def logger(self) -> logging.Logger:
        return logging.getLogger(f"runwright.{type(self).__name__}")

    @abstractmethod
    def write(self, result: Any) -> str:
        """Store ``result``; return the location that :meth:`read` accepts."""

    @abstractmethod
    def read(self, loc: str) -> Any:
        """Return the value stored at ``loc``; raise :class:`ResultHandlerError` when it cannot."""

    @classmethod
    def from_uri(cls, uri: str) -> ResultHandler:
        """A handler able to read ``uri`` (used when only the URI is known)."""
        return cls()

    def serialize_fields(self) -> dict[str, Any]:
        """The constructor arguments, as JSON-compatible values."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.serialize_fields() == other.serialize_fields()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(type(self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.serialize_fields().items())
        return f"{type(self).__name__}({fields})"


class JSONResultHandler(ResultHandler):
    """Stores a JSON-serializable value as its JSON text (the location *is* the value)."""

    handler_name = "json"

    def write(self, result: Any) -> str:
        try:
            return json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise ResultHandlerError(
                f"JSONResultHandler cannot store {type(result).__name__} values ({exc}); "
                "use a pickling handler such as 'local' for this task"
            ) from exc

    def read(self, loc: str) -> Any:
        try:
            return json.loads(loc)
        except (TypeError, ValueError) as exc:
            raise ResultHandlerError(f"JSONResultHandler could not parse {loc!r}: {exc}") from exc
