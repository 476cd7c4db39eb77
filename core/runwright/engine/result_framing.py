"""The frame around a pickled result (a file, an object, a blob): a fixed header, then the payload.

Shared by every pickling result handler (runwright-local, runwright-gcs, runwright-cloud), so
a result copied between a disk, a bucket and the server stays readable.

A stored result is ``HEADER + payload`` where the 24-byte header is::

    magic    8 bytes  b"\\x89RWR\\r\\n\\x1a\\n"  (a non-ASCII first byte and CR/LF/EOF bytes
                                               reveal text-mode or truncating copies)
    version  uint16   FORMAT_VERSION
    flags    uint16   reserved, 0
    length   uint64   payload length in bytes
    crc32    uint32   zlib.crc32 of the payload

all big-endian. The header lets a reader tell "a complete result written by runwright"
apart from a truncated file, a file damaged after the fact, or something that is not a
result at all, *before* handing any byte to the unpickler.
"""

from __future__ import annotations

import pickle
import struct
import zlib

import cloudpickle  # type: ignore[import-untyped]

from runwright.engine.result_handlers import ResultHandlerError

MAGIC = b"\x89RWR\r\n\x1a\n"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHHQI")
HEADER_SIZE = _HEADER.size


class FrameError(ValueError):
    """The bytes are not a complete, intact result frame; the message says what is wrong."""


def frame_header(payload: bytes) -> bytes:
    """The header to write in front of ``payload``."""
    return _HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(payload), zlib.crc32(payload))


def framed_size(data: bytes | memoryview) -> int | None:
    """The total size (header + payload) announced by the header at the start of ``data``,
    or None when ``data`` does not start with a result header (too short, or not one)."""
    if len(data) < HEADER_SIZE:
        return None
    magic, _version, _flags, length, _crc = _HEADER.unpack_from(data)
    return HEADER_SIZE + length if magic == MAGIC else None


def unframe(data: bytes | memoryview) -> memoryview:
    """The payload inside ``data``, after checking magic, version, length and checksum."""
    view = memoryview(data)
    if len(view) < HEADER_SIZE:
        raise FrameError(f"it is {len(view)} bytes long, shorter than the {HEADER_SIZE}-byte header (truncated?)")
    magic, version, _flags, length, crc = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise FrameError("it does not start with the runwright result header (not a runwright result, or damaged)")
    if version != FORMAT_VERSION:
        raise FrameError(
            f"it uses result format version {version}, this runwright reads version "
            f"{FORMAT_VERSION} (upgrade runwright)"
        )
    payload = view[HEADER_SIZE:]
    if len(payload) != length:
        raise FrameError(f"the header announces {length} payload bytes but {len(payload)} are present (truncated?)")
    if zlib.crc32(payload) != crc:
        raise FrameError("the payload checksum does not match (the data was damaged after it was written)")
    return payload


#: Types whose pickle is the same bytes from ``pickle`` and ``cloudpickle``; the plain
#: pickler skips cloudpickle's set-up (about 1.7 µs of a small result's write).
_PLAIN_PICKLE_TYPES = frozenset({int, float, complex, str, bytes, bool, type(None)})


def pickle_result(value: object, handler: str) -> bytes:
    """``value`` cloudpickled, or a ResultHandlerError saying nothing was written."""
    if type(value) in _PLAIN_PICKLE_TYPES:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
    except Exception as exc:
        raise ResultHandlerError(
            f"{handler} cannot store this {type(value).__name__} value: it is not picklable ({exc!r}). "
            "Nothing was written. Return a picklable value from the task, or turn checkpointing off "
            "for it (or give it another handler)."
        ) from exc


def unpickle_framed(data: bytes | memoryview, location: str, what: str = "result at") -> object:
    """The value in a framed result read from ``location``; a ResultHandlerError naming the
    location when the frame is damaged or the value cannot be unpickled here."""
    try:
        payload = unframe(data)
    except FrameError as exc:
        raise ResultHandlerError(
            f"The {what} {location} is not a valid result: {exc}. Re-run the task that produced it."
        ) from None
    try:
        return cloudpickle.loads(payload)
    except Exception as exc:
        raise ResultHandlerError(
            f"The result at {location} is intact but could not be unpickled ({exc!r}); this process "
            "probably lacks a module (or version of it) that the value needs."
        ) from exc
