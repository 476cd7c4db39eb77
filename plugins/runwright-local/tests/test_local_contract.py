"""LocalResultHandler passes runwright's result-handler contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from runwright.testing import ResultHandlerContract
from runwright_local import LocalResultHandler
from runwright_local.handler import path_from_location


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_payload_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))


def _replace_with_a_bare_pickle(path: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps({"a": "not what was written"}))


class TestLocalResultHandlerContract(ResultHandlerContract):
    @pytest.fixture
    def handler(self, tmp_path: Path) -> LocalResultHandler:
        return LocalResultHandler(dir=tmp_path / "contract")

    @pytest.fixture(params=[_truncate, _flip_a_payload_byte, _replace_with_a_bare_pickle], ids=lambda f: f.__name__.strip("_"))
    def corrupt(self, request: pytest.FixtureRequest) -> Callable[[LocalResultHandler, str], None]:
        damage = request.param

        def corrupt(handler: LocalResultHandler, location: str) -> None:
            damage(path_from_location(location))

        return corrupt
