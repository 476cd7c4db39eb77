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


def _documented_executor_class() -> type:
    """The example executor of docs/writing-plugins.md, executed from the page itself."""
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "writing-plugins.md").read_text()
    section = page.split("## Writing an executor", 1)[1]
    source = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, object] = {}
    exec(compile(source, "docs/writing-plugins.md", "exec"), namespace)
    return namespace["EagerFutures"]  # type: ignore[return-value]


class TestTheDocumentedExampleExecutor(ExecutorContract):
    """The executor shown in docs/writing-plugins.md keeps the contract it explains."""

    @pytest.fixture
    def executor(self) -> object:
        return _documented_executor_class()()
