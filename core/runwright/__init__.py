"""runwright: a fast, pluggy-based workflow engine.

    from runwright import Flow, Parameter, task

    @task
    def double(x):
        return 2 * x

    with Flow("example") as flow:
        double(Parameter("x"))

    state = flow.run(x=21)
"""

from runwright import triggers
from runwright.context import context
from runwright.engine import signals
from runwright.engine.flow_runner import FlowRunner
from runwright.engine.result import NoResult, Result, SafeResult
from runwright.engine.result_handlers import JSONResultHandler, ResultHandler
from runwright.engine.task_runner import TaskRunner
from runwright.flow import Flow
from runwright.hookspecs import for_tasks, hookimpl
from runwright.parameter import Parameter
from runwright.run_logging import get_run_logger
from runwright.task import FunctionTask, Task, task, unmapped

__version__ = "0.1.0"

__all__ = [
    "Flow",
    "FlowRunner",
    "FunctionTask",
    "JSONResultHandler",
    "NoResult",
    "Parameter",
    "Result",
    "ResultHandler",
    "SafeResult",
    "Task",
    "TaskRunner",
    "context",
    "get_run_logger",
    "for_tasks",
    "hookimpl",
    "read_uri",
    "signals",
    "task",
    "triggers",
    "unmapped",
]


def read_uri(uri: str) -> object:
    """Read a stored result knowing only its URI (``file://...``, ``gs://bucket/key``, ...)."""
    from runwright.plugins import get_plugin_manager

    return get_plugin_manager().results.read(uri)
