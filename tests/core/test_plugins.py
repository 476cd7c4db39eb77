"""The plugin host: hook call order, error attribution, disabling and autoloading."""

import datetime
import os
import subprocess
import sys
import textwrap

import pytest

from runwright import Flow, hookimpl, task
from runwright.engine import state as st
from runwright.engine.signals import ENDRUN
from runwright.plugins import BUILTIN_PLUGINS, build_plugin_manager


@task
def one():
    return 1


@task
def inc(x):
    return x + 1


def test_built_in_defaults_are_named_plugins(plugin_manager):
    names = {info.name for info in plugin_manager.plugin_infos()}
    assert set(BUILTIN_PLUGINS) <= names


def test_flow_run_hook_call_order(hook_recorder):
    with Flow("order") as flow:
        inc(one())
    flow.run()
    names = [n for n in hook_recorder.names() if not n.startswith("runwright_register")]
    assert names[0] == "runwright_flow_run_initialize"
    assert names[1] == "runwright_flow_state_change"  # Pending -> Running
    assert names[-2] == "runwright_flow_state_change"  # Running -> Success
    assert names[-1] == "runwright_flow_run_end"
    per_task = names[2:-2]
    assert per_task == [
        "runwright_task_run_initialize",
        "runwright_task_state_change",
        "runwright_task_state_change",
        "runwright_task_run_end",
    ] * 2


def test_state_change_hooks_see_old_and_new_states(plugin_manager):
    seen = []

    class Watcher:
        @hookimpl
        def runwright_task_state_change(self, task, old_state, new_state):
            seen.append((task.name, type(old_state).__name__, type(new_state).__name__))

    plugin_manager.register(Watcher(), name="watcher")
    with Flow("f") as flow:
        one()
    flow.run()
    assert seen == [("one", "Pending", "Running"), ("one", "Running", "Success")]


def test_initialize_hook_can_change_the_run(plugin_manager):
    class Loader:
        @hookimpl
        def runwright_flow_run_initialize(self, flow, setup):
            setup.parameters["extra"] = "from-plugin"

        @hookimpl
        def runwright_task_run_initialize(self, task, setup):
            setup.context["injected"] = task.name

    plugin_manager.register(Loader(), name="loader")

    @task
    def read():
        from runwright import context

        return context.parameters["extra"], context.injected

    with Flow("f") as flow:
        r = read()
    assert flow.run().result[r].result == ("from-plugin", "read")


def test_a_plugin_raising_in_a_state_hook_fails_the_run_naming_the_plugin(plugin_manager):
    class Broken:
        @hookimpl
        def runwright_task_state_change(self, new_state):
            if new_state.is_running():
                raise RuntimeError("reporting went wrong")

    plugin_manager.register(Broken(), name="broken-reporter")
    with Flow("f") as flow:
        t = one()
    state = flow.run()
    assert state.is_failed()
    assert "broken-reporter" in state.result[t].message
    assert "runwright_task_state_change" in state.result[t].message


def test_a_plugin_raising_in_flow_initialize_fails_the_flow_naming_it(plugin_manager):
    class Broken:
        @hookimpl
        def runwright_flow_run_initialize(self):
            raise KeyError("missing")

    plugin_manager.register(Broken(), name="broken-init")
    with Flow("f") as flow:
        one()
    state = flow.run()
    assert state.is_failed() and "broken-init" in state.message


def test_endrun_from_a_plugin_stops_the_task_with_its_state(plugin_manager):
    class Veto:
        @hookimpl
        def runwright_task_state_change(self, new_state):
            if new_state.is_running():
                raise ENDRUN(st.ClientFailed(state=new_state))

    plugin_manager.register(Veto(), name="veto")
    with Flow("f") as flow:
        t = one()
    state = flow.run()
    assert isinstance(state.result[t], st.ClientFailed) and state.is_running()


def test_a_broken_cache_plugin_is_a_miss_and_the_task_runs(plugin_manager, caplog):
    class BrokenCache:
        @hookimpl
        def runwright_check_task_is_cached(self):
            raise OSError("disk gone")

    plugin_manager.register(BrokenCache(), name="broken-cache")

    @task(cache_for=datetime.timedelta(minutes=1))
    def cached():
        return "ran"

    with Flow("f") as flow:
        c = cached()
    state = flow.run()
    assert state.result[c].result == "ran"
    assert "broken-cache" in caplog.text


