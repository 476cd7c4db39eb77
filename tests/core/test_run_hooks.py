"""Task runs skip the hooks nobody implements, and still call every hook a plugin does."""

from runwright import Flow, task
from runwright.hookspecs import hookimpl


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


def test_a_call_monitor_sees_hooks_that_no_plugin_implements(hook_recorder, plugin_manager):
    assert not plugin_manager.hook_is_idle("runwright_task_run_end")

    @task
    def one():
        return 1

    with Flow("watched") as flow:
        one()
    assert flow.run().is_successful()
    assert [call.name for call in hook_recorder.calls_of("runwright_task_run_end")] == ["runwright_task_run_end"]
