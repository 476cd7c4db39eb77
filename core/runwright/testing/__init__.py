"""Test helpers for plugin authors (a pytest plugin, loaded automatically with runwright).

Fixtures:

* ``plugin_manager``: a fresh plugin manager (built-ins + installed plugins), installed as
  the process-wide manager for the test;
* ``hook_recorder``: records every hook call made during the test (``.names()``,
  ``.calls_of(name)``);
* ``run_flow``: ``run_flow(flow, **run_kwargs)`` runs a flow and returns its state.

Contract tests: subclass :class:`ResultHandlerContract` and provide a ``handler`` fixture
(and optionally ``corrupt``) to check a result-handler backend against every rule a handler
must follow; subclass :class:`ExecutorContract` and provide an ``executor`` fixture to check
an executor against the executor contract (``runwright.engine.executors.base``).
"""

from runwright.testing.contracts import ExecutorContract, ResultHandlerContract
from runwright.testing.recorder import HookCall, HookRecorder

__all__ = ["ExecutorContract", "HookCall", "HookRecorder", "ResultHandlerContract"]