def test_cache_hook_hit_skips_the_task(plugin_manager):
    ran = []

    class Cache:
        @hookimpl
        def runwright_check_task_is_cached(self, task, inputs):
            return st.Cached(result=f"cached for {inputs}")

    plugin_manager.register(Cache(), name="test-cache")

    @task(cache_for=datetime.timedelta(minutes=1))
    def expensive(x):
        ran.append(x)
        return "computed"

    with Flow("f") as flow:
        e = expensive(1)
    state = flow.run()
    assert ran == [] and isinstance(state.result[e], st.Cached)
    assert state.result[e].result == "cached for {'x': 1}"


def test_cache_hook_is_not_called_without_cache_for(hook_recorder):
    with Flow("f") as flow:
        one()
    flow.run()
    assert "runwright_check_task_is_cached" not in hook_recorder.names()


def test_result_hooks_write_and_read(plugin_manager):
    from runwright import JSONResultHandler, SafeResult, read_uri
    from runwright.engine.result import Result

    writes = []

    class Audit:
        @hookimpl
        def runwright_result_write(self, value, handler):
            writes.append(value)  # observe, then let the default write

        @hookimpl
        def runwright_result_read(self, location, handler):
            if location.startswith("memo://"):
                return Result(location[len("memo://"):])
            return None

    plugin_manager.register(Audit(), name="audit")

    @task(checkpoint=True, result_handler=JSONResultHandler())
    def produce():
        return {"a": 1}

    with Flow("f") as flow:
        p = produce()
    state = flow.run().result[p]
    assert writes == [{"a": 1}]
    assert isinstance(state._result.safe_value, SafeResult)
    assert read_uri("memo://hello") == "hello"


def test_unknown_uri_scheme_names_the_fix(plugin_manager):
    from runwright import read_uri
    from runwright.plugins import UnknownNameError

    with pytest.raises(UnknownNameError, match="runwright-gcs for gs://"):
        read_uri("zz://bucket/key")


def test_registration_hooks_make_names_usable(plugin_manager):
    from runwright import ResultHandler
    from runwright.engine.executors import LocalExecutor

    class MemoryHandler(ResultHandler):
        store: dict = {}

        def write(self, result):
            key = str(len(self.store))
            self.store[key] = result
            return key

        def read(self, loc):
            return self.store[loc]

    class MyExecutor(LocalExecutor):
        pass

    class Registrar:
        @hookimpl
        def runwright_register_result_handlers(self, register):
            register(MemoryHandler, name="memory")

        @hookimpl
        def runwright_register_executors(self, register):
            register("mine", MyExecutor)

        @hookimpl
        def runwright_register_cache_validators(self, register):
            register("always", lambda state, inputs, parameters: True)

    plugin_manager.register(Registrar(), name="registrar")

    @task(checkpoint=True, result_handler="memory", cache_for=datetime.timedelta(1), cache_validator="always")
    def produce():
        return 5

    with Flow("f") as flow:
        p = produce()
    state = flow.run(executor="mine").result[p]
    data = state.serialize()
    assert data["_result"]["result_handler"] == {"type": "memory"}
    assert st.State.deserialize(data)._result.to_result().value == 5
    assert produce.cache_validator(None, None, None) is True


def test_unknown_result_handler_name_lists_installed_ones(plugin_manager):
    @task(checkpoint=True, result_handler="s3")
    def produce():
        return 1

    with Flow("f") as flow:
        p = produce()
    message = flow.run().result[p].message
    assert "Result handler 's3' is not installed" in message and "json" in message


def test_check_pending_catches_misspelled_hooks():
    from pluggy import PluginValidationError

    class Typo:
        @hookimpl
        def runwright_task_state_chnage(self):
            pass

    pm = build_plugin_manager(autoload=False)
    pm.register(Typo(), name="typo")
    with pytest.raises(PluginValidationError):
        pm.check_pending()


def test_disable_list_blocks_builtins_and_entry_points(config_file):
    from runwright.config import reload_config

    config_file.write_text('[plugins]\ndisable = ["runwright.executors", "cloud", "runwright-dask"]\n')
    reload_config()
    pm = build_plugin_manager()
    names = {name for name, plugin in pm.list_name_plugin() if plugin is not None}
    assert "runwright.executors" not in names and "cloud" not in names and "dask" not in names
    assert "runwright.commands" in names


