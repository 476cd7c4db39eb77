"""Task runs skip the hooks nobody implements, and still call every hook a plugin does."""

import logging

import pytest

from runwright import Flow, task
from runwright.hookspecs import for_tasks, hookimpl


class _Ends:
    def __init__(self) -> None:
        self.ended: list[str] = []

    @hookimpl
    def runwright_task_run_end(self, task, state) -> None:
        self.ended.append(f"{task.name}:{type(state).__name__}")


class _Changes:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, str]] = []

    @hookimpl
    def runwright_task_state_change(self, task, old_state, new_state) -> None:
        self.changes.append((task.name, type(old_state).__name__, type(new_state).__name__))


def test_only_the_implemented_hooks_are_called_for_every_transition(plugin_manager):
    changes = _Changes()
    plugin_manager.register(changes, name="changes")
    assert plugin_manager.hook_is_idle("runwright_task_run_end")
    assert not plugin_manager.hook_is_idle("runwright_task_state_change")

    @task
    def one():
        return 1

    @task
    def inc(x):
        return x + 1

    with Flow("hooks") as flow:
        inc(inc(one()))
    assert flow.run().is_successful()
    assert changes.changes == [
        (name, old, new) for name in ("one", "inc", "inc") for old, new in (("Pending", "Running"), ("Running", "Success"))
    ]


def test_a_plugin_registered_during_a_run_is_called_from_the_next_task_run_on(plugin_manager):
    ends = _Ends()

    @task
    def first():
        plugin_manager.register(ends, name="ends")
        return 1

    @task
    def second(x):
        return x

    with Flow("late") as flow:
        second(first())
    assert flow.run().is_successful()
    assert ends.ended == ["second:Success"]


def test_a_plugin_registered_during_a_run_waits_for_the_next_task_run_whatever_else_is_installed(plugin_manager):
    changes = _Changes()  # another plugin implementing a task-run hook: the plugin set is checked mid-run
    plugin_manager.register(changes, name="changes")
    ends = _Ends()

    @task
    def first():
        plugin_manager.register(ends, name="ends")
        return 1

    @task
    def second(x):
        return x

    with Flow("late-beside-another") as flow:
        second(first())
    assert flow.run().is_successful()
    assert ends.ended == ["second:Success"]
    assert [c for c in changes.changes if c[0] == "first"] == [("first", "Pending", "Running"), ("first", "Running", "Success")]


def test_a_plugin_unregistered_during_a_run_still_sees_that_run_end_and_no_later_one(plugin_manager):
    ends = _Ends()
    plugin_manager.register(ends, name="ends")

    @task
    def first():
        plugin_manager.unregister(name="ends")
        return 1

    @task
    def second(x):
        return x

    with Flow("leaving") as flow:
        second(first())
    assert flow.run().is_successful()
    assert ends.ended == ["first:Success"]


def test_a_call_monitor_sees_hooks_that_no_plugin_implements(hook_recorder, plugin_manager):
    assert not plugin_manager.hook_is_idle("runwright_task_run_end")

    @task
    def one():
        return 1

    with Flow("watched") as flow:
        one()
    assert flow.run().is_successful()
    assert [call.name for call in hook_recorder.calls_of("runwright_task_run_end")] == ["runwright_task_run_end"]


# -- for_tasks: a task-run hook implementation scoped to some tasks ------------------------
class _Tagged:
    """Watches only the tasks tagged "watched", for all three task-run hooks."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    @hookimpl
    @for_tasks(lambda task: "watched" in task.tags)
    def runwright_task_run_initialize(self, task) -> None:
        self.seen.append((task.name, "initialize"))

    @hookimpl
    @for_tasks(lambda task: "watched" in task.tags)
    def runwright_task_state_change(self, task, old_state, new_state) -> None:
        self.seen.append((task.name, f"{type(old_state).__name__}->{type(new_state).__name__}"))

    @hookimpl
    @for_tasks(lambda task: "watched" in task.tags)
    def runwright_task_run_end(self, task, state) -> None:
        self.seen.append((task.name, f"end:{type(state).__name__}"))


def _three_task_flow() -> Flow:
    @task
    def one():
        return 1

    @task(tags=["watched"])
    def inc(x):
        return x + 1

    @task
    def last(x):
        return x

    with Flow("scoped") as flow:
        last(inc(one()))
    return flow


def test_a_scoped_implementation_sees_every_hook_of_the_tasks_in_its_scope_and_no_other(plugin_manager):
    tagged, changes = _Tagged(), _Changes()
    plugin_manager.register(tagged, name="tagged")
    plugin_manager.register(changes, name="changes")
    assert _three_task_flow().run().is_successful()
    assert tagged.seen == [
        ("inc", "initialize"),
        ("inc", "Pending->Running"),
        ("inc", "Running->Success"),
        ("inc", "end:Success"),
    ]
    # an implementation without a scope still sees every transition of every task
    assert changes.changes == [
        (name, old, new) for name in ("one", "inc", "last") for old, new in (("Pending", "Running"), ("Running", "Success"))
    ]


def test_a_scoped_implementation_sees_each_mapped_child_of_a_task_in_its_scope(plugin_manager):
    tagged = _Tagged()
    plugin_manager.register(tagged, name="tagged")

    @task(tags=["watched"])
    def double(x):
        return 2 * x

    with Flow("scoped map") as flow:
        double.map([1, 2])
    assert flow.run().is_successful()
    ends = [event for name, event in tagged.seen if event.startswith("end:")]
    assert ends == ["end:Success", "end:Success", "end:Mapped"]


def test_a_call_monitor_sees_the_calls_of_tasks_outside_every_scope(hook_recorder, plugin_manager):
    plugin_manager.register(_Tagged(), name="tagged")

    @task
    def one():
        return 1

    with Flow("monitored") as flow:
        one()
    assert flow.run().is_successful()
    changes = hook_recorder.calls_of("runwright_task_state_change")
    assert [type(call.kwargs["new_state"]).__name__ for call in changes] == ["Running", "Success"]


def test_a_scope_that_raises_is_logged_and_its_implementation_called(plugin_manager, caplog):
    class Broken:
        def __init__(self) -> None:
            self.ends: list[str] = []

        @hookimpl
        @for_tasks(lambda task: task.no_such_option)
        def runwright_task_run_end(self, task, state) -> None:
            self.ends.append(task.name)

    broken = Broken()
    plugin_manager.register(broken, name="broken")

    @task
    def one():
        return 1

    with Flow("broken scope") as flow:
        one()
    with caplog.at_level(logging.ERROR, logger="runwright.plugins"):
        assert flow.run().is_successful()
    assert broken.ends == ["one"]
    assert "Plugin 'broken': the for_tasks() scope of its runwright_task_run_end raised for task 'one'" in caplog.text


def test_for_tasks_refuses_hooks_that_are_not_task_run_hooks():
    with pytest.raises(TypeError, match="for_tasks\\(\\) scopes task-run hook implementations"):

        @for_tasks(lambda task: True)
        def runwright_flow_state_change(flow, old_state, new_state):
            pass

    with pytest.raises(TypeError, match="takes a function of the task"):
        for_tasks("cache_for")  # type: ignore[arg-type]
