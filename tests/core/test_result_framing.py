"""The frame every pickling result handler writes: what a reader gets back, and what it refuses."""

from __future__ import annotations

import threading

import cloudpickle
import pytest

from runwright.engine.result_framing import (
    HEADER_SIZE,
    frame_header,
    framed_size,
    pickle_result,
    unpickle_framed,
)
from runwright.engine.result_handlers import ResultHandlerError


def _framed(value: object) -> bytes:
    payload = pickle_result(value, "TestHandler")
    return frame_header(payload) + payload


@pytest.mark.parametrize("value", [0, -(2**70), 1.5, 2j, "text é", b"\x00bytes", True, None])
def test_plain_values_pickle_to_the_same_bytes_as_cloudpickle(value: object) -> None:
    assert pickle_result(value, "TestHandler") == cloudpickle.dumps(value, protocol=5)
    assert unpickle_framed(_framed(value), "test://x") == value


def test_functions_and_containers_round_trip_through_cloudpickle() -> None:
    def local(x: int) -> int:
        return x * 3

    restored = unpickle_framed(_framed({"f": local, "items": [1, (2, "3")]}), "test://x")
    assert restored["f"](2) == 6 and restored["items"] == [1, (2, "3")]  # type: ignore[index]


def test_an_unpicklable_value_says_nothing_was_written() -> None:
    with pytest.raises(ResultHandlerError, match="TestHandler cannot store this lock value.*Nothing was written"):
        pickle_result(threading.Lock(), "TestHandler")


def test_framed_size_reads_the_announced_length_only_from_a_result_header() -> None:
    data = _framed("x" * 1000)
    assert framed_size(data) == len(data)
    assert framed_size(data[: HEADER_SIZE - 1]) is None
    assert framed_size(b"\x00" * HEADER_SIZE) is None
