"""Every hook spec is documented in docs/hooks.md and exercised by some test."""

import inspect
from pathlib import Path

import pytest

from runwright import hookspecs

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name, obj in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("runwright_"))


def test_there_are_hooks_for_every_family():
    assert {
        "runwright_flow_run_initialize",
        "runwright_task_run_initialize",
        "runwright_flow_state_change",
        "runwright_task_state_change",
        "runwright_check_task_is_cached",
        "runwright_result_write",
        "runwright_result_read",
        "runwright_register_result_handlers",
        "runwright_register_cache_validators",
        "runwright_register_executors",
        "runwright_register_commands",
    } <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    docs = (ROOT / "docs" / "hooks.md").read_text()
    assert f"### `{hook}(" in docs, f"{hook} has no section in docs/hooks.md"
    assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook):
    test_files = list((ROOT / "tests").rglob("test_*.py")) + list((ROOT / "plugins").glob("*/tests/test_*.py"))
    implementers = [f for f in test_files if f"def {hook}(" in f.read_text() and f.name != Path(__file__).name]
    recorded = [f for f in test_files if f'"{hook}"' in f.read_text() and f.name != Path(__file__).name]
    assert implementers or recorded, f"no test implements or asserts on {hook}"
