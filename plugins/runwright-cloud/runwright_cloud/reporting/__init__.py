"""Reporting flow runs and task runs to the server: what the cloud backend does.

* :mod:`.reports` — the per-run bookkeeping (plain data that travels with contexts);
* :mod:`.services` — what one process's reporting shares: clients, writers, heartbeat;
* :mod:`.flow_runs` — :class:`~.flow_runs.FlowRunReporter`: create or load a flow run,
  write its states, end it;
* :mod:`.task_runs` — :class:`~.task_runs.TaskRunReporter`: the same for task runs, plus
  cached states from the server.

Imported with the first cloud run of a process (or with the plugin in a process configured
for cloud runs), never for local runs: the reporters load the HTTP client (requests).
"""

from runwright_cloud.reporting.reports import ChildRuns, FlowRunReport, TaskRunReport

__all__ = ["ChildRuns", "FlowRunReport", "TaskRunReport"]
