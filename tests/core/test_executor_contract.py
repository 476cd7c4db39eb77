"""The core's executors pass the executor contract of ``runwright.testing``."""

import pytest

from runwright.engine.executors import LocalExecutor, ThreadExecutor
from runwright.testing import ExecutorContract


class TestLocalExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> LocalExecutor:
        return LocalExecutor()


class TestThreadExecutor(ExecutorContract):
    @pytest.fixture
    def executor(self) -> ThreadExecutor:
        return ThreadExecutor(max_workers=4)


class TestThreadExecutorWithOneThread(ExecutorContract):
    """One pool thread: work is dispatched only when it can run, so nothing deadlocks."""

    @pytest.fixture
    def executor(self) -> ThreadExecutor:
        return ThreadExecutor(max_workers=1)
