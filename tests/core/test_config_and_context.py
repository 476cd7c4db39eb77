import threading

import pytest

from runwright import context
from runwright.config import ConfigError, load_config, parse_env_value, temporary_config


@pytest.mark.parametrize(
    "raw,expected",
    [("true", True), ("FALSE", False), ("3", 3), ("2.5", 2.5), ("text", "text"), ('["a", "b"]', ["a", "b"])],
)
def test_environment_values_are_typed(raw, expected):
    assert parse_env_value(raw) == expected


def test_load_order_defaults_then_file_then_environment(tmp_path):
    user = tmp_path / "c.toml"
    user.write_text('[engine]\nexecutor = "threads"\nthreads = 3\n[plugins.local]\ndir = "~/results"\n')
    config = load_config({"RUNWRIGHT_CONFIG": str(user), "RUNWRIGHT__ENGINE__THREADS": "7"})
    assert config.get_nested("engine.executor") == "threads"
    assert config.get_nested("engine.threads") == 7
    assert config.get_nested("engine.backend") == "local"  # packaged default survives
    assert not config.get_nested("plugins.local.dir").startswith("~")


def test_a_missing_named_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({"RUNWRIGHT_CONFIG": str(tmp_path / "nope.toml")})


def test_plugin_sections_reject_unknown_keys(tmp_path):
    user = tmp_path / "c.toml"
    user.write_text("[plugins.local]\ndri = 1\n")
    config = load_config({"RUNWRIGHT_CONFIG": str(user)})
    with pytest.raises(ConfigError, match=r"Unknown key\(s\) dri in \[plugins.local\]; accepted keys: dir"):
        config.plugin_section("local", {"dir": None})


def test_temporary_config_restores():
    from runwright.config import get_config

    with temporary_config({"engine.executor": "threads"}):
        assert get_config().get_nested("engine.executor") == "threads"
    assert get_config().get_nested("engine.executor") == "local"


def test_task_defaults_come_from_config():
    from runwright import Task

    with temporary_config({"tasks.defaults.max_retries": 2, "tasks.defaults.retry_delay": 1}):
        task = Task()
    assert task.max_retries == 2 and task.retry_delay.total_seconds() == 1


def test_context_restores_only_what_it_set():
    with context(a=1):
        with context(a=2, b=3):
            assert (context.a, context.b) == (2, 3)
        assert context.a == 1 and "b" not in context
    assert context.get("a") is None
    with pytest.raises(AttributeError):
        context.missing_key


def test_context_is_thread_local():
    seen = {}
    with context(who="main"):
        thread = threading.Thread(target=lambda: seen.setdefault("who", context.get("who")))
        thread.start()
        thread.join()
    assert seen == {"who": None}
