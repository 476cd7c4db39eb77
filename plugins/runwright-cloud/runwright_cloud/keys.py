"""The run-context keys of the cloud backend: one name for each, shared by its modules."""

#: The backend's registered name (``--backend cloud``, ``[engine] backend = "cloud"``).
BACKEND_NAME = "cloud"
#: a task run's report (see :class:`runwright_cloud.reporting.reports.TaskRunReport`)
TASK_REPORT_KEY = "cloud_task_run"
#: the flow run's :class:`~runwright_cloud.cloud_settings.CloudSettings`
SETTINGS_KEY = "cloud_settings"
#: the runner's lease token of the flow run (``task_claims = "lease"``)
LEASE_KEY = "cloud_lease"
#: a mapped parent's children, got or created in one request (see ``ChildRuns``)
CHILDREN_KEY = "cloud_children"
#: ``runwright run --flow-run-id ID --take-over``: take the flow run over even while its
#: lease holder's heartbeat is fresh (see ``FlowRunReporter._take_over``)
TAKE_OVER_KEY = "cloud_take_over"
#: the flow run had already finished when this runner loaded it (its state type): nothing ran
FINISHED_KEY = "cloud_finished_before"
