"""CloudResultHandler passes the result-handler contract against a real server."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from runwright.config import temporary_config
from runwright.engine.result_handlers import ResultHandler, ResultHandlerError
from runwright.testing import ResultHandlerContract
from runwright_cloud import CloudResultHandler
from runwright_server.testing import TestServer


class TestCloudResultHandlerContract(ResultHandlerContract):
    @pytest.fixture
    def handler(self, server: TestServer) -> Iterator[ResultHandler]:
        with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
            yield CloudResultHandler()

    @pytest.fixture
    def corrupt(self, server: TestServer) -> Any:
        """Damage a stored result in the server's database (the bytes are opaque to it)."""
        from sqlalchemy import update

        from runwright_server.db import make_engine
        from runwright_server.models import results

        def corrupt(handler: ResultHandler, location: str) -> None:
            key = location.rsplit("/", 1)[-1]
            engine = make_engine(server.db_url)
            try:
                with engine.begin() as connection:
                    done = connection.execute(update(results).where(results.c.id == key).values(data=b"not a result"))
                    assert done.rowcount == 1, location
            finally:
                engine.dispose()

        return corrupt


def test_constructing_and_unpickling_never_touch_the_network() -> None:
    with temporary_config({"cloud.api": "http://127.0.0.1:9", "cloud.auto_start": False}):
        handler = pickle.loads(pickle.dumps(CloudResultHandler("http://127.0.0.1:9")))
        assert handler._client is None
        with pytest.raises(ResultHandlerError, match="127.0.0.1:9"):
            handler.write(1)


def test_another_tenant_cannot_read_a_result(server: TestServer) -> None:
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_a, "cloud.auto_start": False}):
        uri = CloudResultHandler().write("secret")
    with temporary_config({"cloud.api": server.url, "cloud.api_token": server.token_b, "cloud.auto_start": False}):
        with pytest.raises(ResultHandlerError, match="No result at"):
            CloudResultHandler().read(uri)
