"""GCSResultHandler passes runwright's result-handler contract against a real emulator."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

from runwright.testing import ResultHandlerContract
from runwright_gcs import GCSResultHandler
from runwright_gcs.handler import parse_gs_uri


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flip_a_payload_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[-3] ^= 0xFF
    return bytes(damaged)


def _replace_with_a_bare_pickle(data: bytes) -> bytes:
    return pickle.dumps({"a": "not what was written"})


class TestGCSResultHandlerContract(ResultHandlerContract):
    @pytest.fixture
    def handler(self, gcs_handler: GCSResultHandler) -> GCSResultHandler:
        return gcs_handler

    @pytest.fixture(params=[_truncate, _flip_a_payload_byte, _replace_with_a_bare_pickle], ids=lambda f: f.__name__.strip("_"))
    def corrupt(self, request: pytest.FixtureRequest, storage_client: Any) -> Callable[[GCSResultHandler, str], None]:
        damage = request.param

        def corrupt(handler: GCSResultHandler, location: str) -> None:
            bucket, key = parse_gs_uri(location)
            blob = storage_client.bucket(bucket).blob(key)
            blob.upload_from_string(damage(blob.download_as_bytes()))  # overwrite, no precondition

        return corrupt
