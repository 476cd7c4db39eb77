"""Backends: registered by name, selected per run, called by the runners before the hooks."""

from __future__ import annotations

import ast
import datetime
from pathlib import Path

import pytest

from runwright import Flow, hookimpl, task
from runwright.backends import Backend, active_backend
from runwright.config import temporary_config
from runwright.engine.signals import ENDRUN
from runwright.engine.state import Cached, ClientFailed, Running
from runwright.plugins import UnknownNameError

CORE = Path(__file__).resolve().parents[2] / "core" / "runwright"


class Recording(Backend):
    """Records what the runners tell it, in one list shared with the test's hooks."""

    name = "recording"
    records_runs = True

    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def initialize_flow_run(self, runner, flow, setup):
        self.calls.append("backend: flow initialize")

    def flow_state_change(self, runner, flow, old_state, new_state):
        self.calls.append(f"backend: flow {type(new_state).__name__}")

    def flow_run_end(self, runner, flow, state):
        self.calls.append("backend: flow end")

    def initialize_task_run(self, runner, task, setup):
        self.calls.append(f"backend: {task.name} initialize")

    def task_state_change(self, runner, task, old_state, new_state):
        self.calls.append(f"backend: {task.name} {type(new_state).__name__}")

    def task_run_end(self, runner, task, state):
        self.calls.append(f"backend: {task.name} end")


class Registers:
    def __init__(self, *backends: Backend) -> None:
        self.backends = backends

    @hookimpl
    def runwright_register_backends(self, register):
        for backend in self.backends:
            register(backend)


class Hooks:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    @hookimpl
    def runwright_flow_run_initialize(self):
        self.calls.append("hook: flow initialize")

    @hookimpl
    def runwright_flow_state_change(self, new_state):
        self.calls.append(f"hook: flow {type(new_state).__name__}")

    @hookimpl
    def runwright_flow_run_end(self):
        self.calls.append("hook: flow end")

    @hookimpl
    def runwright_task_run_initialize(self, task):
        self.calls.append(f"hook: {task.name} initialize")

    @hookimpl
    def runwright_task_state_change(self, task, new_state):
        self.calls.append(f"hook: {task.name} {type(new_state).__name__}")

    @hookimpl
    def runwright_task_run_end(self, task):
        self.calls.append(f"hook: {task.name} end")


@task
def hello():
    return "hi"


def test_the_runners_call_the_active_backend_before_the_hooks_of_the_same_moment(plugin_manager):
    calls: list[str] = []
    plugin_manager.register(Registers(Recording(calls)), name="recording-backend")
    plugin_manager.register(Hooks(calls), name="hooks")
    with Flow("f") as flow:
        hello()
    with temporary_config({"engine.backend": "recording"}):
        assert flow.run().is_successful()
    pairs = list(zip(calls[::2], calls[1::2], strict=True))
    assert pairs == [
        ("backend: flow initialize", "hook: flow initialize"),
        ("backend: flow Running", "hook: flow Running"),
        ("backend: hello initialize", "hook: hello initialize"),
        ("backend: hello Running", "hook: hello Running"),
        ("backend: hello Success", "hook: hello Success"),
        ("backend: hello end", "hook: hello end"),
        ("backend: flow Success", "hook: flow Success"),
        ("backend: flow end", "hook: flow end"),
    ]


def test_a_local_run_never_calls_a_backend_that_is_not_selected(plugin_manager):
    calls: list[str] = []
    plugin_manager.register(Registers(Recording(calls)), name="recording-backend")
    with Flow("f") as flow:
        hello()
    assert flow.run().is_successful()
    assert calls == []


def test_a_state_the_backend_refuses_ends_the_task_run_and_no_hook_sees_it(plugin_manager):
    calls: list[str] = []

    class Refusing(Recording):
        name = "refusing"

        def task_state_change(self, runner, task, old_state, new_state):
            if isinstance(new_state, Running):
                raise ENDRUN(ClientFailed("refused on purpose", state=new_state))

    plugin_manager.register(Registers(Refusing(calls)), name="refusing-backend")
    plugin_manager.register(Hooks(calls), name="hooks")
    with Flow("f") as flow:
        hello()
    state = flow.run(context={"backend": "refusing"})
    task_state = state.result[next(iter(flow.tasks))]
    assert isinstance(task_state, ClientFailed) and task_state.message == "refused on purpose"
    assert "hook: hello Running" not in calls