def test_autoload_can_be_turned_off_by_environment():
    code = textwrap.dedent(
        """
        from runwright.plugins import get_plugin_manager
        print(sorted(n for n, p in get_plugin_manager().list_name_plugin() if p is not None))
        """
    )
    env = dict(os.environ, RUNWRIGHT_DISABLE_PLUGIN_AUTOLOAD="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert all(name.startswith("runwright.") for name in eval(out))


def test_importing_runwright_loads_no_plugin():
    code = "import sys, runwright; print(any(m.startswith('runwright_') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_flow_run_keeps_the_backend_run_id_across_long_retries(plugin_manager):
    from runwright.config import temporary_config

    seen = []

    class Backend:
        @hookimpl
        def runwright_flow_run_initialize(self, setup):
            seen.append(setup.context.get("flow_run_id"))
            setup.context.setdefault("flow_run_id", f"run-{len(seen)}")

    plugin_manager.register(Backend(), name="fake-backend")
    attempts = []

    @task(max_retries=1, retry_delay=datetime.timedelta(milliseconds=50))
    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    with Flow("f") as flow:
        flaky()
    with temporary_config({"engine.inprocess_retry_limit": 0.0}):
        assert flow.run().is_successful()
    assert seen == [None, "run-1"]


# -- the plugin host's dispatcher and registries (issue 12) ---------------------------------
class _Watcher:
    @hookimpl
    def runwright_task_state_change(self, new_state):
        pass


def test_undoing_a_recorder_twice_leaves_later_recorders_recording(plugin_manager):
    from runwright.testing import HookRecorder

    first = HookRecorder(plugin_manager)
    first.close()
    first.close()
    second = HookRecorder(plugin_manager)
    with Flow("f") as flow:
        one()
    flow.run()
    second.close()
    assert "runwright_task_run_initialize" in second.names()
    assert first.names() == []


def test_the_hook_recorder_observes_the_production_dispatch_loop(hook_recorder, plugin_manager):
    with Flow("f") as flow:
        one()
    flow.run()
    assert "runwright_task_state_change" in hook_recorder.names()
    # recording wraps the tight loop used without a recorder; it does not switch to another
    assert plugin_manager._dispatch["runwright_task_state_change"].fast


def test_calls_through_pluggys_hook_relay_take_the_dispatcher_and_are_recorded(hook_recorder, plugin_manager):
    import click

    plugin_manager.hook.runwright_register_commands(cli=click.Group())
    assert hook_recorder.names() == ["runwright_register_commands"]


def test_a_plugin_registered_during_a_registry_build_is_not_lost(plugin_manager):
    import threading

    from runwright import JSONResultHandler

    class LateHandler(JSONResultHandler):
        pass

    class Late:
        @hookimpl
        def runwright_register_result_handlers(self, register):
            register(LateHandler, name="late")

    started = []

    class RegistersAnotherPluginMidBuild:
        @hookimpl
        def runwright_register_result_handlers(self, register):
            if not started:
                started.append(True)
                other = threading.Thread(target=plugin_manager.register, args=(Late(),), kwargs={"name": "late"})
                other.start()
                other.join()

    plugin_manager.register(RegistersAnotherPluginMidBuild(), name="mid-build")

    @task(checkpoint=True, result_handler="late")
    def produce():
        return 7

    with Flow("f") as flow:
        p = produce()
    state = flow.run().result[p]
    assert state.is_successful(), state.message
    assert isinstance(state._result.result_handler, LateHandler)


def test_a_missing_hook_argument_is_the_callers_error_not_the_plugins(plugin_manager):
    from pluggy import HookCallError

    from runwright.plugins import PluginError

    plugin_manager.register(_Watcher(), name="watcher")
    with pytest.raises(HookCallError, match="'new_state'") as raised:
        plugin_manager.call_attributed("runwright_task_state_change", runner=None, task=None, old_state=None)
    assert not isinstance(raised.value, PluginError)
    assert "not of the plugin" in str(raised.value)


def test_registration_hooks_run_once_until_a_registering_plugin_comes_or_goes(plugin_manager):
    from runwright.engine.executors import LocalExecutor

    calls = []

    class Registrar:
        @hookimpl
        def runwright_register_executors(self, register):
            calls.append("registrar")
            register("mine", LocalExecutor)

    plugin_manager.register(Registrar(), name="registrar")
    assert plugin_manager.executor_class("mine") is LocalExecutor
    plugin_manager.register(_Watcher(), name="watcher")  # implements no registration hook
    plugin_manager.unregister(name="watcher")
    with Flow("f") as flow:
        one()
    assert flow.run(executor="mine").is_successful()
    assert calls == ["registrar"]

    class Another:
        @hookimpl
        def runwright_register_executors(self, register):
            register("another", LocalExecutor)

    plugin_manager.register(Another(), name="another")
    assert plugin_manager.executor_class("another") is LocalExecutor
    assert calls == ["registrar", "registrar"]
    plugin_manager.unregister(name="another")
    with pytest.raises(LookupError, match="Executor 'another' is not installed"):
        plugin_manager.executor_class("another")


def test_on_plugin_error_reports_the_failing_plugin_and_runs_the_others(plugin_manager):
    import click

    class Broken:
        @hookimpl(tryfirst=True)
        def runwright_register_commands(self, cli):
            raise RuntimeError("cannot build my command")

    class Good:
        @hookimpl
        def runwright_register_commands(self, cli):
            cli.add_command(click.Command("good"))

    plugin_manager.register(Good(), name="good")
    plugin_manager.register(Broken(), name="broken")
    cli = click.Group()
    errors = []
    plugin_manager.call_attributed("runwright_register_commands", on_plugin_error=errors.append, cli=cli)
    assert [(e.plugin, e.hook, str(e.error)) for e in errors] == [
        ("broken", "runwright_register_commands", "cannot build my command")
    ]
    assert {"good", "run", "plugins"} <= set(cli.commands)


def test_hook_calls_during_concurrent_register_and_unregister_settle_on_the_registered_plugins(plugin_manager):
    import threading

    seen = []

    def make(index):
        class Counter:
            @hookimpl
            def runwright_task_run_end(self, task):
                seen.append(index)

        return Counter()

    plugins = [make(i) for i in range(8)]
    stop = threading.Event()

    def churn(plugin, name):
        for _ in range(50):
            plugin_manager.register(plugin, name=name)
            plugin_manager.unregister(name=name)
        plugin_manager.register(plugin, name=name)

    def call():
        while not stop.is_set():
            plugin_manager.call_attributed("runwright_task_run_end", runner=None, task=None, state=None)

    callers = [threading.Thread(target=call) for _ in range(2)]
    churners = [threading.Thread(target=churn, args=(p, f"counter-{i}")) for i, p in enumerate(plugins)]
    for thread in callers + churners:
        thread.start()
    for thread in churners:
        thread.join()
    stop.set()
    for thread in callers:
        thread.join()
    del seen[:]
    plugin_manager.call_attributed("runwright_task_run_end", runner=None, task=None, state=None)
    assert sorted(seen) == list(range(8))


def test_a_plugin_writes_and_reads_results_through_the_runners_store(plugin_manager):
    from runwright import JSONResultHandler, SafeResult
    from runwright.engine.result import Result

    writes, loaded = [], []

    class Audit:
        @hookimpl
        def runwright_result_write(self, value, handler):
            writes.append(value)

    class Archiver:
        @hookimpl
        def runwright_task_state_change(self, runner, new_state):
            if new_state.is_successful():
                safe = runner.results.store(new_state._result)
                loaded.append(runner.results.load(SafeResult(safe.value, safe.result_handler)))

    plugin_manager.register(Audit(), name="audit")
    plugin_manager.register(Archiver(), name="archiver")

    @task(result_handler=JSONResultHandler())
    def produce():
        return {"rows": 2}

    with Flow("f") as flow:
        produce()
    assert flow.run().is_successful()
    assert writes == [{"rows": 2}]
    assert isinstance(loaded[0], Result) and loaded[0].value == {"rows": 2}


def test_the_engine_reaches_the_plugin_host_only_through_module_imports():
    """Results and serialization get their store passed (or the default one the plugin
    host installs); nothing in engine/ imports runwright.plugins inside a function."""
    import ast
    from pathlib import Path

    import runwright.engine

    offenders = []
    for path in Path(runwright.engine.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("runwright.plugins"):
                        offenders.append(f"{path.name}:{inner.lineno}")
                    if isinstance(inner, ast.Import) and any(a.name.startswith("runwright.plugins") for a in inner.names):
                        offenders.append(f"{path.name}:{inner.lineno}")
    assert offenders == []


def test_a_name_whose_plugin_is_disabled_says_so(plugin_manager):
    from runwright.plugins import UnknownNameError

    plugin_manager.set_blocked("warp")  # what [plugins] disable = ["warp"] does to an entry point
    with pytest.raises(UnknownNameError) as raised:
        plugin_manager.executor_class("warp")
    message = str(raised.value)
    assert message.startswith("Executor 'warp' is not available (installed: ")
    assert "local" in message and "the plugin 'warp' is disabled by [plugins] disable" in message
