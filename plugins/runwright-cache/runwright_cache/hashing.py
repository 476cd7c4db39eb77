"""Stable digests of Python values, the same in every process.

``stable_digest(value)`` is the sha256 of a canonical encoding: every value is written with
a type tag, dicts in key order, sets and frozensets in the order of their members' digests
(so string hashing randomization never changes a key), and anything else as its cloudpickle
bytes. Two equal plain values (numbers, strings, bytes, None, and lists, tuples, dicts and
sets of them) always get the same digest, in any process and on any machine.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import cloudpickle

_SIMPLE_TAGS: dict[type, bytes] = {str: b"s", bytes: b"b", bytearray: b"B"}


class UnhashableValueError(TypeError):
    """A value can be neither canonically encoded nor pickled, so it cannot be part of a key."""


def _encode(value: Any, out: list[bytes]) -> None:
    kind = type(value)
    if value is None or kind is bool:
        out.append(b"N" if value is None else (b"T" if value else b"F"))
    elif kind is int:
        text = str(value).encode()
        out.append(b"i%d:" % len(text) + text)
    elif kind is float:
        out.append(b"f" + struct.pack(">d", value))
    elif kind in _SIMPLE_TAGS:
        data = value.encode("utf-8", "surrogatepass") if kind is str else bytes(value)
        out.append(_SIMPLE_TAGS[kind] + b"%d:" % len(data) + data)
    elif kind is list or kind is tuple:
        out.append((b"l" if kind is list else b"t") + b"%d:" % len(value))
        for item in value:
            _encode(item, out)
    elif kind is dict:
        out.append(b"d%d:" % len(value))
        if all(type(k) is str for k in value):  # the common case: order by the keys themselves
            for key in sorted(value):
                data = key.encode("utf-8", "surrogatepass")  # what _encode writes for a str, inline
                out.append(b"s%d:" % len(data) + data)
                _encode(value[key], out)
        else:
            for key_digest, item in sorted(((stable_digest(k), v) for k, v in value.items()), key=lambda kv: kv[0]):
                out.append(b"h" + key_digest.encode())
                _encode(item, out)
    elif kind is set or kind is frozenset:
        digests = sorted(stable_digest(item) for item in value)
        out.append((b"S" if kind is set else b"Z") + b"%d:" % len(digests))
        out.extend(d.encode() for d in digests)
    else:
        try:
            data = cloudpickle.dumps(value, protocol=5)
        except Exception as exc:
            raise UnhashableValueError(
                f"Cannot compute a cache key for a {kind.__name__} value: it is not picklable ({exc!r}); "
                "exclude it from the cache policy (e.g. Inputs(exclude=[...]))"
            ) from exc
        name = f"{kind.__module__}.{kind.__qualname__}".encode()
        out.append(b"p" + b"%d:" % len(name) + name + b"%d:" % len(data) + data)


def stable_digest(value: Any) -> str:
    """The hex sha256 of ``value``'s canonical encoding (see the module docstring)."""
    out: list[bytes] = []
    _encode(value, out)
    return hashlib.sha256(b"".join(out)).hexdigest()