def test_a_backend_raising_fails_the_run_with_a_message_naming_the_backend(plugin_manager):
    class Broken(Recording):
        name = "broken"

        def task_state_change(self, runner, task, old_state, new_state):
            raise RuntimeError("bug")

    plugin_manager.register(Registers(Broken([])), name="broken-backend")
    with Flow("f") as flow:
        hello()
    state = flow.run(context={"backend": "broken"})
    assert state.is_failed()
    assert "Backend 'broken' raised in task_state_change: RuntimeError('bug')" in state.result[next(iter(flow.tasks))].message


def test_a_backend_answering_cache_checks_goes_first_and_the_hook_is_asked_only_on_a_miss(plugin_manager):
    asked: list[str] = []

    class Answering(Backend):
        name = "answering"
        records_runs = True
        answers_cache_checks = True

        def check_task_is_cached(self, runner, task, state, inputs, parameters):
            asked.append(f"backend {task.name}")
            if task.name == "cached_by_backend":
                return Cached(result=41, cached_result_expiration=None)
            return None

    class CacheHook:
        @hookimpl
        def runwright_check_task_is_cached(self, task):
            asked.append(f"hook {task.name}")
            assert active_backend().name == "answering"  # what a cache plugin would ask
            return None

    plugin_manager.register(Registers(Answering()), name="answering-backend")
    plugin_manager.register(CacheHook(), name="cache-hook")

    @task(cache_for=datetime.timedelta(hours=1))
    def cached_by_backend():
        return 1

    @task(cache_for=datetime.timedelta(hours=1))
    def missed():
        return 2

    with Flow("f") as flow:
        cached_by_backend()
        missed()
    state = flow.run(context={"backend": "answering"})
    values = {t.name: s.result for t, s in state.result.items()}
    assert values == {"cached_by_backend": 41, "missed": 2}
    assert sorted(asked) == ["backend cached_by_backend", "backend missed", "hook missed"]


def test_an_unknown_backend_fails_the_flow_run_naming_the_installed_ones(plugin_manager):
    with Flow("f") as flow:
        hello()
    state = flow.run(context={"backend": "nope"})
    assert state.is_failed() and "Backend 'nope' is not installed (installed: " in state.message
    with pytest.raises(UnknownNameError, match="Backend 'nope' is not installed"):
        plugin_manager.backend("nope")


def test_a_backend_name_registered_twice_is_an_error_naming_both(plugin_manager):
    class One(Backend):
        name = "twice"

    class Two(Backend):
        name = "twice"

    plugin_manager.register(Registers(One(), Two()), name="twice-backends")
    with pytest.raises(Exception, match="Backend name 'twice' is registered twice"):
        plugin_manager.backend("twice")


def test_parameters_are_checkpointed_only_for_a_backend_that_asks(plugin_manager):
    from runwright import Parameter

    written: list[object] = []

    class Writes:
        @hookimpl(tryfirst=True)
        def runwright_result_write(self, value):
            written.append(value)
            return "memory://x"

    class Resuming(Backend):
        name = "resuming"
        checkpoints_parameters = True

    plugin_manager.register(Registers(Resuming()), name="resuming-backend")
    plugin_manager.register(Writes(), name="writes")
    flow = Flow("f")
    flow.add_task(Parameter("p", default=7))
    assert flow.run().is_successful() and written == []
    assert flow.run(context={"backend": "resuming"}).is_successful() and written == [7]


def _string_constants(tree: ast.AST) -> list[str]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_code_in_the_core_names_a_backend_plugin():
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        for value in _string_constants(ast.parse(path.read_text(encoding="utf-8"))):
            if "cloud" in value.replace("cloudpickle", "").lower():
                offenders.append(f"{path.relative_to(CORE)}: {value!r}")
    config = (CORE / "config.toml").read_text(encoding="utf-8")
    offenders += [f"config.toml: {line}" for line in config.splitlines() if "cloud" in line.lower()]
    assert offenders == []
