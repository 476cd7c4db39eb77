"""JSON request bodies: strict, bounded parsing and short validation errors.

Every JSON route uses :class:`GuardedRoute`, whose requests parse their body with
:func:`parse_json`:

- strict JSON: ``NaN``, ``Infinity`` and ``-Infinity`` are refused (they are not JSON, and
  nothing stores them);
- bounded work: parsing runs in the event loop and holds the GIL, and its cost grows with
  the number of JSON values, not bytes (60 MB of ``{}`` takes seconds, 20 MB of base64 in
  a few strings takes milliseconds). A body larger than :data:`SCAN_ABOVE_BYTES` is first
  scanned (at memory speed) for an upper bound of its values (commas, ``[`` and ``{``); above
  :data:`MAX_JSON_VALUES` it is refused with a 413 before it is parsed;
- malformed JSON is a 422 naming the position, never a 400 or a 500.

:func:`validation_error_handler` renders a ``RequestValidationError`` as a 422 of short
items (``loc``, ``msg``, ``type``): never the input (which can be the whole body, or hold a
lone surrogate or a NaN that cannot be encoded), at most :data:`MAX_ERRORS` items, each
part cut to a few hundred characters.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic_core import from_json

#: bodies up to this size are parsed without the value scan (their worst case is ~50 ms)
SCAN_ABOVE_BYTES = 256 * 1024
#: most JSON values (an upper bound: commas + ``[`` + ``{``) of a body larger than that
MAX_JSON_VALUES = 500_000
MAX_ERRORS = 20
MAX_PART_CHARS = 200
#: how deep a JSON body may nest (pydantic-core's parser refuses deeper ones)
MAX_JSON_DEPTH = 200


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _invalid(message: str) -> HTTPException:
    return HTTPException(422, [{"loc": ["body"], "msg": message, "type": "json_invalid"}])


def parse_json(body: bytes) -> Any:
    """The body as JSON, or an HTTPException: 413 (too many values), 422 (not strict JSON).

    pydantic-core's parser reads it first (about three times faster than ``json.loads``; it
    refuses NaN and the infinities, lone surrogates, invalid UTF-8 and nesting deeper than
    200 levels). A body nested deeper is refused (422: no answer could hold it again);
    whatever else it refuses is parsed again by ``json.loads``, which decides: the
    accepted bodies and the error messages are exactly those of ``json.loads`` (which also
    reads UTF-16, UTF-32 and a byte-order mark, and lets the models refuse lone surrogates).
    """
    if len(body) > SCAN_ABOVE_BYTES:
        bound = body.count(b",") + body.count(b"[") + body.count(b"{")
        if bound > MAX_JSON_VALUES:
            raise HTTPException(413, f"request body has too many JSON values (more than {MAX_JSON_VALUES:,})")
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            # deeper than any body of the API needs, and than the answers could hold again
            raise _invalid(f"JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise _invalid(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError:
        raise _invalid("the body is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:
        raise _invalid(_short(str(exc) if not isinstance(exc, RecursionError) else "JSON nested too deeply")) from None


class GuardedRequest(Request):
    """A request whose ``json()`` is :func:`parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class GuardedRoute(APIRoute):
    """An ``APIRoute`` whose JSON body is parsed by :func:`parse_json`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            return await handler(GuardedRequest(request.scope, request.receive))

        return guarded


def _short(value: Any) -> str:
    """``value`` as text of at most MAX_PART_CHARS, encodable as UTF-8 (surrogates escaped)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_PART_CHARS:
        text = text[: MAX_PART_CHARS - 1] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def short_errors(errors: Any) -> list[dict[str, Any]]:
    """At most MAX_ERRORS items of ``loc`` (ints and short strings), ``msg`` and ``type``."""
    items = []
    for error in list(errors)[:MAX_ERRORS]:
        loc = [part if isinstance(part, int) else _short(part) for part in error.get("loc", ())][:10]
        items.append({"loc": loc, "msg": _short(error.get("msg", "invalid")), "type": _short(error.get("type", "value_error"))})
    return items


async def validation_error_handler(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    detail = short_errors(errors)
    if len(errors) > MAX_ERRORS:
        detail.append({"loc": ["body"], "msg": f"... and {len(errors) - MAX_ERRORS} more errors", "type": "too_many_errors"})
    return JSONResponse(status_code=422, content={"detail": detail})
